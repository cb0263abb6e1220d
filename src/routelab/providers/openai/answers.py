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

_FENCED = re.compile(r"```[a-zA-Z]*\s*(.*?)\s*```", re.S)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$", re.M)
MAX_SCANS = 20  # '{' positions tried in a prose answer


def json_values(text: str):
    """JSON values in an answer, most deliberate first: the whole text, each fenced block, then
    each object that starts somewhere in the prose (servers without structured outputs wrap it)."""
    decoder = json.JSONDecoder()
    candidates = [text.strip(), *(m.group(1) for m in _FENCED.finditer(text))]
    for c in candidates:
        try:
            yield json.loads(c)
        except ValueError:
            pass
    start = text.find("{")
    for _ in range(MAX_SCANS):
        if start < 0:
            return
        try:
            yield decoder.raw_decode(text, start)[0]
        except ValueError:
            pass
        start = text.find("{", start + 1)


def parse_action(content: str | None, refusal: str | None, names: set[str]) -> tuple[str | None, str]:
    """(action or None if invalid, raw text). Only an exact catalog name counts: the `action` of the
    first JSON object that has one (alone, fenced, or inside prose), or the whole answer being a name."""
    if refusal:
        return None, f"refusal: {refusal}"
    raw = content or ""
    for obj in json_values(raw):
        if isinstance(obj, dict) and "action" in obj:
            action = obj["action"]
            return (action if isinstance(action, str) and action in names else None), raw
    bare = raw.strip().strip("`'\"*.").strip()
    return (bare if bare in names else None), raw


def logprob_confidence(logprobs: Any, action: str | None = None) -> float | None:
    """Probability of the answer: exp(sum of the logprobs of the tokens that spell `action`),
    or of every token when the action cannot be found in them.

    With strict structured outputs the JSON scaffolding is forced (logprob ~0) and both agree;
    without (json_object, a plain prompt) only the action's own tokens say how sure the model was."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    tokens = [t for t in content if isinstance(t, dict)]
    chosen = tokens
    if action:
        text, spans = "", []
        for t in tokens:
            spans.append((len(text), len(text) + len(str(t.get("token") or ""))))
            text += str(t.get("token") or "")
        at = text.rfind(action)  # the value, after any "action" key
        if at >= 0:
            end = at + len(action)
            chosen = [t for t, (lo, hi) in zip(tokens, spans) if lo < end and hi > at]
    total = sum(float(t.get("logprob") or 0.0) for t in chosen)
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
        confidence = logprob_confidence(choice.get("logprobs"), action) if action else None
        return Route(action=action, valid=action is not None, confidence=confidence, raw=raw, **spent)
    votes = Counter(a for a, _, _ in answers if a is not None)
    raws = json.dumps([r for _, r, _ in answers])
    if not votes:
        return Route(action=None, valid=False, raw=raws, **spent)
    (action, count), = votes.most_common(1)
    return Route(action=action, confidence=round(count / len(answers), 4), raw=raws, **spent)


def parse_questions(completion: dict[str, Any]) -> tuple[list[str], str]:
    """(questions, raw text) of a generator's answer: a JSON {"questions": [...]} or list (alone,
    fenced or in prose), else a numbered or bulleted list of two or more; none when unreadable."""
    choices = completion.get("choices") or [{}]
    msg = choices[0].get("message") or {}
    raw = msg.get("content") or msg.get("refusal") or ""
    for obj in json_values(raw):
        items = obj.get("questions") if isinstance(obj, dict) else obj
        if isinstance(items, list):
            return [q.strip() for q in items if isinstance(q, str) and q.strip()], raw
    listed = [m.group(1).strip("\"") for m in _LIST_ITEM.finditer(raw)]
    return (listed if len(listed) >= 2 else []), raw
