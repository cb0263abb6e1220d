"""The action catalog: names, descriptions, stable integer codes and the fallback action.

At most one action is the fallback (out of scope: what a router answers when no other
fits). Marking one clears the flag on any other, in the same transaction; a partial
unique index (migration 6) makes two impossible.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

import sqlite_utils
from pydantic import ValidationError

from routelab.domain import Action, BadInput, now_iso
from routelab.store.connection import StoreBase


class ActionsTable(StoreBase):
    def actions(self, *, active_only: bool = True) -> list[Action]:
        sql = "SELECT name, description, code, active, fallback FROM actions"
        if active_only:
            sql += " WHERE active = 1"
        return [
            Action(name=r["name"], description=r["description"], code=r["code"], active=bool(r["active"]),
                   fallback=bool(r["fallback"]))
            for r in self._rows(sql + " ORDER BY code")
        ]

    def action_names(self) -> list[str]:
        return active_names(self.conn)

    def fallback_action(self) -> str | None:
        """The name of the catalog's (active) fallback action, or None when it has none."""
        return fallback_in(self.conn)

    def set_fallback(self, name: str | None) -> str | None:
        """Make `name` the fallback (None: no fallback), clearing any other; returns the previous one.

        An unknown or inactive action is bad input.
        """
        with self.transaction() as c:
            previous = fallback_in(c)
            if name is None:
                c.execute("UPDATE actions SET fallback = 0 WHERE fallback = 1")
            else:
                mark_fallback(c, name)
        return previous

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


def fallback_in(c: sqlite3.Connection) -> str | None:
    row = c.execute("SELECT name FROM actions WHERE fallback = 1 AND active = 1").fetchone()
    return row[0] if row else None


def mark_fallback(c: sqlite3.Connection, name: str) -> bool:
    """Make the active action `name` the fallback inside the caller's transaction; False if it already was."""
    row = c.execute("SELECT fallback FROM actions WHERE name = ? AND active = 1", (name,)).fetchone()
    if row is None:
        raise BadInput(f"no action named {name!r} in the catalog (routelab actions list)")
    if row[0]:
        return False
    c.execute("UPDATE actions SET fallback = 0 WHERE fallback = 1")  # first: the index allows one
    c.execute("UPDATE actions SET fallback = 1 WHERE name = ?", (name,))
    return True


def upsert_in(db: sqlite_utils.Database, actions: Iterable[Action], added: list[str], updated: list[str]) -> None:
    """`upsert_actions` inside the caller's transaction (an import adds the labels it brings)."""
    actions = list(actions)
    fallbacks = [a.name for a in actions if a.fallback]
    if len(fallbacks) > 1:
        raise BadInput(f"only one action can be the fallback, not {', '.join(map(repr, fallbacks))}")
    table = db.table("actions")
    for a in actions:
        row = db.execute("SELECT id, code, description FROM actions WHERE name = ?", (a.name,)).fetchone()
        if row is not None:
            if a.code is not None and a.code != row[1]:
                raise BadInput(f"action {a.name!r} already has code {row[1]}; codes never change")
            changed = bool(a.description and a.description != row[2])
            if changed:
                table.update(row[0], {"description": a.description, "active": 1})
            # fallback=False means "not said": clearing the flag is set_fallback(None)'s job
            if (a.fallback and mark_fallback(db.conn, a.name)) or changed:
                updated.append(a.name)
            continue
        code = a.code
        if code is None:
            code = db.execute("SELECT COALESCE(MAX(code), 0) + 1 FROM actions").fetchone()[0]
        elif taken := db.execute("SELECT name FROM actions WHERE code = ?", (code,)).fetchone():
            raise BadInput(f"action {a.name!r}: code {code} is already used by {taken[0]!r}")
        table.insert({"name": a.name, "description": a.description, "code": code, "active": int(a.active),
                      "created_at": now_iso()})
        if a.fallback:
            mark_fallback(db.conn, a.name)
        added.append(a.name)


def new_action(name: str, describe: Callable[[str], str], prefix: str = "") -> Action:
    """An action for a label an import brings; a label that cannot be an action name is bad input."""
    try:
        return Action(name=name, description=describe(name))
    except ValidationError:
        raise BadInput(f"{prefix}label {name!r} cannot be an action name") from None
