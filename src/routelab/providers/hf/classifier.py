"""`--method classifier`: a sequence-classification head on an encoder.

The head is new, so it learns at a higher rate than the pretrained body (`head_lr`,
20x by default); the loss is cross-entropy over the actions of the training file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routelab.domain import Example
from routelab.providers.hf.data import collate, encode_classifier
from routelab.providers.hf.models import load_classifier, load_tokenizer, write_meta
from routelab.providers.hf.options import HFOptions

HEAD_NAMES = ("classifier", "score", "pre_classifier", "out_proj")  # what heads are called across architectures


class ClassifierTask:
    early_stopping = True

    def __init__(self, base: str, opts: HFOptions, train: tuple[list[Example], list[str]],
                 valid: tuple[list[Example], list[str]]):
        self.base, self.opts = base, opts
        self.classes = sorted(set(train[1]))
        index = {c: i for i, c in enumerate(self.classes)}
        self.tokenizer = load_tokenizer(base)
        self.model = load_classifier(base, self.classes)
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.items = {"train": encode_classifier(self.tokenizer, train[0], opts.length),
                      "valid": encode_classifier(self.tokenizer, valid[0], opts.length)}
        # a validation label the training file never saw cannot be predicted: it counts as wrong (-100 skips
        # it in the loss)
        self.labels = {"train": [index[y] for y in train[1]], "valid": [index.get(y, -100) for y in valid[1]]}
        self.train_lengths = [len(i["input_ids"]) for i in self.items["train"]]
        self.val_lengths = [len(i["input_ids"]) for i in self.items["valid"]]

    def param_groups(self, opts: HFOptions) -> list[dict[str, Any]]:
        head, body = [], []
        for name, p in self.model.named_parameters():
            (head if name.split(".")[0] in HEAD_NAMES else body).append(p)
        return [{"params": body, "lr": opts.lr}, {"params": head, "lr": opts.head_learning_rate}]

    def batch(self, indices: list[int], split: str) -> dict[str, Any]:
        return collate([self.items[split][i] for i in indices], self.tokenizer.pad_token_id or 0,
                       [self.labels[split][i] for i in indices])

    def loss(self, model, batch: dict[str, Any]):
        import torch

        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100)
        correct = int((logits.argmax(-1) == labels).sum())
        return loss, correct, int(labels.numel())

    def save(self, model, folder: Path, meta: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        write_meta(folder, {**meta, "method": "classifier", "classes": self.classes, "max_length": self.opts.length})
