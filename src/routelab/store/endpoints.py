"""Named endpoints (`routelab endpoints add`) and what each endpoint was found to support.

An endpoint row holds a URL and the *name* of the environment variable that holds its
key; a key is never stored (the provider layer refuses a URL that carries credentials
before it gets here). Capabilities detected on an endpoint (the response format it
accepts, whether it gives logprobs, has a Batch API...) are kept by the endpoint's key
(its URL), so the next run does not probe again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from routelab.domain import now_iso
from routelab.store.connection import StoreBase

KINDS = ("openai", "azure")


@dataclass
class Endpoint:
    name: str
    base_url: str
    kind: str = "openai"
    api_key_env: str | None = None  # the NAME of the variable, never its value
    api_version: str | None = None  # Azure's api-version
    declared: dict[str, Any] = field(default_factory=dict)  # capabilities stated at `endpoints add`
    created_at: str | None = None


class EndpointsTable(StoreBase):
    def save_endpoint(self, endpoint: Endpoint) -> None:
        """Add an endpoint, or replace the one of that name (what was detected on its old URL stays
        with that URL)."""
        record = {"name": endpoint.name, "kind": endpoint.kind, "base_url": endpoint.base_url,
                  "api_key_env": endpoint.api_key_env, "api_version": endpoint.api_version,
                  "declared": json.dumps(endpoint.declared, sort_keys=True),
                  "created_at": endpoint.created_at or now_iso()}
        with self.transaction():
            self.db["endpoints"].insert(record, replace=True)

    def endpoint(self, name: str) -> Endpoint | None:
        rows = self._rows("SELECT * FROM endpoints WHERE name = ?", (name,))
        return _endpoint(rows[0]) if rows else None

    def endpoints(self) -> list[Endpoint]:
        return [_endpoint(r) for r in self._rows("SELECT * FROM endpoints ORDER BY name")]

    def remove_endpoint(self, name: str, capabilities_key: str | None = None) -> bool:
        """Forget an endpoint (and, given its key, what was detected there: re-adding it probes again)."""
        with self.transaction() as c:
            gone = c.execute("DELETE FROM endpoints WHERE name = ?", (name,)).rowcount > 0
            if gone and capabilities_key is not None:
                c.execute("DELETE FROM endpoint_capabilities WHERE endpoint = ?", (capabilities_key,))
        return gone

    def detected_capabilities(self, key: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT detected FROM endpoint_capabilities WHERE endpoint = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else {}

    def record_capabilities(self, key: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge `changes` into what is known of endpoint `key` (a None value forgets that entry)."""
        with self.transaction() as c:
            row = c.execute("SELECT detected FROM endpoint_capabilities WHERE endpoint = ?", (key,)).fetchone()
            detected = json.loads(row[0]) if row else {}
            for name, value in changes.items():
                if value is None:
                    detected.pop(name, None)
                else:
                    detected[name] = value
            c.execute("INSERT INTO endpoint_capabilities (endpoint, detected, updated_at) VALUES (?, ?, ?) "
                      "ON CONFLICT (endpoint) DO UPDATE SET detected = excluded.detected, "
                      "updated_at = excluded.updated_at", (key, json.dumps(detected, sort_keys=True), now_iso()))
        return detected


def _endpoint(r: dict[str, Any]) -> Endpoint:
    return Endpoint(**{**r, "declared": json.loads(r["declared"] or "{}")})
