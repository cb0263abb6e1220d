"""The router prompt: one builder for fine-tuning data and for routing with a fine-tuned model.

A fine-tuned router must see at inference exactly the system prompt it was trained on,
so this prompt is deterministic (actions in code order, never shuffled) and versioned;
exports record its version and hash, and trained models keep the prompt in their params.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from routelab.domain import Action

ROUTER_PROMPT_VERSION = "router-v1"


def router_system_prompt(actions: Sequence[Action]) -> str:
    """System message: the task, the catalog (name and description, in code order), the answer format."""
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
    lines += ["", 'Answer with JSON only: {"action": "<one action name from the list>"}']
    return "\n".join(lines)


def assistant_answer(action: str) -> str:
    """The assistant message a router is trained to produce."""
    return json.dumps({"action": action}, ensure_ascii=False)


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]
