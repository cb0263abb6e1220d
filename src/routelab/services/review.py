"""Reviewing proposals: which proposal to show, and bulk accept.

Plain functions over a Store, used by the review pane, `routelab accept` and tests.
Every accept is its own decision in the append-only log, so undo and history work
for bulk accepts exactly as for single ones. `decide` is one key's decision; it says
when a key does more than it shows (skipping or flagging a question with a human label
takes that label out of the training data, an imported one included).

Bulk accept never reaches the test split unless the filter names it (`ExampleFilter.guarded`):
accepting a model's answers for held-out questions would grade the model on its own answers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from routelab.domain import BadInput, Decision, DecisionKind, Example, ExampleFilter, Proposal, Status
from routelab.store import Store

BULK_CHUNK = 2_000  # decisions per transaction: a labeling run writing beside us never waits long


def preferred_teacher(store: Store, settings) -> str | None:
    """The model whose proposal is shown first: the workspace's teacher setting, else the one
    `routelab label` uses by default (the OpenAI teacher with a key, else local)."""
    from routelab.providers.registry import default_teacher

    return store.get_setting("teacher") or default_teacher(settings)


def best_proposal(proposals: Sequence[Proposal], teacher: str | None = None) -> Proposal | None:
    """The proposal Enter accepts: the teacher's if valid, else the most confident valid one."""
    valid = [p for p in proposals if p.valid and p.action]
    if not valid:
        return None
    if teacher:
        mine = [p for p in valid if p.model == teacher]
        if mine:
            return mine[-1]
    # most confident; among equals the newest
    return max(enumerate(valid), key=lambda ip: (ip[1].confidence if ip[1].confidence is not None else -1.0, ip[0]))[1]


@dataclass
class Decided:
    decision: Decision
    notice: str | None = None  # what the reviewer should be told, where the key was pressed


def decide(store: Store, example_id: int, kind: DecisionKind | str, action: str | None = None, *,
           model: str | None = None) -> Decided:
    """One operator decision (a review key), with a notice when it drops a human label from training."""
    kind = DecisionKind(kind)
    before = store.example(example_id) if kind in (DecisionKind.SKIP, DecisionKind.FLAG) else None
    decision = store.decide(example_id, kind, action, model=model)
    return Decided(decision, label_left_out(store, before, kind) if before is not None else None)


def label_left_out(store: Store, ex: Example, kind: DecisionKind) -> str | None:
    """Skipped and flagged questions are out of the export: say so when that loses a human label."""
    if ex.status != Status.REVIEWED or not ex.label:
        return None
    history = store.history(ex.id)
    undone = {d.undoes for d in history if d.kind == DecisionKind.UNDO}
    labelled = [d for d in history if d.id not in undone and d.kind in
                (DecisionKind.ACCEPT, DecisionKind.OVERRIDE, DecisionKind.IMPORT)]
    origin = "imported label" if labelled and labelled[-1].kind == DecisionKind.IMPORT else "label"
    done = "skipped" if kind == DecisionKind.SKIP else "flagged"
    return f"#{ex.id} {done}: its {origin} {ex.label} is left out of training while it is {done} (u undoes)"


def count_bulk(store: Store, flt: ExampleFilter, model: str, min_confidence: float | None = None) -> int:
    """How many unreviewed questions of the filter a bulk accept would label (test: only when named)."""
    return store.count_bulk_accept(flt.guarded(), model, min_confidence)


@dataclass
class BulkResult:
    accepted: int
    decisions: list[tuple[int, int]]  # (decision id, example id), oldest first


def bulk_accept(
    store: Store, flt: ExampleFilter, model: str, min_confidence: float | None = None, *,
    progress: Callable[[int], None] | None = None, cancelled: Callable[[], bool] | None = None,
) -> BulkResult:
    """Accept `model`'s proposal for every unreviewed question of the filter at or above a confidence
    (test-split questions only when the filter names the test split).

    Works in chunks (each its own transaction), so it can be interrupted and resumed: a
    question accepted by an earlier chunk is no longer unreviewed and is not touched twice.
    """
    if model not in store.proposal_models():
        raise BadInput(f"no proposals from model {model!r} in this workspace")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise BadInput("--min-confidence must be between 0 and 1")
    flt = flt.guarded()
    done: list[tuple[int, int]] = []
    after = 0
    while True:
        if cancelled and cancelled():
            break
        rows = store.bulk_accept_candidates(flt, model, min_confidence, after=after, limit=BULK_CHUNK)
        if not rows:
            break
        decisions = store.decide_many([(eid, DecisionKind.ACCEPT, action, model) for eid, action in rows])
        done += [(d.id, d.example_id) for d in decisions if d.id is not None]
        after = rows[-1][0]
        if progress:
            progress(len(done))
    return BulkResult(accepted=len(done), decisions=done)


class SessionPace:
    """Decisions per minute in this session, over a sliding window; the clock is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = 300.0):
        self.clock = clock
        self.window = window
        self.total = 0
        self._times: deque[float] = deque()
        self._first: float | None = None

    def record(self, n: int = 1) -> None:
        now = self.clock()
        if self._first is None:
            self._first = now
        self.total += n
        self._times.extend([now] * min(n, 10_000))

    def undo(self) -> None:
        self.total = max(0, self.total - 1)

    def per_minute(self) -> float | None:
        if self._first is None:
            return None
        now = self.clock()
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()
        span = max(15.0, min(self.window, now - self._first))
        return len(self._times) * 60.0 / span
