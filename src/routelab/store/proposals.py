"""Proposals: what each model said about each example (hand-written SQL: a local model
answers thousands a second, and `unproposed` pages through a million rows to resume a run)."""

from __future__ import annotations

from typing import Any

from routelab.domain import Example, ExampleFilter, Proposal
from routelab.store.connection import StoreBase
from routelab.store.examples import example_from_row
from routelab.store.filters import filter_sql


class ProposalsTable(StoreBase):
    def add_proposal(self, p: Proposal) -> bool:
        """Store one proposal as it arrives. Returns False if that (example, model) had one."""
        return self.add_proposals([p]) == 1

    def add_proposals(self, proposals: list[Proposal]) -> int:
        """Many proposals in one transaction (local models answer thousands per second)."""
        with self.transaction() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO proposals (example_id, model, prompt_version, action, valid, confidence, raw, "
                "tokens, tokens_in, tokens_out, cost, latency_ms, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        p.example_id, p.model, p.prompt_version, p.action, int(p.valid), p.confidence, p.raw,
                        p.tokens_in + p.tokens_out, p.tokens_in, p.tokens_out, p.cost, p.latency_ms, p.created_at,
                    )
                    for p in proposals
                ],
            )
            return c.total_changes - before

    def proposals(self, example_id: int) -> list[Proposal]:
        rows = self._rows("SELECT * FROM proposals WHERE example_id = ? ORDER BY id", (example_id,))
        return [_proposal(r) for r in rows]

    def proposals_for(self, model: str, ids: list[int] | None = None) -> dict[int, Proposal]:
        sql, args = "SELECT * FROM proposals WHERE model = ?", [model]
        if ids is not None:
            sql += f" AND example_id IN ({','.join('?' * len(ids)) or 'NULL'})"
            args += ids
        return {r["example_id"]: _proposal(r) for r in self._rows(sql, args)}

    def proposal_models(self) -> list[str]:
        """Every model that has proposed something, most used first."""
        return [r[0] for r in self.conn.execute("SELECT model FROM proposals GROUP BY model ORDER BY COUNT(*) DESC")]

    def unproposed(
        self, model: str, *, prompt_version: str = "v1", after: int = 0, limit: int = 1000,
        flt: ExampleFilter = ExampleFilter(),
    ) -> list[Example]:
        """Examples with no proposal from this model yet, in id order (to resume a run)."""
        where, args = filter_sql(flt)
        sql = (
            f"SELECT * FROM examples e WHERE {where} AND e.id > ? AND NOT EXISTS (SELECT 1 FROM proposals p "
            "WHERE p.example_id = e.id AND p.model = ? AND p.prompt_version = ?) ORDER BY e.id LIMIT ?"
        )
        return [example_from_row(r) for r in self._rows(sql, [*args, after, model, prompt_version, limit])]

    def count_unproposed(self, model: str, *, prompt_version: str = "v1", flt: ExampleFilter = ExampleFilter()) -> int:
        where, args = filter_sql(flt)
        return self.conn.execute(
            f"SELECT COUNT(*) FROM examples e WHERE {where} AND NOT EXISTS (SELECT 1 FROM proposals p "
            "WHERE p.example_id = e.id AND p.model = ? AND p.prompt_version = ?)",
            [*args, model, prompt_version],
        ).fetchone()[0]


def _proposal(r: dict[str, Any]) -> Proposal:
    return Proposal(**{k: v for k, v in r.items() if k != "tokens"} | {"valid": bool(r["valid"])})
