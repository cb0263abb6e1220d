"""An `ExampleFilter` (a domain value) as SQL: the WHERE clause every example query shares."""

from __future__ import annotations

import re
from typing import Any

from routelab.domain import ExampleFilter


def filter_sql(flt: ExampleFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (over `examples e`) and its arguments for a filter."""
    clauses: list[str] = []
    args: list[Any] = []
    for column in ("status", "source", "split"):
        value = getattr(flt, column)
        if value is not None:
            clauses.append(f"e.{column} = ?")
            args.append(str(value))
    if flt.hide_test and flt.split is None:
        clauses.append("e.split != 'test'")  # cheaper than NOT IN (a subquery per page) at a million rows
    model_clause = " AND p.model = ?" if flt.model else ""
    model_args = [flt.model] if flt.model else []
    if flt.action is not None:
        clauses.append(
            "(e.label = ? OR (e.label IS NULL AND EXISTS (SELECT 1 FROM proposals p "
            f"WHERE p.example_id = e.id AND p.action = ?{model_clause})))"
        )
        args += [flt.action, flt.action, *model_args]
    if flt.query:
        clauses.append("e.id IN (SELECT rowid FROM examples_fts WHERE examples_fts MATCH ?)")
        args.append(fts_query(flt.query))
    if flt.disagreement:
        clauses.append(
            "(SELECT COUNT(DISTINCT p.action) FROM proposals p WHERE p.example_id = e.id "
            "AND p.valid = 1) > 1"
        )
    if flt.max_confidence is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM proposals p WHERE p.example_id = e.id "
            f"AND (p.valid = 0 OR p.confidence < ?){model_clause})"
        )
        args += [flt.max_confidence, *model_args]
    if flt.conflict:
        clauses.append(
            "e.label IS NOT NULL AND EXISTS (SELECT 1 FROM proposals p WHERE p.example_id = e.id "
            f"AND p.valid = 1 AND p.action != e.label{model_clause})"
        )
        args += model_args
    if flt.ids is not None:
        clauses.append(f"e.id IN ({','.join('?' * len(flt.ids)) or 'NULL'})")
        args += list(flt.ids)
    return (" AND ".join(clauses) or "1"), args


def fts_query(text: str) -> str:
    """User words to a safe FTS5 query: every word must appear (prefix match)."""
    words = re.findall(r"\w+", text, flags=re.UNICODE)
    return " ".join(f'"{w}"*' for w in words) or '""'
