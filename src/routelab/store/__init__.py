"""The SQLite workspace."""

from routelab.store.store import ExampleFilter, ImportResult, Store, fts_query

__all__ = ["Store", "ExampleFilter", "ImportResult", "fts_query"]
