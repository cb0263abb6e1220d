"""What the teacher and the question generator are asked, and the answer formats they are held to.

The teacher's catalog is shuffled on every request (position bias); its answer is forced
with structured outputs where the endpoint has them (`action` is an enum of the names; the
forms: formats.py) and checked anyway (answers.py). The prompt itself asks for the JSON, so
a server without structured outputs still answers in a form answers.py reads.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from routelab.domain import Action, Example

PROMPT_VERSION = "v1"
ANSWER_TOKENS = 8  # what one {"action": "..."} answer costs in output tokens, for estimates
QUESTION_TOKENS = 25  # output tokens per generated question, for estimates

ROUTER_INSTRUCTIONS = (
    "You are the intent router of a conversational assistant. Read the conversation and choose the one "
    "action that should handle the user's last message. Choose only from the actions listed below, using "
    "their descriptions; the order of the list means nothing. Answer with JSON {\"action\": NAME}."
)
GENERATOR_INSTRUCTIONS = (
    "You write realistic test data for the intent router of a conversational assistant. Below is the "
    "router's full action catalog, so you know where the boundaries between actions lie."
)


def route_schema(names: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of a teacher's answer: `action` is one of the catalog's names."""
    return {
        "type": "object",
        "properties": {"action": {"type": "string", "enum": list(names)}},
        "required": ["action"],
        "additionalProperties": False,
    }


QUESTIONS_SCHEMA = {
    "type": "object",
    "properties": {"questions": {"type": "array", "items": {"type": "string"}}},
    "required": ["questions"],
    "additionalProperties": False,
}


def catalog_text(actions: Sequence[Action], rng: random.Random) -> str:
    """The shuffled catalog, one `- name: description` line each (the fallback action like any other)."""
    shuffled = list(actions)
    rng.shuffle(shuffled)
    return "\n".join(f"- {a.name}: {' '.join(a.description.split()) or a.name.replace('_', ' ')}" for a in shuffled)


def fallback_sentence(actions: Sequence[Action]) -> str:
    """For a catalog with a fallback action, a paragraph after the catalog: "If no other action fits
    the message, answer NAME."; for one without, nothing (the prompt it always got)."""
    fallback = next((a.name for a in actions if a.fallback), None)
    return f"\n\nIf no other action fits the message, answer {fallback}." if fallback else ""


def route_messages(example: Example, actions: Sequence[Action], rng: random.Random,
                   system_prompt: str | None = None) -> list[dict[str, str]]:
    """System prompt (the shuffled catalog, or the fixed prompt a fine-tune was trained on), then the
    conversation, then the question."""
    system = system_prompt if system_prompt is not None else (
        f"{ROUTER_INSTRUCTIONS}\n\nActions:\n{catalog_text(actions, rng)}{fallback_sentence(actions)}")
    messages = [{"role": "system", "content": system}]
    for m in example.conversation or []:
        if m.role in ("user", "assistant"):
            messages.append({"role": m.role, "content": m.content})
    messages.append({"role": "user", "content": example.text})
    return messages


def generate_messages(
    action: Action, actions: Sequence[Action], n: int, avoid: Sequence[str], rng: random.Random
) -> list[dict[str, str]]:
    system = f"{GENERATOR_INSTRUCTIONS}\n\nActions:\n{catalog_text(actions, rng)}"
    ask = (
        f"Write {n} different messages that real users would send and that belong to the action "
        f"{action.name!r} ({' '.join(action.description.split()) or action.name}). Vary them: length, tone, "
        "wording, detail; some terse, some chatty, an occasional typo; no numbering. Each must clearly belong "
        "to this action and not to another one in the catalog. Answer with JSON {\"questions\": [...]}."
    )
    if avoid:
        ask += "\nDo not repeat or paraphrase closely any of these existing ones:\n" + "\n".join(
            f"- {q}" for q in avoid[-20:]
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": ask}]
