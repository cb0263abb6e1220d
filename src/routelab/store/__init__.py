"""The SQLite workspace."""

from routelab.domain import ExampleFilter
from routelab.store.store import ImportResult, Store, filter_sql, fts_query

__all__ = ["Store", "ExampleFilter", "ImportResult", "filter_sql", "fts_query"]
