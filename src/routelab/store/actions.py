"""The action catalog: names, descriptions and stable integer codes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

import sqlite_utils
from pydantic import ValidationError

from routelab.domain import Action, BadInput, now_iso
from routelab.store.connection import StoreBase


class ActionsTable(StoreBase):
    def actions(self, *, active_only: bool = True) -> list[Action]:
        sql = "SELECT name, description, code, active FROM actions"
        if active_only:
            sql += " WHERE active = 1"
        return [
            Action(name=r["name"], description=r["description"], code=r["code"], active=bool(r["active"]))
            for r in self._rows(sql + " ORDER BY code")
        ]

    def action_names(self) -> list[str]:
        return active_names(self.conn)

    def upsert_actions(self, actions: Iterable[Action]) -> tuple[list[str], list[str]]:
        """Add new actions and update descriptions of known ones, in one transaction.

        Codes are stable: a known action keeps its code; asking to change it is an error.
        Returns (added names, updated names).
        """
        added: list[str] = []
        updated: list[str] = []
        with self.transaction():
            upsert_in(self.db, actions, added, updated)
        return added, updated


def active_names(c: sqlite3.Connection) -> list[str]:
    return [r[0] for r in c.execute("SELECT name FROM actions WHERE active = 1 ORDER BY code")]


def upsert_in(db: sqlite_utils.Database, actions: Iterable[Action], added: list[str], updated: list[str]) -> None:
    """`upsert_actions` inside the caller's transaction (an import adds the labels it brings)."""
    table = db.table("actions")
    for a in actions:
        row = db.execute("SELECT id, code, description FROM actions WHERE name = ?", (a.name,)).fetchone()
        if row is not None:
            if a.code is not None and a.code != row[1]:
                raise BadInput(f"action {a.name!r} already has code {row[1]}; codes never change")
            if a.description and a.description != row[2]:
                table.update(row[0], {"description": a.description, "active": 1})
                updated.append(a.name)
            continue
        code = a.code
        if code is None:
            code = db.execute("SELECT COALESCE(MAX(code), 0) + 1 FROM actions").fetchone()[0]
        elif taken := db.execute("SELECT name FROM actions WHERE code = ?", (code,)).fetchone():
            raise BadInput(f"action {a.name!r}: code {code} is already used by {taken[0]!r}")
        table.insert({"name": a.name, "description": a.description, "code": code, "active": int(a.active),
                      "created_at": now_iso()})
        added.append(a.name)


def new_action(name: str, describe: Callable[[str], str], prefix: str = "") -> Action:
    """An action for a label an import brings; a label that cannot be an action name is bad input."""
    try:
        return Action(name=name, description=describe(name))
    except ValidationError:
        raise BadInput(f"{prefix}label {name!r} cannot be an action name") from None
