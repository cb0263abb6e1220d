"""Writing examples in bulk: the import's hot path, in hand-written SQL.

An import is one transaction, written chunk by chunk as a parser produces rows (a
million rows at over 100,000 a second). Multi-row INSERTs, the search index filled
once per chunk, and on a big import the examples indexes dropped and rebuilt by
sorting at the end: each measured several times faster than the plain way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain

import sqlite_utils

from routelab.domain import BadInput, ExampleRow, NewExample, RowChunk, now_iso
from routelab.store.actions import active_names, fallback_in, new_action, upsert_in
from routelab.store.connection import StoreBase

BULK_ROWS = 20_000  # an import at least this big (and bigger than the table) rebuilds indexes
INSERT_BATCH = 64  # rows per INSERT statement: a quarter less per-row overhead than one by one


@dataclass
class ImportResult:
    read: int = 0
    added: int = 0
    duplicates: int = 0  # repeated + existing
    repeated: int = 0  # same content twice in the file (after whitespace folding)
    existing: int = 0  # already in the workspace
    labelled: int = 0
    actions_created: list[str] = field(default_factory=list)


def _describe(name: str) -> str:
    return name.replace("_", " ")


class ImportsTable(StoreBase):
    def add_examples(
        self, examples: list[NewExample], *, create_actions: bool = False,
        describe: Callable[[str], str] = _describe,
    ) -> ImportResult:
        """Insert examples (and their file labels as `import` decisions) in one transaction."""
        return self.import_rows(
            [RowChunk([e.row() for e in examples], 1.0)], create_actions=create_actions, describe=describe
        )

    def import_rows(
        self, chunks: Iterable[RowChunk], *, create_actions: bool = False,
        describe: Callable[[str], str] = _describe,
        progress: Callable[[float, int], None] | None = None, origin: str | None = None,
    ) -> ImportResult:
        """Write examples as they are parsed, all in one transaction (all or nothing).

        An example whose content hash is already present is skipped (the first of a file's
        repeats wins), so re-importing the same content adds nothing. Labels must name
        known actions unless create_actions, which adds them (described by
        `describe(name)`) in the same transaction; a created action that a chunk names as
        its file's `fallback` (CLINC150's `oos`) becomes the catalog's fallback if it has none. A big import drops the examples
        indexes and rebuilds them by sorting at the end: several times faster than
        updating them row by row. `progress(fraction, rows)` follows each chunk; `origin`
        (the file) begins the message of a label error.
        """
        run = _ImportRun(set(active_names(self.conn)), create_actions, f"{origin}: " if origin else "")
        with self.transaction() as c:
            run.begin(c)
            for chunk in chunks:
                run.add_chunk(c, chunk.rows, chunk.fraction)
                run.fallback = run.fallback or chunk.fallback
                if progress is not None:
                    progress(chunk.fraction, run.result.read)
            run.finish(self.db, describe)
        return run.summary()


class _ImportRun:
    """The state one import shares between its chunks, inside its transaction."""

    def __init__(self, known: set[str], create_actions: bool, prefix: str):
        self.known = known
        self.create_actions = create_actions
        self.prefix = prefix
        self.at = now_iso()
        self.result = ImportResult()
        self.unknown: set[str] = set()
        self.in_file: set[str] = set()  # hashes seen in this file so far
        self.in_table: set[str] = set()  # hashes already stored, on the bulk path
        self.bulk: list[tuple[str, str]] | None = None  # the dropped indexes, on the bulk path
        self.fallback: str | None = None  # the label the file calls out of scope

    def begin(self, c: sqlite3.Connection) -> None:
        self.before = self.last = _max_id(c)
        self.table_rows = c.execute("SELECT COUNT(*) FROM examples").fetchone()[0]

    def add_chunk(self, c: sqlite3.Connection, rows: list[ExampleRow], fraction: float) -> None:
        self.result.read += len(rows)
        self.unknown.update({r[5] for r in rows if r[5] is not None and r[5] not in self.known})
        if self.unknown and not self.create_actions:
            return  # read on, so the error names every unknown label; nothing is kept
        if self.bulk is None and len(rows) / max(fraction, 1e-9) >= max(BULK_ROWS, self.table_rows):
            self.bulk = _drop_example_indexes(c)
            self.in_table = {h for (h,) in c.execute("SELECT hash FROM examples")}
        # first occurrences only (set.add returns None, so a new hash keeps its row)
        in_file = self.in_file
        unique = [r for r in rows if not (r[4] in in_file or in_file.add(r[4]))]
        self.result.repeated += len(rows) - len(unique)
        fresh = [r for r in unique if r[4] not in self.in_table] if self.in_table else unique
        # Without the unique index (bulk) every row is new; with it, OR IGNORE skips
        # the ones already in the workspace.
        _insert_examples(c, fresh, self.at, ignore=self.bulk is None)
        c.execute("INSERT INTO examples_fts (rowid, text) SELECT id, text FROM examples WHERE id > ?", (self.last,))
        self.last = _max_id(c)

    def finish(self, db: sqlite_utils.Database, describe: Callable[[str], str]) -> None:
        c = db.conn
        if self.unknown and not self.create_actions:
            names = sorted(self.unknown)
            shown = ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
            raise BadInput(
                f"{self.prefix}label not in the action catalog: {shown} (use --create-actions to add them)"
            )
        if self.unknown:
            new = [new_action(n, describe, self.prefix) for n in sorted(self.unknown)]
            # the file's out-of-scope action becomes the fallback when this import creates it and
            # the catalog has none (a fallback someone chose is theirs)
            for a in new:
                a.fallback = a.name == self.fallback and fallback_in(c) is None
            upsert_in(db, new, self.result.actions_created, [])
        for _, sql in self.bulk or []:
            c.execute(sql)
        self.result.labelled = c.execute(
            "INSERT INTO decisions (example_id, kind, action, at) "
            "SELECT id, 'import', label, ? FROM examples WHERE id > ? AND label IS NOT NULL",
            (self.at, self.before),
        ).rowcount
        self.result.added = self.last - self.before

    def summary(self) -> ImportResult:
        result = self.result
        result.duplicates = result.read - result.added
        result.existing = result.duplicates - result.repeated
        return result


def _max_id(c: sqlite3.Connection) -> int:
    return c.execute("SELECT COALESCE(MAX(id), 0) FROM examples").fetchone()[0]


def _drop_example_indexes(c: sqlite3.Connection) -> list[tuple[str, str]]:
    """Drop the examples indexes (inside the caller's transaction); returns how to rebuild them."""
    indexes = c.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'examples' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        c.execute(f'DROP INDEX "{name}"')
    return indexes


def _insert_examples(c: sqlite3.Connection, rows: list[ExampleRow], at: str, *, ignore: bool) -> None:
    """Insert rows INSERT_BATCH to a statement. `at` is our own ISO timestamp, safe as a literal."""

    def values(count: int) -> str:
        return ",".join(
            f"(?{6 * i + 1},?{6 * i + 2},?{6 * i + 3},?{6 * i + 4},?{6 * i + 5},?{6 * i + 6},'{at}',"
            f"CASE WHEN ?{6 * i + 6} IS NULL THEN 'unreviewed' ELSE 'reviewed' END)"
            for i in range(count)
        )

    head = (f"INSERT {'OR IGNORE ' if ignore else ''}INTO examples "
            "(text, conversation, source, split, hash, label, created_at, status) VALUES ")
    whole = len(rows) - len(rows) % INSERT_BATCH
    if whole:
        c.executemany(
            head + values(INSERT_BATCH),
            (tuple(chain.from_iterable(rows[k:k + INSERT_BATCH])) for k in range(0, whole, INSERT_BATCH)),
        )
    if whole < len(rows):
        c.executemany(head + values(1), rows[whole:])
