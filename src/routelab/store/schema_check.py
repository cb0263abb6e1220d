"""Is this file a workspace routelab made? Checked on open, before anything is written.

A workspace is a file people send each other, and SQLite runs what its schema holds: a
trigger can rewrite accepted labels behind the decisions log, a view or a foreign index
can break every query. So every object in `sqlite_master` (tables, indexes, triggers,
views) must be one that routelab's migrations made for the file's version, with the
same SQL, and none may be missing. One query reads the file's schema; the reference is
built once per process by running the migrations on an in-memory database, so it is
exactly what `Store.open` would have made.

Expected besides: the FTS5 index's shadow tables (examples_fts_data, ...: compared by
name only, since SQLite writes their SQL and may word it differently from one version
to another; a table runs no code) and ANALYZE's sqlite_stat tables. No other sqlite_*
name is trusted: a file edited with writable_schema can carry a trigger called
sqlite_anything, and it fires.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path

from routelab.domain import BadInput
from routelab.store.schema import MIGRATIONS

ANALYZE_TABLES = frozenset({"sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4"})
SHADOW_PREFIX = "examples_fts_"
UNCHECKED_SQL = "(written by SQLite)"  # the reference SQL of a shadow table: only its name is compared

SchemaObject = tuple[str, str, str, str | None]  # type, name, table it belongs to, SQL


def check_schema(conn: sqlite3.Connection, version: int, path: Path) -> None:
    """Raise BadInput naming the first object routelab did not make (or one it made that is gone)."""
    found = [row for row in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
             if not (row[0] == "table" and row[1] in ANALYZE_TABLES)]
    if version == 0:
        if found:  # routelab makes its first table and sets the version in one transaction
            raise BadInput(f"{path}: an SQLite database, but not a routelab workspace")
        return
    problems = differences(found, reference(version))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadInput(f"{path}: not opened: {problems[0]}{more}; its schema is not the one routelab makes "
                       f"(version {version})")


def differences(found: list[SchemaObject], expected: dict[tuple[str, str], tuple[str, str | None]]) -> list[str]:
    """What in `found` routelab did not make, made differently, or made and is missing."""
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for kind, name, table, sql in found:
        key = (kind, name)
        want = expected.get(key)
        shown = f"{kind} {_shown(str(name))}"
        if want is None:
            problems.append(f"unexpected {shown}" + (f" on {_shown(str(table))}" if table != name else ""))
        elif key in seen:
            problems.append(f"a second {shown}")
        elif want != (table, UNCHECKED_SQL if want[1] == UNCHECKED_SQL else _normal(sql)):
            problems.append(f"{shown} differs from the one routelab makes")
        seen.add(key)
    problems += [f"{kind} {_shown(name)} is missing" for kind, name in expected if (kind, name) not in seen]
    return problems


@cache
def reference(version: int) -> dict[tuple[str, str], tuple[str, str | None]]:
    """The schema routelab's first `version` migrations make: (type, name) -> (table, SQL)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for migration in MIGRATIONS[:version]:
            for statement in migration:
                conn.execute(statement)
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    finally:
        conn.close()
    return {
        (kind, name): (table, UNCHECKED_SQL if kind == "table" and name.startswith(SHADOW_PREFIX) else _normal(sql))
        for kind, name, table, sql in rows
    }


def _normal(sql: str | None) -> str | None:
    return " ".join(sql.split()) if sql is not None else None


def _shown(name: str) -> str:
    """A name from the file, safe to print: quoted with escapes (no terminal control), and short."""
    return repr(name if len(name) <= 60 else name[:60] + "…")
