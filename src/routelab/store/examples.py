"""Reading examples: keyset pages, positions, counts and search (hand-written SQL).

These are the review pane's hot paths at a million rows: every query is an index
lookup or an FTS5 match over the WHERE clause `filter_sql` builds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from routelab.domain import Example, ExampleFilter, Message, Status
from routelab.store.connection import StoreBase
from routelab.store.filters import filter_sql


class ExamplesTable(StoreBase):
    def example(self, example_id: int) -> Example | None:
        rows = self._rows("SELECT * FROM examples WHERE id = ?", (example_id,))
        return example_from_row(rows[0]) if rows else None

    def example_id_by_hash(self, content_hash: str) -> int | None:
        row = self.conn.execute("SELECT id FROM examples WHERE hash = ?", (content_hash,)).fetchone()
        return row[0] if row else None

    def existing_hashes(self, hashes: Iterable[str]) -> set[str]:
        """Which of these content hashes are already in the workspace (dedupe before asking for more)."""
        hashes = list(dict.fromkeys(hashes))
        found: set[str] = set()
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            found.update(r[0] for r in self.conn.execute(
                f"SELECT hash FROM examples WHERE hash IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def examples_by_ids(self, ids: list[int]) -> list[Example]:
        if not ids:
            return []
        rows = self._rows(f"SELECT * FROM examples WHERE id IN ({','.join('?' * len(ids))})", ids)
        by_id = {r["id"]: example_from_row(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def page(
        self, flt: ExampleFilter = ExampleFilter(), *, after: int | None = None,
        before: int | None = None, limit: int = 50,
    ) -> list[Example]:
        """A keyset page in id order: the `limit` rows after `after` (or before `before`)."""
        where, args = filter_sql(flt)
        if before is not None:
            sql = f"SELECT * FROM examples e WHERE {where} AND e.id < ? ORDER BY e.id DESC LIMIT ?"
            rows = self._rows(sql, [*args, before, limit])[::-1]
        else:
            sql = f"SELECT * FROM examples e WHERE {where} AND e.id > ? ORDER BY e.id LIMIT ?"
            rows = self._rows(sql, [*args, after or 0, limit])
        return [example_from_row(r) for r in rows]

    def page_at(self, flt: ExampleFilter = ExampleFilter(), *, offset: int, limit: int = 50) -> list[Example]:
        """A page by position (for a jump of the scrollbar); prefer `page` for stepping."""
        where, args = filter_sql(flt)
        sql = f"SELECT * FROM examples e WHERE {where} ORDER BY e.id LIMIT ? OFFSET ?"
        return [example_from_row(r) for r in self._rows(sql, [*args, limit, max(0, offset)])]

    def position(self, flt: ExampleFilter, example_id: int) -> int:
        """How many rows of the filter come before this example."""
        where, args = filter_sql(flt)
        return self.conn.execute(
            f"SELECT COUNT(*) FROM examples e WHERE {where} AND e.id < ?", [*args, example_id]
        ).fetchone()[0]

    def count(self, flt: ExampleFilter = ExampleFilter()) -> int:
        where, args = filter_sql(flt)
        return self.conn.execute(f"SELECT COUNT(*) FROM examples e WHERE {where}", args).fetchone()[0]

    def counts_by(self, column: str, flt: ExampleFilter = ExampleFilter()) -> dict[str, int]:
        """Counts grouped by status, source, split or label (the current human label)."""
        if column not in ("status", "source", "split", "label"):
            raise ValueError(column)
        where, args = filter_sql(flt)
        rows = self.conn.execute(
            f"SELECT e.{column}, COUNT(*) FROM examples e WHERE {where} GROUP BY e.{column} ORDER BY 2 DESC",
            args,
        ).fetchall()
        return {(k if k is not None else ""): n for k, n in rows}

    def sources(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT source FROM examples ORDER BY source")]

    def set_split(self, ids: list[int], split: str) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE examples SET split = ? WHERE id = ?", [(split, i) for i in ids])


def example_from_row(r: dict[str, Any]) -> Example:
    conv = r.get("conversation")
    return Example(
        id=r["id"], text=r["text"], source=r["source"], split=r["split"], hash=r["hash"],
        created_at=r["created_at"], label=r["label"], status=Status(r["status"]),
        conversation=[Message(**m) for m in json.loads(conv)] if conv else None,
    )
