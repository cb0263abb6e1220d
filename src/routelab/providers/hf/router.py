"""Routing in-process with an hf model: the folder a job saved, on CPU or the GPU.

- a classifier folder: one forward pass per batch of questions (sorted by length, padded
  per batch), the softmax over the catalog's actions;
- a LoRA folder: the base with the adapter, scoring every action's answer (scoring.py);
- `hf-zero-shot`: the base encoder alone, cosine similarity of the mean-pooled question to
  each action's name and description (the untrained baseline of an eval table).

Latency is per question, the batch's time shared out (as the embedded router reports it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from routelab.domain import Action, BadInput, Example
from routelab.providers.base import Route, Router
from routelab.providers.hf.data import encode_classifier, length_batches

PROMPT_VERSION = "hf-v1"


def _device(wanted: str):
    from routelab.providers.hf.device import pick_device

    return "cuda" if pick_device(wanted).gpu else "cpu"


class _HFRouter(Router):
    provider = "hf"
    prompt_version = PROMPT_VERSION

    def __init__(self, model_id: str, folder: Path | str, *, device: str = "auto", batch_size: int = 64):
        self.model, self.folder = model_id, Path(folder)
        self.device_wanted, self.batch_size = device, batch_size
        self._loaded = False

    def prepare(self) -> None:
        if not self._loaded:
            if not self.folder.exists():
                raise BadInput(f"model {self.model!r}: its folder {self.folder} is gone (moved or deleted?)")
            self._load()
            self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError

    def run_params(self) -> dict:
        return {"folder": str(self.folder)}


class ClassifierRouter(_HFRouter):
    mode = "classifier"

    def _load(self) -> None:
        from routelab.providers.hf.models import load_classifier, load_tokenizer, read_meta

        self.meta = read_meta(self.folder)
        self.tok = load_tokenizer(str(self.folder))
        self.net = load_classifier(str(self.folder)).to(_device(self.device_wanted)).eval()
        self.classes: list[str] = list(self.meta["classes"])

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        import torch

        from routelab.providers.hf.data import collate

        self.prepare()
        if not examples:
            return []
        names = {a.name for a in actions}
        allowed = torch.tensor([c in names for c in self.classes])
        items = encode_classifier(self.tok, examples, int(self.meta.get("max_length", 64)))
        out: list[Route | None] = [None] * len(examples)
        device = next(self.net.parameters()).device
        for indices in length_batches([len(i["input_ids"]) for i in items], self.batch_size, 0, shuffle=False):
            t0 = time.perf_counter()
            batch = {k: v.to(device) for k, v in collate([items[i] for i in indices], self.tok.pad_token_id or 0).items()}
            with torch.no_grad():
                logits = self.net(**batch).logits.float().cpu()
            logits[:, ~allowed] = float("-inf")  # an action no longer in the catalog is never the answer
            probs = torch.softmax(logits, dim=-1)
            ms = (time.perf_counter() - t0) * 1000 / len(indices)
            for row, i in enumerate(indices):
                out[i] = self._route(probs[row], allowed, ms)
        return [r for r in out if r is not None]

    def _route(self, probs, allowed, ms: float) -> Route:
        if not bool(allowed.any()):
            return Route(action=None, valid=False, raw=json.dumps({"error": "no trained action in the catalog"}),
                         latency_ms=round(ms, 4))
        j = int(probs.argmax())
        return Route(action=self.classes[j], confidence=round(float(probs[j]), 6),
                     raw=json.dumps({"action": self.classes[j]}), latency_ms=round(ms, 4))


class LoraRouter(_HFRouter):
    mode = "lora (scored answers)"

    def _load(self) -> None:
        from peft import PeftModel

        from routelab.providers.hf.models import load_causal_lm, load_tokenizer, read_meta

        self.meta = read_meta(self.folder)
        self.tok = load_tokenizer(str(self.folder))
        device = _device(self.device_wanted)
        dtype = None
        if device == "cuda":
            import torch

            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        base = load_causal_lm(self.meta["base"], dtype)
        self.net = PeftModel.from_pretrained(base, str(self.folder)).to(device).eval()
        self._scorers: dict[tuple[str, ...], object] = {}

    def _scorer(self, actions: Sequence[Action]):
        from routelab.providers.hf.scoring import ActionScorer

        names = tuple(a.name for a in actions)
        if names not in self._scorers:  # the prompt it was trained on; the candidates: today's catalog
            self._scorers = {names: ActionScorer(self.net, self.tok, self.meta.get("system_prompt", ""), names)}
        return self._scorers[names]

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        self.prepare()
        if not actions:
            return [Route(action=None, valid=False, raw="no actions") for _ in examples]
        scorer = self._scorer(actions)
        routes = []
        for e in examples:
            t0 = time.perf_counter()
            turns = [{"role": m.role, "content": m.content} for m in (e.conversation or [])
                     if m.role in ("user", "assistant")]
            scored = scorer.score([*turns, {"role": "user", "content": e.text}])  # type: ignore[attr-defined]
            routes.append(Route(action=scored.action, confidence=round(scored.confidence, 6),
                                raw=json.dumps({"action": scored.action}),
                                latency_ms=round((time.perf_counter() - t0) * 1000, 4)))
        return routes


class ZeroShotRouter(_HFRouter):
    """The base encoder, untrained: the nearest action description, by mean-pooled embeddings."""

    mode = "zero-shot"

    def _load(self) -> None:
        from routelab.providers.hf.models import load_encoder, load_tokenizer

        self.tok = load_tokenizer(str(self.folder))
        self.net = load_encoder(str(self.folder)).to(_device(self.device_wanted)).eval()

    def prepare(self) -> None:
        if not self._loaded:
            self._load()
            self._loaded = True

    def _embed(self, texts: list[str]):
        import torch

        device = next(self.net.parameters()).device
        enc = self.tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt").to(device)
        with torch.no_grad():
            hidden = self.net(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1).cpu()

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        import torch

        self.prepare()
        if not examples:
            return []
        targets = self._embed([f"{a.name.replace('_', ' ')}: {a.description}" for a in actions])
        routes = []
        for start in range(0, len(examples), self.batch_size):
            chunk = examples[start:start + self.batch_size]
            t0 = time.perf_counter()
            probs = torch.softmax(self._embed([e.text for e in chunk]) @ targets.T * 20, dim=-1)
            ms = (time.perf_counter() - t0) * 1000 / len(chunk)
            for row in probs:
                j = int(row.argmax())
                routes.append(Route(action=actions[j].name, confidence=round(float(row[j]), 6),
                                    raw=json.dumps({"action": actions[j].name}), latency_ms=round(ms, 4)))
        return routes
