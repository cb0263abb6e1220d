"""Structured outputs, and what to ask a server that does not have them.

The forms, strongest first: strict `json_schema` (OpenAI, Azure, vLLM, Ollama), then
`json_object` carrying the schema (llama.cpp's server enforces it with a grammar), then
plain `json_object`, then no response_format at all (the prompt asks for JSON and the
answer is read tolerantly: answers.py). The client tries them in order on the first
request to an endpoint and remembers the first one accepted (capabilities.py), so the
probing costs one request per endpoint, not one per question.

A request refused for its form (a 400, 422 or 500 naming response_format) is a
`FormatRefused`: never retried as if the server were overloaded, it moves to the next form.
"""

from __future__ import annotations

from typing import Any

from routelab.providers.base import RequestFailed

FORMS = ("json_schema", "json_object_schema", "json_object", "prompt")
LABELS = {"json_schema": "json_schema", "json_object_schema": "json_object+schema", "json_object": "json_object",
          "prompt": "plain prompt"}
REFUSAL_STATUSES = (400, 422, 500)
_WORDS = ("response_format", "json_schema", "json_object", "response format")


class FormatRefused(RequestFailed):
    """The endpoint refused this request's response_format (try the next form)."""


def response_format(form: str, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The `response_format` of a request in `form` (None: send none)."""
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
    if form == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if form == "json_object":
        return {"type": "json_object"}
    return None


def with_format(body: dict[str, Any], form: str, name: str, schema: dict[str, Any]) -> dict[str, Any]:
    rf = response_format(form, name, schema)
    if rf is not None:
        body["response_format"] = rf
    return body


def answer_budget(form: str, tokens: int) -> int | None:
    """A bound on an answer's tokens where the server's decoding is not held to a strict schema: a
    small model under a loose grammar (or none) can write until its context is full."""
    return None if form == "json_schema" else tokens


def refused_for_form(exc: BaseException, body: dict[str, Any]) -> bool:
    """Did the server refuse the request because of its response_format?"""
    from routelab.providers.openai import errors

    if "response_format" not in body or errors.status_code(exc) not in REFUSAL_STATUSES:
        return False
    said = " ".join(str(v) for v in (getattr(exc, "param", None), getattr(exc, "message", None),
                                     getattr(exc, "body", None)) if v).lower()
    return any(w in said for w in _WORDS)


def start_form(declared: str | None) -> int:
    """Where probing starts: a declared form (and weaker ones), else the strongest."""
    return FORMS.index(declared) if declared in FORMS else 0
