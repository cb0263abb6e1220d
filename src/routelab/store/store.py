"""`Store`: the one facade over the workspace's tables.

Each table's queries live in their own module as a mixin over `StoreBase` (one
connection, one lock, one `transaction()`), and `Store` is their union. Mixins rather
than composed table objects: the tables share one connection, lock and transaction
anyway (an import writes examples, actions and decisions in one), and callers
(services, the TUI, tests, bench/) call `store.page(...)`, `store.decide(...)`
directly, so composition would add a forwarding method, a second copy of a signature
to keep in step, for each of some fifty methods.
Where one table needs another's queries it calls a module function over the
connection (e.g. `actions.active_names(conn)`), never a sibling mixin's method, so no
mixin depends on the order of the bases.
"""

from __future__ import annotations

from routelab.store.actions import ActionsTable
from routelab.store.decisions import DecisionsTable
from routelab.store.endpoints import EndpointsTable
from routelab.store.evaluations import EvaluationsTable
from routelab.store.examples import ExamplesTable
from routelab.store.exports import ExportsTable
from routelab.store.held_out import HeldOutQueries
from routelab.store.imports import ImportsTable
from routelab.store.jobs import JobsTable
from routelab.store.models import ModelsTable
from routelab.store.proposals import ProposalsTable
from routelab.store.settings import SettingsTable


class Store(
    SettingsTable, ActionsTable, ExamplesTable, ImportsTable, ProposalsTable, DecisionsTable,
    JobsTable, EvaluationsTable, ModelsTable, EndpointsTable, HeldOutQueries,
    ExportsTable,
):
    """The workspace: `Store.open(path)`, then one method per query or logical write."""


__all__ = ["Store"]
