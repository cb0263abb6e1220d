"""Trying routers on one question: every selected model side by side.

Used by `routelab route TEXT` and the Playground pane. A question may carry a short
conversation: parts separated by " | " are earlier turns, alternating user and
assistant, the last part being the user's question, e.g.
`I need a day off | Sure, which day? | next Friday please`.
Routers are loaded once and kept (the local ones load their embeddings the first time).
A request that fails (no connection, a refused key, a timeout) is that model's error,
naming the endpoint: never an "invalid" answer, which would read as the model's fault.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from routelab.domain import (
    BadInput,
    Example,
    Message,
    NewExample,
    Proposal,
    RoutelabError,
    content_hash,
    now_iso,
)
from routelab.store import Store

SEPARATOR = " | "
PLAYGROUND_SOURCE = "playground"


@dataclass
class RouteResult:
    model: str
    action: str | None = None
    valid: bool = False
    confidence: float | None = None
    latency_ms: float | None = None
    cost: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    raw: str | None = None
    error: str | None = None  # the model could not answer (unknown id, 401, network): show this, not "invalid"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "action": self.action, "valid": self.valid, "confidence": self.confidence,
            "latency_ms": self.latency_ms, "cost": self.cost, "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out, "error": self.error,
        }


@dataclass
class Try:
    """One question routed by several models."""

    text: str
    conversation: list[Message] | None
    results: list[RouteResult]
    at: str = field(default_factory=now_iso)
    saved_id: int | None = None  # the example id once saved into the workspace

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "conversation": [m.model_dump() for m in self.conversation] if self.conversation else None,
            "routes": [r.as_dict() for r in self.results],
            "saved_id": self.saved_id,
        }


def parse_question(raw: str) -> tuple[str, list[Message] | None]:
    """`earlier | reply | question` -> (question, earlier turns); BadInput when empty. A part made
    of nothing but separators (`route ' | | '`) is empty: "|" is no question to route."""
    parts = [p.strip() for p in raw.split(SEPARATOR)]
    parts = [p for p in parts if p.strip("|").strip()]
    if not parts:
        raise BadInput("type a question first")
    question, earlier = parts[-1], parts[:-1]
    roles = ["assistant" if (len(earlier) - i) % 2 == 1 else "user" for i in range(len(earlier))]
    conversation = [Message(role=r, content=c) for r, c in zip(roles, earlier)] or None  # type: ignore[arg-type]
    try:
        NewExample(text=question, conversation=conversation)
    except ValidationError as e:
        raise BadInput(f"question: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return question, conversation


class Playground:
    """Routers by model id, loaded lazily and kept; routes one question with many models."""

    def __init__(self, store: Store, settings=None):
        self.store = store
        self._settings = settings
        self._routers: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def settings(self):
        if self._settings is None:
            from routelab.config import settings as load

            self._settings = load()
        return self._settings

    def models(self) -> list[str]:
        """Every model that can run here (the same list `routelab eval` uses)."""
        from routelab.services.evaluation import default_models

        return default_models(self.store, self.settings)

    def router(self, model: str):
        """The router for a model id, loaded once (raises RoutelabError when it cannot be)."""
        with self._lock:
            if model in self._routers:
                return self._routers[model]
        from routelab.services.evaluation import resolve_router

        router = resolve_router(self.store, model, self.settings)
        with self._lock:
            return self._routers.setdefault(model, router)

    def forget(self, model: str | None = None) -> None:
        """Drop cached routers (all, or one) so the next route reloads them (e.g. after training)."""
        with self._lock:
            if model is None:
                self._routers.clear()
            else:
                self._routers.pop(model, None)

    def warm(self, models: Sequence[str]) -> dict[str, str]:
        """Load routers and what they route with (a model, an SDK); returns model -> error."""
        errors: dict[str, str] = {}
        for model in models:
            try:
                self.router(model).prepare()
            except RoutelabError as e:
                errors[model] = str(e)
            except Exception as e:  # a broken model must not stop the others loading
                errors[model] = f"{type(e).__name__}: {e}"
        return errors

    def route(self, raw: str, models: Sequence[str]) -> Try:
        """Route one question (with its conversation) by every model, side by side."""
        text, conversation = parse_question(raw)
        if not models:
            raise BadInput("no model selected")
        example = _example(text, conversation)
        actions = self.store.actions()
        if not actions:
            raise BadInput("the workspace has no actions yet: routelab actions add NAME --description D")

        def one(model: str) -> RouteResult:
            t0 = time.perf_counter()
            try:
                route = _route_one(self.router(model), example, actions)
            except RoutelabError as e:
                return RouteResult(model=model, error=str(e))
            except Exception as e:
                return RouteResult(model=model, error=f"{type(e).__name__}: {e}")
            elapsed = (time.perf_counter() - t0) * 1000
            return RouteResult(
                model=model, action=route.action, valid=route.valid and route.action is not None,
                confidence=route.confidence,
                latency_ms=route.latency_ms if route.latency_ms is not None else elapsed,
                cost=route.cost, tokens_in=route.tokens_in, tokens_out=route.tokens_out, raw=route.raw,
            )

        models = list(dict.fromkeys(models))
        # in-process routers share one embedding model (behind a lock): run them one after the other
        # so each latency is its own; remote ones wait on the network, so they go in parallel
        remote = [m for m in models if self._is_remote(m)]
        by_model: dict[str, RouteResult] = {m: one(m) for m in models if m not in remote}
        if remote:
            with ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
                by_model.update(zip(remote, pool.map(one, remote)))
        return Try(text=text, conversation=conversation, results=[by_model[m] for m in models])

    def _is_remote(self, model: str) -> bool:
        try:
            return self.router(model).remote
        except Exception:  # reported by the route itself
            return False

    def save(self, attempt: Try) -> int:
        """Save the question into the workspace (source playground) with its routes as proposals."""
        new = NewExample(text=attempt.text, conversation=attempt.conversation, source=PLAYGROUND_SOURCE)
        self.store.add_examples([new])
        example_id = self.store.example_id_by_hash(new.hash)
        if example_id is None:  # pragma: no cover - add_examples either added it or found it
            raise RoutelabError("could not save the question")
        proposals = [
            Proposal(example_id=example_id, model=r.model, prompt_version=self.router(r.model).prompt_version,
                     action=r.action, valid=r.valid, confidence=r.confidence, raw=r.raw, tokens_in=r.tokens_in,
                     tokens_out=r.tokens_out, cost=r.cost, latency_ms=r.latency_ms)
            for r in attempt.results if r.error is None
        ]
        if proposals:
            self.store.add_proposals(proposals)
        attempt.saved_id = example_id
        return example_id


def _route_one(router, example: Example, actions):
    """One question by one router. A router that routes one at a time (a remote one) is asked that
    way, so a failed request raises its error (a batch would fold it into an invalid route)."""
    if not router.supports_async:
        return router.route_batch([example], actions)[0]

    async def run():
        try:
            return await router.aroute(example, actions)
        finally:
            await router.aclose()

    return asyncio.run(run())


def _example(text: str, conversation: list[Message] | None) -> Example:
    return Example(id=0, text=text, conversation=conversation, source=PLAYGROUND_SOURCE, split="unassigned",
                   hash=content_hash(text, conversation), created_at=now_iso())


__all__ = ["Playground", "RouteResult", "Try", "parse_question", "SEPARATOR", "PLAYGROUND_SOURCE"]
