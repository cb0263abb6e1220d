"""Trained models (a local model's artifact lives in the workspace) and uploaded files
(so the same training file is never uploaded twice to the same endpoint)."""

from __future__ import annotations

import json
from typing import Any

from routelab.domain import TrainedModel, now_iso
from routelab.store.connection import StoreBase

_WITHOUT_ARTIFACT = "id, provider, kind, base, job_id, params, metrics, created_at"


class ModelsTable(StoreBase):
    def save_model(self, model: TrainedModel) -> None:
        record = model.model_dump() | {"params": json.dumps(model.params), "metrics": json.dumps(model.metrics)}
        with self.transaction():
            self.db["models"].insert(record, replace=True)

    def trained_model(self, model_id: str, *, with_artifact: bool = True) -> TrainedModel | None:
        cols = "*" if with_artifact else _WITHOUT_ARTIFACT
        rows = self._rows(f"SELECT {cols} FROM models WHERE id = ?", (model_id,))
        return _trained_model(rows[0]) if rows else None

    def trained_models(self, *, provider: str | None = None, kind: str | None = "finetune") -> list[TrainedModel]:
        """Models training produced (by default fine-tunes, not the local teacher's cache)."""
        sql = f"SELECT {_WITHOUT_ARTIFACT} FROM models WHERE 1"
        args: list[Any] = []
        if provider:
            sql += " AND provider = ?"
            args.append(provider)
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        return [_trained_model(r) for r in self._rows(sql + " ORDER BY created_at", args)]

    def find_upload(self, provider: str, base_url: str, sha256: str, purpose: str) -> str | None:
        row = self.conn.execute(
            "SELECT remote_id FROM uploads WHERE provider = ? AND base_url = ? AND sha256 = ? AND purpose = ?",
            (provider, base_url, sha256, purpose),
        ).fetchone()
        return row[0] if row else None

    def record_upload(self, provider: str, base_url: str, sha256: str, purpose: str, remote_id: str,
                      filename: str, size: int) -> None:
        record = {"provider": provider, "base_url": base_url, "sha256": sha256, "purpose": purpose,
                  "remote_id": remote_id, "filename": filename, "bytes": size, "created_at": now_iso()}
        with self.transaction():
            # one row per endpoint, digest and purpose: the newest upload wins
            self.db["uploads"].insert(record, replace=True)


def _trained_model(r: dict[str, Any]) -> TrainedModel:
    return TrainedModel(**{**r, "params": json.loads(r["params"]), "metrics": json.loads(r["metrics"])})
