"""Is this file a routelab workspace? Checked on open, before anything is written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from routelab.domain import BadInput


def check_schema(conn: sqlite3.Connection, version: int, path: Path) -> None:
    if version == 0:
        tables = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if tables:
            raise BadInput(f"{path}: an SQLite database, but not a routelab workspace")
