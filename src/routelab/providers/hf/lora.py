"""`--method lora`: LoRA adapters (peft) on a causal LM, over the exported chat JSONL.

Only the adapters train; the loss is on the assistant's answer tokens (data.encode_lora
masks the prompt). The saved folder holds the adapter and the tokenizer (with the chat
template it was trained with); `routelab export-model` merges the adapter into the base
for servers that load plain weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routelab.providers.hf.data import IGNORE, collate, encode_lora, ensure_chat_template, read_chats
from routelab.providers.hf.models import load_causal_lm, load_tokenizer, write_meta
from routelab.providers.hf.options import HFOptions


class LoraTask:
    early_stopping = False

    def __init__(self, base: str, opts: HFOptions, train_file: Path, valid_file: Path | None, dtype=None):
        from peft import LoraConfig, get_peft_model

        self.base, self.opts = base, opts
        self.tokenizer = load_tokenizer(base)
        ensure_chat_template(self.tokenizer)
        chats = {"train": read_chats(train_file), "valid": read_chats(valid_file) if valid_file else []}
        self.actions = sorted({json.loads(c[-1]["content"]).get("action", "") for c in chats["train"]} - {""})
        self.system_prompt = next((m["content"] for m in chats["train"][0] if m["role"] == "system"), "")
        encoded = {k: encode_lora(self.tokenizer, v, opts.length) for k, v in chats.items()}
        self.items = {k: v.items for k, v in encoded.items()}
        self.truncated = sum(v.truncated for v in encoded.values())
        self.train_lengths = [len(i["input_ids"]) for i in self.items["train"]]
        self.val_lengths = [len(i["input_ids"]) for i in self.items["valid"]]
        model = load_causal_lm(base, dtype)
        config = LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                            target_modules="all-linear", task_type="CAUSAL_LM")
        self.model = get_peft_model(model, config)

    def param_groups(self, opts: HFOptions) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": opts.lr}]

    def batch(self, indices: list[int], split: str) -> dict[str, Any]:
        return collate([self.items[split][i] for i in indices], self.tokenizer.pad_token_id or 0)

    def loss(self, model, batch: dict[str, Any]):
        import torch

        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                 ignore_index=IGNORE)
        mask = target != IGNORE
        correct = int(((logits.argmax(-1) == target) & mask).sum())
        return loss, correct, int(mask.sum())

    def save(self, model, folder: Path, meta: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)  # the adapter only (a few MB), with the base's id in adapter_config.json
        self.tokenizer.save_pretrained(folder)
        write_meta(folder, {**meta, "method": "lora", "system_prompt": self.system_prompt,
                            "max_length": self.opts.length})
