"""The router prompt and the chat format of routing data, both ways.

A fine-tuned router must see at inference exactly the system prompt it was trained on,
so this prompt is deterministic (actions in code order, never shuffled) and versioned;
exports record its version and hash, and trained models keep the prompt in their params.

Reading the format back (`chat_record`) is shared by `routelab import` of chat JSONL and
by the local trainer, which trains on the export files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from routelab.domain import Action, BadInput, Example, Message

CHAT_ROLES = ("system", "user", "assistant", "tool", "function")

ROUTER_PROMPT_VERSION = "router-v1"


def router_system_prompt(actions: Sequence[Action]) -> str:
    """System message: the task, the catalog (name and description, in code order), the answer format.

    With a fallback action (out of scope), one sentence more says when to answer it; a catalog
    without one gets exactly the prompt it always got (the same hash, so the same export)."""
    ordered = sorted(actions, key=lambda a: (a.code if a.code is not None else 10**9, a.name))
    lines = [
        "You are an intent router. Read the conversation and choose the one action that should "
        "handle the user's last message.",
        "",
        "Actions:",
    ]
    for a in ordered:
        desc = " ".join(a.description.split())
        lines.append(f"- {a.name}: {desc}" if desc else f"- {a.name}")
    fallback = next((a.name for a in ordered if a.fallback), None)
    if fallback:
        lines += ["", f"If no other action fits the user's last message, answer {fallback}."]
    lines += ["", 'Answer with JSON only: {"action": "<one action name from the list>"}']
    return "\n".join(lines)


def assistant_answer(action: str) -> str:
    """The assistant message a router is trained to produce."""
    return json.dumps({"action": action}, ensure_ascii=False)


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


class ChatRecord(NamedTuple):
    text: str  # the last user message: the question
    turns: list[dict[str, str]]  # earlier user/assistant turns
    question_index: int  # where the question is in `messages`
    answer_index: int | None  # the last assistant message after it, if any
    action: str | None  # that answer's {"action": ...}, if it is a routing answer


def chat_record(messages: Any) -> ChatRecord:
    """One chat example read back. ValueError names the field that is wrong; an answer that is a
    plain reply rather than {"action": ...} is not an error here (import may label it otherwise)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError('field "messages": expected a non-empty list')
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in CHAT_ROLES:
            raise ValueError(f'field "messages[{j}]": expected {{"role", "content"}}')
    last_user = max((j for j, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise ValueError('field "messages": no user message')
    turns = [{"role": m["role"], "content": m["content"]} for m in messages[:last_user]
             if m["role"] in ("user", "assistant")]
    answer = max((j for j in range(last_user + 1, len(messages)) if messages[j]["role"] == "assistant"), default=None)
    action = None
    if answer is not None:
        try:
            action = json.loads(messages[answer]["content"])["action"]
        except (ValueError, TypeError, KeyError, RecursionError):
            action = None
    return ChatRecord(messages[last_user]["content"], turns, last_user, answer, action)


def read_chat_jsonl(path: Path) -> tuple[list[Example], list[str]]:
    """Examples (history + last user message) and labels (the assistant's action) of an export file."""
    examples: list[Example] = []
    labels: list[str] = []
    with Path(path).open(encoding="utf-8", newline="\n") as f:  # lines end at \n only: U+2028 is text
        lines = f.read().split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = chat_record(json.loads(line).get("messages"))
            text, turns, label = record.text, record.turns, record.action
            if not isinstance(label, str):
                raise ValueError('no {"action": ...} answer after the user message')
        except (ValueError, AttributeError) as e:
            raise BadInput(f"{Path(path).name} line {i}: not a routing example ({e})") from None
        history = [Message(role=m["role"], content=m["content"]) for m in turns]  # type: ignore[arg-type]
        examples.append(Example(id=i, text=text, conversation=history or None, source="export",
                                split="train", hash="", created_at=""))
        labels.append(label)
    return examples, labels
