"""Reading chat completions (their JSON): the teacher's action, its confidence, generated questions.

Never guesses: a refusal, an unparsable or an unknown answer becomes an invalid Route
carrying its raw text. Confidence is the probability of the answer from its token
logprobs, or with several samples the share that agree.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from routelab import pricing
from routelab.providers.base import Route


def _strip_fences(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", t)
    return t


def parse_action(content: str | None, refusal: str | None, names: set[str]) -> tuple[str | None, str]:
    """(action or None if invalid, raw text). Only an exact catalog name counts."""
    if refusal:
        return None, f"refusal: {refusal}"
    raw = content or ""
    try:
        obj = json.loads(_strip_fences(raw))
    except ValueError:
        return None, raw
    action = obj.get("action") if isinstance(obj, dict) else None
    if isinstance(action, str) and action in names:
        return action, raw
    return None, raw


def logprob_confidence(logprobs: Any) -> float | None:
    """Probability of the whole answer: exp(sum of its token logprobs).

    With structured outputs the JSON scaffolding is forced (logprob ~0), so this is the
    probability the model gave to the action it chose."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    total = sum(float(t.get("logprob") or 0.0) for t in content if isinstance(t, dict))
    return max(0.0, min(1.0, math.exp(total)))


def usage(completion: dict[str, Any]) -> tuple[int, int]:
    used = completion.get("usage") or {}
    return int(used.get("prompt_tokens") or 0), int(used.get("completion_tokens") or 0)


def route_from_completion(completion: dict[str, Any], names: set[str], model: str, *, batch: bool = False) -> Route:
    """A Route from a chat completion with one or several choices."""
    tokens_in, tokens_out = usage(completion)
    spent = {"tokens_in": tokens_in, "tokens_out": tokens_out,
             "cost": pricing.chat_cost(model, tokens_in, tokens_out, batch=batch)}
    answers = []
    for choice in completion.get("choices") or []:
        msg = choice.get("message") or {}
        action, raw = parse_action(msg.get("content"), msg.get("refusal"), names)
        answers.append((action, raw, choice))
    if not answers:
        return Route(action=None, valid=False, raw="no choices in the answer", **spent)
    if len(answers) == 1:
        action, raw, choice = answers[0]
        confidence = logprob_confidence(choice.get("logprobs")) if action else None
        return Route(action=action, valid=action is not None, confidence=confidence, raw=raw, **spent)
    votes = Counter(a for a, _, _ in answers if a is not None)
    raws = json.dumps([r for _, r, _ in answers])
    if not votes:
        return Route(action=None, valid=False, raw=raws, **spent)
    (action, count), = votes.most_common(1)
    return Route(action=action, confidence=round(count / len(answers), 4), raw=raws, **spent)


def parse_questions(completion: dict[str, Any]) -> tuple[list[str], str]:
    """(questions, raw text) of a generator's answer; no questions when it is unreadable."""
    choices = completion.get("choices") or [{}]
    msg = choices[0].get("message") or {}
    raw = msg.get("content") or msg.get("refusal") or ""
    try:
        obj = json.loads(_strip_fences(raw))
    except ValueError:
        return [], raw
    items = obj.get("questions") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        return [], raw
    return [q.strip() for q in items if isinstance(q, str) and q.strip()], raw
