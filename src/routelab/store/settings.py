"""Workspace settings: a key-value table (e.g. the teacher review shows first)."""

from __future__ import annotations

from routelab.store.connection import StoreBase


class SettingsTable(StoreBase):
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self.db["settings"].upsert({"key": key, "value": value}, pk="key")
