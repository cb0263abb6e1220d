"""One reviewer's session over a workspace: a filter's rows, decisions and their undo, counts,
and whether someone else changed the workspace meanwhile.

The Review pane calls this and never the store. A keypress (decide, show the next
question) runs on the caller's thread over the one connection the session keeps, so a
decision is committed before the screen moves on. Counting a million rows can take a
second, and one SQLite connection runs one statement at a time, so the `fresh_*` calls,
`bulk_accept` and `undo_bulk` open a connection of their own: they belong in a worker
thread, and the reviewer keeps deciding while they run.

Undo works by steps: one decision is a step, and so is a whole bulk accept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from routelab.domain import Action, Decision, DecisionKind, Example, ExampleFilter, Proposal, Status
from routelab.services.review import BulkResult, best_proposal, bulk_accept, count_bulk, preferred_teacher
from routelab.store import Store

UNREVIEWED = ExampleFilter(status=Status.UNREVIEWED)
Step = list[tuple[int, int]]  # (decision id, example id) of one undoable step


@dataclass(frozen=True)
class Detail:
    """What the detail panel shows beside a question."""

    proposals: list[Proposal]
    history: list[Decision]
    best: Proposal | None  # what Enter accepts


@dataclass(frozen=True)
class Decided:
    decision: Decision
    example: Example  # as it is now: its new label and status


@dataclass(frozen=True)
class Undone:
    example: Example  # as it is after the undo (the first of a bulk step)
    before: Status | None  # its status before; None when unknown (a step made elsewhere, or a bulk)
    decisions: int = 1


@dataclass(frozen=True)
class Overview:
    """What merging outside changes needs, read together: status counts, the filter's size, where a row is."""

    counts: dict[str, int]
    count: int
    position: int


class ReviewSession:
    def __init__(self, store: Store, settings):
        self._store = store
        self.path = Path(store.path)
        self.teacher = preferred_teacher(store, settings)
        self._steps: list[Step] = []
        self._steps_lock = threading.Lock()  # bulk_accept and undo_bulk (workers) push and pop steps too
        self._seen_version: int | None = store.data_version()

    @classmethod
    def open(cls, path: str | Path, settings) -> ReviewSession:
        return cls(Store.open(path), settings)

    def close(self) -> None:
        self._store.close()

    @contextmanager
    def _own_connection(self) -> Iterator[Store]:
        with Store.open(self.path, create=False) as store:
            yield store

    # ---------------------------------------------------------------- catalog

    def actions(self) -> list[Action]:
        return self._store.actions()

    def sources(self) -> list[str]:
        return self._store.sources()

    def proposal_models(self) -> list[str]:
        """Every model that proposed something, the most used first."""
        return self._store.proposal_models()

    def bulk_models(self) -> list[str]:
        """The models a bulk accept can take proposals from: the teacher first."""
        models = self.proposal_models()
        if self.teacher in models:
            models.remove(self.teacher)
            models.insert(0, self.teacher)
        return models

    # ---------------------------------------------------------------- rows (what a list window pages)

    def page(self, flt: ExampleFilter, *, after: int | None = None, before: int | None = None,
             limit: int = 50) -> list[Example]:
        return self._store.page(flt, after=after, before=before, limit=limit)

    def page_at(self, flt: ExampleFilter, *, offset: int, limit: int = 50) -> list[Example]:
        return self._store.page_at(flt, offset=offset, limit=limit)

    def count(self, flt: ExampleFilter) -> int:
        return self._store.count(flt)

    def position(self, flt: ExampleFilter, example_id: int) -> int:
        return self._store.position(flt, example_id)

    def has_rows(self, flt: ExampleFilter) -> bool:
        return bool(self._store.page(flt, limit=1))

    def example(self, example_id: int) -> Example | None:
        return self._store.example(example_id)

    def detail(self, ex: Example) -> Detail:
        proposals = self._store.proposals(ex.id)
        return Detail(proposals, self._store.history(ex.id), best_proposal(proposals, self.teacher))

    def belongs(self, flt: ExampleFilter, ex: Example, *, was_member: bool) -> bool:
        """Does `ex`, as it is now, belong to the filter? `was_member`: it did before its label
        changed, so only the facets a decision can change need a look."""
        if flt.status is not None and ex.status != flt.status:
            return False
        if was_member and flt.action is None and not flt.conflict:
            return True
        return self._store.count(replace(flt, ids=(ex.id,))) > 0

    def opening_filter(self) -> tuple[ExampleFilter, str | None]:
        """Where a session starts: the unreviewed questions. With none left (a dataset imported with
        its labels) the labels a proposal disagrees with (the teacher's first), else every question;
        then the second value says what is shown."""
        if self.has_rows(UNREVIEWED) or not self.has_rows(ExampleFilter()):
            return UNREVIEWED, None
        choices = [(ExampleFilter(conflict=True), "labels a model's proposal disagrees with")]
        if self.teacher:
            choices.insert(0, (ExampleFilter(conflict=True, model=self.teacher), "labels the teacher disagrees with"))
        for flt, what in choices:
            if self.has_rows(flt):
                return flt, what
        return ExampleFilter(), "every question"

    # ---------------------------------------------------------------- deciding

    def decide(self, example_id: int, kind: DecisionKind, action: str | None = None,
               model: str | None = None) -> Decided:
        """Append one decision (committed when this returns) and remember it for undo."""
        d = self._store.decide(example_id, kind, action, model=model)
        with self._steps_lock:
            self._steps.append([(d.id, example_id)])
        ex = self._store.example(example_id)
        assert ex is not None
        return Decided(d, ex)

    def newest_step_size(self) -> int:
        """How many decisions the next undo takes back (0: none of this session's are left)."""
        with self._steps_lock:
            return len(self._steps[-1]) if self._steps else 0

    def undo(self) -> Undone | None:
        """Take back the newest step of this session; when none is left, the newest decision in the
        workspace. Nothing is deleted: an undo is appended. None when there is nothing to undo."""
        while True:
            with self._steps_lock:
                step = self._steps.pop() if self._steps else None
            if step is None:
                break
            undone = self._undo_step(self._store, step)
            if undone is not None:
                return undone
        d = self._store.undo()
        if d is None:
            return None
        ex = self._store.example(d.example_id)
        assert ex is not None
        return Undone(ex, None)

    def undo_bulk(self) -> Undone | None:
        """`undo` for a step of many decisions (a bulk accept), on a connection of its own (a worker)."""
        with self._steps_lock:
            step = self._steps.pop() if self._steps else None
        if step is None:
            return None
        with self._own_connection() as store:
            return self._undo_step(store, step)

    @staticmethod
    def _undo_step(store: Store, step: Step) -> Undone | None:
        before = store.example(step[0][1]) if len(step) == 1 else None
        undone = [d for d in (store.undo(decision_id) for decision_id, _ in reversed(step)) if d is not None]
        if not undone:
            return None  # already undone elsewhere (another reviewer, the CLI)
        ex = store.example(undone[-1].example_id)
        assert ex is not None
        return Undone(ex, before.status if before is not None else None, len(undone))

    def bulk_accept(self, flt: ExampleFilter, model: str, min_confidence: float, *,
                    cancelled: Callable[[], bool] | None = None) -> BulkResult:
        """Accept `model`'s proposals at or above a confidence for the filter's unreviewed questions,
        on a connection of its own (a worker); undone as one step."""
        with self._own_connection() as store:
            result = bulk_accept(store, flt, model, min_confidence, cancelled=cancelled)
        if result.decisions:
            with self._steps_lock:
                self._steps.append(list(result.decisions))
        return result

    # ---------------------------------------------------------------- counts and outside changes

    def changed_outside(self) -> bool:
        """Has another connection (another process, or one of this session's workers) committed
        since the last look?"""
        version = self._store.data_version()
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    def look_again(self) -> None:
        """The next `changed_outside` says yes (a merge was dropped: do it again)."""
        self._seen_version = None

    def fresh_count(self, flt: ExampleFilter) -> int:
        with self._own_connection() as store:
            return store.count(flt)

    def fresh_status_counts(self) -> dict[str, int]:
        with self._own_connection() as store:
            return store.counts_by("status")

    def fresh_overview(self, flt: ExampleFilter, example_id: int | None) -> Overview:
        with self._own_connection() as store:
            position = store.position(flt, example_id) if example_id is not None else 0
            return Overview(store.counts_by("status"), store.count(flt), position)

    def fresh_count_bulk(self, flt: ExampleFilter, model: str, min_confidence: float) -> int:
        with self._own_connection() as store:
            return count_bulk(store, flt, model, min_confidence)


__all__ = ["Decided", "Detail", "Overview", "ReviewSession", "Undone"]
