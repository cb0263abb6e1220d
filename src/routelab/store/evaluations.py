"""Evaluations: one row per model per evaluated split, with its metrics and details."""

from __future__ import annotations

import json
from typing import Any

from routelab.domain import Evaluation
from routelab.store.connection import StoreBase


class EvaluationsTable(StoreBase):
    def add_evaluation(self, ev: Evaluation) -> Evaluation:
        data = ev.model_dump(exclude={"id"})
        data["details"] = json.dumps(data["details"])
        with self.transaction():
            ev.id = self.db["evaluations"].insert(data).last_rowid
        return ev

    def evaluations(self, *, model: str | None = None, limit: int = 500) -> list[Evaluation]:
        sql, args = "SELECT * FROM evaluations WHERE 1", []
        if model:
            sql += " AND model = ?"
            args.append(model)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [_evaluation(r) for r in self._rows(sql, args)]

    def latest_evaluations(self, split: str | None = None) -> list[Evaluation]:
        """The newest evaluation of each model (on one split, or on the newest evaluated split), oldest first."""
        if split is None:
            row = self.conn.execute("SELECT split FROM evaluations ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return []
            split = row[0]
        rows = self._rows(
            "SELECT * FROM evaluations WHERE id IN (SELECT MAX(id) FROM evaluations WHERE split IS ? GROUP BY model) "
            "ORDER BY id", (split,),
        )
        return [_evaluation(r) for r in rows]


def _evaluation(r: dict[str, Any]) -> Evaluation:
    return Evaluation(**{**r, "details": json.loads(r["details"])})
