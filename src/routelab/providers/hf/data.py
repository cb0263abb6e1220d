"""Turning an export into model inputs, and inputs into batches.

Classifier: the question, then the earlier turns (newest first, so truncation drops the
oldest), as a text pair. LoRA: the exported chat messages through the tokenizer's chat
template; the labels mask everything but the assistant's answer (and the end of its turn),
so the loss is on the answer only.

Batches are grouped by length (sorted within shuffled chunks of 50 batches) and padded to
their longest member: on short questions that is several times less work than padding
to max_length.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routelab.domain import BadInput, Example

IGNORE = -100  # label of tokens the loss skips
# A plain template for tokenizers that bring none (it is saved with the model, so a server uses it too)
FALLBACK_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                     "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def history_text(example: Example) -> str | None:
    turns = [m for m in (example.conversation or []) if m.role in ("user", "assistant")]
    if not turns:
        return None
    return " | ".join(f"{m.role}: {m.content}" for m in reversed(turns))


def encode_classifier(tokenizer, examples: Sequence[Example], max_length: int) -> list[dict[str, list[int]]]:
    """One encoding per example: the question (and its history as the second segment)."""
    out = []
    for e in examples:
        enc = tokenizer(e.text, history_text(e), truncation=True, max_length=max_length)
        out.append({k: list(v) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


def read_chats(path: Path) -> list[list[dict[str, str]]]:
    """The messages of every line of an export file (read_chat_jsonl has checked the format)."""
    with Path(path).open(encoding="utf-8", newline="\n") as f:
        return [json.loads(line)["messages"] for line in f.read().split("\n") if line.strip()]


def ensure_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_TEMPLATE


def prompt_ids(tokenizer, messages: Sequence[dict[str, str]]) -> list[int]:
    """The tokens a chat model sees before it answers (system, history, question, the answer's opening)."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_ids(tokenizer, answer: str) -> list[int]:
    """The answer's tokens and the end of the turn: what the LoRA loss is on."""
    ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


@dataclass
class LoraEncoding:
    items: list[dict[str, list[int]]]
    truncated: int  # examples cut from the left to fit max_length


def encode_lora(tokenizer, chats: Sequence[list[dict[str, str]]], max_length: int) -> LoraEncoding:
    items, truncated = [], 0
    for messages in chats:
        if not messages or messages[-1]["role"] != "assistant":
            raise BadInput("an export line for LoRA must end with the assistant's answer")
        prompt, answer = prompt_ids(tokenizer, messages[:-1]), answer_ids(tokenizer, messages[-1]["content"])
        ids, labels = prompt + answer, [IGNORE] * len(prompt) + answer
        if len(ids) > max_length:
            truncated += 1
            ids, labels = ids[-max_length:], labels[-max_length:]
        items.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return LoraEncoding(items, truncated)


def length_batches(lengths: Sequence[int], batch_size: int, seed: int, *, shuffle: bool = True) -> list[list[int]]:
    """Indices in batches of similar length: shuffled, sorted within chunks of 50 batches, the
    batches in random order (the same for the same seed, so a resumed epoch replays its order)."""
    order = list(range(len(lengths)))
    if not shuffle:
        order.sort(key=lambda i: -lengths[i])
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: -lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(items: Sequence[dict[str, list[int]]], pad_id: int, labels: Sequence[int] | None = None,
            *, left: bool = False) -> dict[str, Any]:
    """Pad a batch to its longest member; `labels`: one class per item (classifier)."""
    import torch

    width = max(len(it["input_ids"]) for it in items)
    batch: dict[str, Any] = {}
    for key in items[0]:
        fill = pad_id if key == "input_ids" else (IGNORE if key == "labels" else 0)
        rows = []
        for it in items:
            pad = [fill] * (width - len(it[key]))
            rows.append(pad + it[key] if left else it[key] + pad)
        batch[key] = torch.tensor(rows, dtype=torch.long)
    if labels is not None:
        batch["labels"] = torch.tensor(list(labels), dtype=torch.long)
    return batch
