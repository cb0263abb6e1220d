"""Decisions: the append-only log of what the operator did (hand-written SQL, one
keypress each). An example's label and status are a cache of its log, refreshed in the
same transaction as each decision.

Decisions taken in the app reach the log through the decision journal
(services/decision_journal.py): `apply_entries` writes a batch of journal entries in one
transaction, each stored with its entry id (`decisions.entry`, unique), so replaying a
journal after a crash writes nothing twice."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from routelab.domain import BadInput, Decision, DecisionKind, ExampleFilter, Status
from routelab.store.actions import active_names
from routelab.store.connection import StoreBase
from routelab.store.filters import filter_sql

NEEDS_ACTION = (DecisionKind.ACCEPT, DecisionKind.OVERRIDE, DecisionKind.IMPORT)
OPERATOR_KINDS = ("accept", "override", "skip", "flag")


@dataclass(frozen=True)
class Entry:
    """One line of the decision journal: a decision (`op` "decide"), or the undo of an earlier
    entry (`op` "cancel", `target` its id) whether or not that one reached the store yet."""

    id: str
    op: str
    example_id: int
    kind: str | None = None
    action: str | None = None
    model: str | None = None
    at: str | None = None
    target: str | None = None
    question: str | None = None  # the question's content hash: an entry never lands on another question


class DecisionsTable(StoreBase):
    def decide(
        self, example_id: int, kind: DecisionKind | str, action: str | None = None, *, model: str | None = None
    ) -> Decision:
        """Append one operator decision and refresh the example's label, atomically."""
        return self.decide_many([(example_id, kind, action, model)])[0]

    def decide_many(self, items: list[tuple[int, DecisionKind | str, str | None, str | None]]) -> list[Decision]:
        known = set(active_names(self.conn))
        out: list[Decision] = []
        with self.transaction() as c:
            for example_id, kind, action, model in items:
                kind = DecisionKind(kind)
                if kind == DecisionKind.UNDO:
                    raise ValueError("use undo() to undo a decision")
                if kind in NEEDS_ACTION and action not in known:
                    raise BadInput(f"unknown action {action!r}")
                if kind not in NEEDS_ACTION:
                    action = None
                d = Decision(example_id=example_id, kind=kind, action=action, model=model)
                d.id = c.execute(
                    "INSERT INTO decisions (example_id, kind, action, model, at) VALUES (?, ?, ?, ?, ?)",
                    (example_id, str(kind), action, model, d.at),
                ).lastrowid
                _refresh(c, example_id)
                out.append(d)
        return out

    def apply_entries(self, entries: list[Entry], *, wait: bool = True) -> dict[str, int]:
        """Write journal entries in order, in one transaction, each at most once: an entry already
        stored is passed over, a decision cancelled in the same batch is never written, a cancel
        of a stored decision appends its undo, and an entry that can no longer apply (its action
        was removed, its question is gone, or the id is another question's: a journal beside a
        workspace made anew) is dropped. Returns entry id -> decision id of every
        entry of the batch now in the store. `wait=False`: WorkspaceLocked at once if another
        process holds the write lock."""
        with self.transaction(wait=wait) as c:
            present = _stored_entries(c, [e.id for e in entries] + [e.target for e in entries if e.target])
            cancelled = {e.target for e in entries if e.op == "cancel"}
            known = set(active_names(c))
            for e in entries:
                if e.id in present:
                    continue
                if e.op == "decide":
                    if e.id in cancelled or not _applicable(c, e, known):
                        continue
                    present[e.id] = c.execute(
                        "INSERT INTO decisions (example_id, kind, action, model, at, entry) VALUES (?, ?, ?, ?, ?, ?)",
                        (e.example_id, e.kind, e.action if e.kind in ("accept", "override") else None, e.model,
                         e.at, e.id),
                    ).lastrowid
                elif e.op == "cancel" and e.target in present:
                    target = present[e.target]
                    if c.execute("SELECT 1 FROM decisions WHERE undoes = ?", (target,)).fetchone():
                        continue
                    present[e.id] = c.execute(
                        "INSERT INTO decisions (example_id, kind, undoes, at, entry) VALUES (?, 'undo', ?, ?, ?)",
                        (e.example_id, target, e.at, e.id),
                    ).lastrowid
                else:
                    continue
                _refresh(c, e.example_id)
        return present

    def stored_entries(self, ids: list[str]) -> dict[str, int]:
        """Which journal entries are in the store: entry id -> decision id."""
        return _stored_entries(self.conn, ids)

    def entry_undone(self, entry_id: str) -> bool:
        """Is the decision stored for this journal entry undone (e.g. by another reviewer)?"""
        return self.conn.execute(
            "SELECT 1 FROM decisions d JOIN decisions u ON u.undoes = d.id WHERE d.entry = ?", (entry_id,)
        ).fetchone() is not None

    def undo(self, decision_id: int | None = None, *, wait: bool = True) -> Decision | None:
        """Cancel a decision (default: the newest one not yet undone) by appending an undo."""
        with self.transaction(wait=wait) as c:
            if decision_id is None:
                row = c.execute(
                    "SELECT id, example_id FROM decisions d WHERE kind IN ('accept','override','skip','flag') "
                    "AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) ORDER BY id DESC LIMIT 1"
                ).fetchone()
            else:
                row = c.execute(
                    "SELECT id, example_id FROM decisions d WHERE id = ? AND kind IN ('accept','override','skip','flag') "
                    "AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)",
                    (decision_id,),
                ).fetchone()
            if row is None:
                return None
            d = Decision(example_id=row[1], kind=DecisionKind.UNDO, undoes=row[0])
            d.id = c.execute(
                "INSERT INTO decisions (example_id, kind, undoes, at) VALUES (?, 'undo', ?, ?)",
                (d.example_id, d.undoes, d.at),
            ).lastrowid
            _refresh(c, d.example_id)
            return d

    def history(self, example_id: int) -> list[Decision]:
        rows = self._rows("SELECT * FROM decisions WHERE example_id = ? ORDER BY id", (example_id,))
        return [Decision(**r) for r in rows]

    def decision_count(self, since: str | None = None) -> int:
        """Operator decisions (not imports or undos), optionally since an ISO time."""
        sql = "SELECT COUNT(*) FROM decisions WHERE kind IN ('accept','override','skip','flag')"
        args: list[Any] = []
        if since:
            sql += " AND at >= ?"
            args.append(since)
        return self.conn.execute(sql, args).fetchone()[0]

    def count_bulk_accept(self, flt: ExampleFilter, model: str, min_confidence: float | None = None) -> int:
        """How many unreviewed questions of the filter a bulk accept of `model`'s proposals would label."""
        sql, args = _bulk_where(flt, model, min_confidence)
        return self.conn.execute(f"SELECT COUNT(DISTINCT e.id) {sql}", args).fetchone()[0]

    def bulk_accept_candidates(
        self, flt: ExampleFilter, model: str, min_confidence: float | None = None, *, after: int = 0,
        limit: int = 2_000,
    ) -> list[tuple[int, str]]:
        """The next `limit` (example id, proposed action) pairs a bulk accept would label, in id order
        after `after`: a caller accepts them in chunks and resumes after the last id."""
        sql, args = _bulk_where(flt, model, min_confidence)
        return self.conn.execute(
            f"SELECT e.id, p.action {sql} AND e.id > ? GROUP BY e.id ORDER BY e.id LIMIT ?", [*args, after, limit]
        ).fetchall()


def _bulk_where(flt: ExampleFilter, model: str, min_confidence: float | None) -> tuple[str, list[Any]]:
    # Bulk accept never overrides a human: only questions still unreviewed are touched,
    # and only with a valid proposal naming an active action.
    where, args = filter_sql(replace(flt, status=Status.UNREVIEWED))
    sql = (
        f"FROM examples e JOIN proposals p ON p.example_id = e.id WHERE {where} "
        "AND p.model = ? AND p.valid = 1 AND p.action IN (SELECT name FROM actions WHERE active = 1)"
    )
    args = [*args, model]
    if min_confidence is not None:
        sql += " AND p.confidence >= ?"
        args.append(min_confidence)
    return sql, args


def _stored_entries(c: sqlite3.Connection, ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        found.update(c.execute(f"SELECT entry, id FROM decisions WHERE entry IN ({marks})", chunk).fetchall())
    return found


def _applicable(c: sqlite3.Connection, e: Entry, known: set[str]) -> bool:
    if e.kind not in OPERATOR_KINDS or (e.kind in ("accept", "override") and e.action not in known):
        return False
    row = c.execute("SELECT hash FROM examples WHERE id = ?", (e.example_id,)).fetchone()
    return row is not None and (e.question is None or row[0] == e.question)


def replay(rows: list[tuple[int, str, str | None, int | None]]) -> tuple[str | None, Status]:
    """The label and status a run of one example's decisions (id, kind, action, undoes) in id order
    leaves: an undo among them cancels its target."""
    undone = {r[3] for r in rows if r[1] == "undo"}
    label, status = None, Status.UNREVIEWED
    for _id, kind, action, _undoes in rows:
        if _id in undone or kind == "undo":
            continue
        if kind in ("accept", "override", "import"):
            label, status = action, Status.REVIEWED
        elif kind == "skip":
            status = Status.SKIPPED
        elif kind == "flag":
            status = Status.FLAGGED
    return label, status


def _refresh(c: sqlite3.Connection, example_id: int) -> None:
    """Replay an example's decisions into its cached label and status."""
    rows = c.execute(
        "SELECT id, kind, action, undoes FROM decisions WHERE example_id = ? ORDER BY id", (example_id,)
    ).fetchall()
    label, status = replay(rows)
    c.execute("UPDATE examples SET label = ?, status = ? WHERE id = ?", (label, str(status), example_id))
