"""The SQLite workspace: `Store.open(path)` and the queries of every table behind it."""

from routelab.domain import ExampleFilter
from routelab.store.filters import filter_sql, fts_query
from routelab.store.imports import ImportResult
from routelab.store.store import Store

__all__ = ["Store", "ExampleFilter", "ImportResult", "filter_sql", "fts_query"]
