"""What one endpoint supports: declared (`endpoints add --no-batch`), detected, or unknown.

Detected facts are remembered in the workspace by the endpoint's key (endpoint_capabilities),
so a second run neither probes the response format again nor sends a parameter the server
refused. OpenAI's own API and Azure deployments are the exception for request parameters:
there a refusal of logprobs or temperature belongs to one model (a reasoning model), not to
the endpoint, so it is kept for the run only.

Entries (each True/False, or a form name for `structured`):
- structured: the response format the endpoint accepts (formats.FORMS);
- logprobs, seed, n, temperature, max_tokens: request parameters it takes;
- batch, files, fine_tuning: its Batch, Files and fine-tuning APIs;
- confidence: where the last run's confidence came from (shown, never decided on).
"""

from __future__ import annotations

import threading
from typing import Any

from routelab.providers.openai.endpoints import Target

PARAMS = ("logprobs", "seed", "n", "temperature", "max_tokens")
APIS = ("batch", "files", "fine_tuning")
API_LABELS = {"batch": "Batch API", "files": "Files API", "fine_tuning": "fine-tuning API"}
API_MISSING = (404, 405, 501)  # what a server without an API answers its URLs
OFFICIAL = {"structured": "json_schema", "logprobs": True, "batch": True, "files": True, "fine_tuning": True}


class Capabilities:
    """Thread-safe knowledge about one endpoint; writes through to the workspace when there is one."""

    def __init__(self, target: Target, store=None):
        self.target = target
        self.name = target.name
        self.declared: dict[str, Any] = dict(target.declared)
        self._store = store
        self._lock = threading.Lock()
        self._run: dict[str, Any] = {}  # this run's model-dependent refusals (official endpoints)
        self._detected: dict[str, Any] = dict(store.detected_capabilities(target.key)) if store is not None else {}
        self.remember_params = not (target.official or target.kind == "azure")

    def get(self, what: str) -> Any:
        """Declared, else what this run saw, else what was detected before, else the kind's default, else None."""
        with self._lock:
            for source in (self.declared, self._run, self._detected):
                if what in source:
                    return source[what]
        return OFFICIAL.get(what) if self.target.official else None

    def source(self, what: str) -> str | None:
        if what in self.declared:
            return "declared"
        if what in self._run or what in self._detected:
            return "detected"
        return "default" if self.target.official and what in OFFICIAL else None

    def refused(self, what: str) -> bool:
        return self.get(what) is False

    def record(self, what: str, value: Any) -> None:
        """Remember a detected fact (written to the workspace only when it changes)."""
        with self._lock:
            if what in PARAMS and not self.remember_params:
                self._run[what] = value
                return
            if self._detected.get(what) == value and what in self._detected:
                return
            self._detected[what] = value
        if self._store is not None:
            self._store.record_capabilities(self.target.key, {what: value})

    def forget(self, what: str) -> None:
        with self._lock:
            self._run.pop(what, None)
            known = self._detected.pop(what, None) is not None
        if known and self._store is not None:
            self._store.record_capabilities(self.target.key, {what: None})

    def missing(self, api: str, command: str) -> str | None:
        """The one line a command that needs `api` says when the endpoint is known to lack it."""
        if self.get(api) is False:
            return f"endpoint {self.name} has no {API_LABELS[api]}; {command}"
        return None

    def snapshot(self) -> dict[str, tuple[Any, str | None]]:
        """Every entry known, with where it comes from: {what: (value, source)}."""
        names = dict.fromkeys([*self.declared, *self._detected, *self._run,
                               *(OFFICIAL if self.target.official else ())])
        return {n: (self.get(n), self.source(n)) for n in names}


# ---------------------------------------------------------------------------- what `endpoints list` shows

SHOWN = ("structured", "logprobs", "confidence", "seed", "n", "batch", "files", "fine_tuning")


def endpoint_rows(store, settings) -> list[dict[str, Any]]:
    """Every endpoint of the workspace, the default one first, with what is known of it."""
    import os

    from routelab.providers.openai.endpoints import default_target, named_target

    targets = [default_target(settings), *(named_target(e) for e in store.endpoints())]
    rows = []
    for t in targets:
        caps = Capabilities(t, store)
        known = caps.snapshot()
        rows.append({
            "name": t.name, "kind": t.kind, "base_url": t.base_url, "api_version": t.api_version,
            "api_key_env": t.api_key_env, "key_set": bool(t.api_key_env and os.environ.get(t.api_key_env)),
            "capabilities": {w: {"value": known[w][0], "source": known[w][1]} for w in SHOWN if w in known},
        })
    return rows


def require_api(client, api: str, command: str) -> None:
    """BadInput (one line, before any work is sent) where the client's endpoint lacks `api` (batch,
    files, fine_tuning): declared, detected before, or found now by one free listing request."""
    from routelab.domain import BadInput
    from routelab.providers.base import RequestFailed

    caps = client.caps
    missing = caps.missing(api, command)
    if missing is None and caps.get(api) is None:
        sync = client.sync
        listing = {"batch": lambda: sync.batches.list(limit=1), "files": lambda: sync.files.list(),
                   "fine_tuning": lambda: sync.fine_tuning.jobs.list(limit=1)}[api]
        try:
            client.call(f"checking for a {API_LABELS[api]}", listing)
        except RequestFailed as e:
            if e.status not in API_MISSING:
                raise
            caps.record(api, False)
            missing = caps.missing(api, command)
        else:
            caps.record(api, True)
    if missing:
        raise BadInput(missing)
