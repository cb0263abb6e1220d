"""One reviewer's session over a workspace: a filter's rows, decisions and their undo, counts,
and whether someone else changed the workspace meanwhile.

The Review pane calls this and never the store. A keypress (decide, show the next
question) runs on the caller's thread over the one connection the session keeps and never
waits for another process: a decision is appended to the decision journal (fsynced, so it
survives kill -9) before the screen moves on, then written to the store at once when the
write lock is free, else by the journal's writer thread when it frees (see
services/decision_journal.py for why). Meanwhile `journal_state()` says how many
decisions wait and for whom, and the rows the session hands out show them as made.
Counting a million rows can take a
second, and one SQLite connection runs one statement at a time, so the `fresh_*` calls,
`bulk_accept` and `undo_bulk` open a connection of their own: they belong in a worker
thread, and the reviewer keeps deciding while they run.

Undo works by steps: one decision is a step, and so is a whole bulk accept.

The test split is held out: every filter the session is given is `guarded()` first, so no
queue, count or bulk accept reaches a test question unless the filter names the test split
(`split="test"`). A reviewer pressing Enter on held-out questions would move their labels
toward the teacher's answers and inflate its test score.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from routelab.domain import Action, BadInput, Decision, DecisionKind, Example, ExampleFilter, Proposal, Status
from routelab.services.decision_journal import (
    Applied,
    DecisionJournal,
    JournalState,
    JournalWriter,
    apply_journal,
    new_entry,
    pending_decisions,
)
from routelab.services.review import (
    BulkResult,
    best_proposal,
    bulk_accept,
    count_bulk,
    label_left_out,
    preferred_teacher,
)
from routelab.store import Store
from routelab.store.locks import WorkspaceLocked

UNREVIEWED = ExampleFilter(status=Status.UNREVIEWED).guarded()
BulkStep = list[tuple[int, int]]  # (decision id, example id) of each decision of a bulk accept


@dataclass(frozen=True)
class JournalStep:
    """One decision taken here: its journal entry, and the question as it was before."""

    entry: str
    before: Example


Step = JournalStep | BulkStep


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
    notice: str | None = None  # e.g. a skip that leaves a human label out of training


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
        # questions whose pending journal entries the store does not show yet: entry id, as made
        self._local: dict[int, tuple[str, Example]] = {}
        self._journal = DecisionJournal(self.path)
        self._writer = JournalWriter(self.path, self._journal, self._forget_applied)
        if self._journal.has_entries():
            self._take_up_leftovers()

    def _take_up_leftovers(self) -> None:
        """A journal left by a session that was killed (or one still waiting): applied now if the lock is
        free, else its decisions are shown as made from the start, so no question is offered twice."""
        applied = self._apply_now()
        if applied is None or applied.locked:
            entries, _ = self._journal.read()
            stored = self._store.stored_entries([e.id for e in entries])
            cancelled = {e.target for e in entries if e.op == "cancel"}
            for e in entries:
                if e.op == "decide" and e.id not in stored and e.id not in cancelled:
                    ex = self.example(e.example_id)
                    if ex is not None:
                        self._local[ex.id] = (e.id, _as_decided(ex, DecisionKind(e.kind), e.action))

    @classmethod
    def open(cls, path: str | Path, settings) -> ReviewSession:
        return cls(Store.open(path), settings)

    def close(self) -> None:
        self._writer.stop()  # what is still pending stays in the journal, applied by the next session
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
        return self._as_made(flt, self._store.page(flt.guarded(), after=after, before=before, limit=limit))

    def page_at(self, flt: ExampleFilter, *, offset: int, limit: int = 50) -> list[Example]:
        return self._as_made(flt, self._store.page_at(flt.guarded(), offset=offset, limit=limit))

    def _as_made(self, flt: ExampleFilter, rows: list[Example]) -> list[Example]:
        """Rows with the decisions still pending in the journal shown as made (a question decided
        out of a status filter stays out of it, so it is never shown to decide twice)."""
        local = self._local
        if not local:
            return rows
        rows = [local[r.id][1] if r.id in local else r for r in rows]
        return [r for r in rows if flt.status is None or r.status == flt.status]

    def count(self, flt: ExampleFilter) -> int:
        return self._store.count(flt.guarded())

    def position(self, flt: ExampleFilter, example_id: int) -> int:
        return self._store.position(flt.guarded(), example_id)

    def has_rows(self, flt: ExampleFilter) -> bool:
        return bool(self._store.page(flt.guarded(), limit=1))

    def is_empty(self) -> bool:
        """No questions at all, in any split (the test split included)."""
        return not self._store.page(ExampleFilter(), limit=1)

    def held_out(self, flt: ExampleFilter) -> int:
        """How many test questions the filter leaves out (0 when it names a split)."""
        if flt.split is not None:
            return 0
        return self._store.count(replace(flt, split="test", hide_test=False))

    def example(self, example_id: int) -> Example | None:
        made = self._local.get(example_id)
        return made[1] if made is not None else self._store.example(example_id)

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
        return self._store.count(replace(flt, ids=(ex.id,)).guarded()) > 0

    def opening_filter(self) -> tuple[ExampleFilter, str | None]:
        """Where a session starts: the unreviewed questions. With none left (a dataset imported with
        its labels) the labels a proposal disagrees with (the teacher's first), else every question;
        then the second value says what is shown. Never the test split (see the module's doc)."""
        if self.has_rows(UNREVIEWED) or self.is_empty():
            return UNREVIEWED, None
        choices = [(ExampleFilter(conflict=True).guarded(), "labels a model's proposal disagrees with")]
        if self.teacher:
            choices.insert(0, (ExampleFilter(conflict=True, model=self.teacher).guarded(),
                               "labels the teacher disagrees with"))
        for flt, what in choices:
            if self.has_rows(flt):
                return flt, what
        return ExampleFilter().guarded(), "every question outside the test split"

    # ---------------------------------------------------------------- deciding

    def decide(self, example_id: int, kind: DecisionKind, action: str | None = None,
               model: str | None = None) -> Decided:
        """Take one decision: durable in the journal when this returns, in the store too unless another
        process holds the write lock (then `journal_state()` says so); remembered for undo."""
        kind = DecisionKind(kind)
        if kind not in (DecisionKind.ACCEPT, DecisionKind.OVERRIDE, DecisionKind.SKIP, DecisionKind.FLAG):
            raise ValueError(f"a reviewer's decision is accept, override, skip or flag, not {kind}")
        needs_action = kind in (DecisionKind.ACCEPT, DecisionKind.OVERRIDE)
        if needs_action and action not in {a.name for a in self._store.actions()}:
            raise BadInput(f"unknown action {action!r}")
        before = self.example(example_id)
        if before is None:
            raise BadInput(f"no question #{example_id}")
        action, model = (action, model) if needs_action else (None, None)
        notice = label_left_out(self._store, before, kind) if not needs_action else None
        entry = new_entry("decide", example_id, kind=str(kind), action=action, model=model, question=before.hash)
        self._journal.append(entry)  # fsynced: from here on the decision survives kill -9
        with self._steps_lock:
            self._steps.append(JournalStep(entry.id, before))
        made = _as_decided(before, kind, action)
        ex = self._write_now(entry.id, made)
        return Decided(Decision(example_id=example_id, kind=kind, action=action, model=model, at=entry.at), ex,
                       notice)

    def _write_now(self, entry_id: str, made: Example) -> Example:
        """Apply the journal now if nobody holds the lock (never waits): the question as the store has it,
        else as made (and remembered so, until the writer thread has applied it)."""
        applied = self._apply_now()
        if applied is not None and not applied.locked:
            ex = self._store.example(made.id)
            assert ex is not None
            return ex
        self._local[made.id] = (entry_id, made)
        return made

    def _apply_now(self) -> Applied | None:
        """None when the writer thread is busy applying (it will pick this up)."""
        if not self._writer.apply_lock.acquire(blocking=False):
            entries, size = self._journal.read()
            self._writer.report(Applied({}, frozenset(), pending_decisions(self._store, entries), True, size))
            return None
        try:
            applied = apply_journal(self._store, self._journal, wait=False)
        finally:
            self._writer.apply_lock.release()
        self._writer.report(applied)
        return applied

    def _forget_applied(self, applied: Applied) -> None:
        """The store now shows these entries: stop showing their questions from memory."""
        for example_id, (entry_id, _) in list(self._local.items()):
            if entry_id in applied.done:
                self._local.pop(example_id, None)

    def journal_state(self) -> JournalState:
        """How many decisions wait for another process's write to finish, and who that is."""
        return self._writer.state

    def newest_step_size(self) -> int:
        """How many decisions the next undo takes back (0: none of this session's are left)."""
        with self._steps_lock:
            step = self._steps[-1] if self._steps else None
        return 0 if step is None else 1 if isinstance(step, JournalStep) else len(step)

    def undo(self) -> Undone | None:
        """Take back the newest step of this session; when none is left, the newest decision in the
        workspace. Nothing is deleted: an undo is appended (through the journal, like a decision).
        None when there is nothing to undo. WorkspaceLocked when only the newest decision in the
        workspace is left to undo and another process holds the lock."""
        while True:
            with self._steps_lock:
                step = self._steps.pop() if self._steps else None
            if step is None:
                break
            undone = self._undo_entry(step) if isinstance(step, JournalStep) else self._undo_step(self._store, step)
            if undone is not None:
                return undone
        d = self._store.undo(wait=False)
        if d is None:
            return None
        ex = self._store.example(d.example_id)
        assert ex is not None
        return Undone(ex, None)

    def _undo_entry(self, step: JournalStep) -> Undone | None:
        if step.before.id not in self._local and self._store.entry_undone(step.entry):
            return None  # already undone elsewhere (another reviewer, the CLI)
        now = self.example(step.before.id)
        cancel = new_entry("cancel", step.before.id, target=step.entry)
        self._journal.append(cancel)
        ex = self._write_now(cancel.id, step.before)
        return Undone(ex, now.status if now is not None else None)

    def undo_bulk(self) -> Undone | None:
        """`undo` for a step of many decisions (a bulk accept), on a connection of its own (a worker)."""
        with self._steps_lock:
            step = self._steps.pop() if self._steps and not isinstance(self._steps[-1], JournalStep) else None
        if step is None:
            return None
        try:
            with self._own_connection() as store:
                return self._undo_step(store, step)
        except WorkspaceLocked:  # another process writes: the step stays, for the next u
            with self._steps_lock:
                self._steps.append(step)
            raise

    @staticmethod
    def _undo_step(store: Store, step: BulkStep) -> Undone | None:
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
            result = bulk_accept(store, flt.guarded(), model, min_confidence, cancelled=cancelled)
        if result.decisions:
            with self._steps_lock:
                self._steps.append(list(result.decisions))
        return result

    # ---------------------------------------------------------------- counts and outside changes

    def changed_outside(self) -> bool:
        """Has another connection (another process, or one of this session's workers) committed
        since the last look? Not asked while decisions are pending: the store does not show them
        yet, so re-reading it would show decided questions as undecided."""
        if self._local:
            return False
        version = self._store.data_version()
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    def look_again(self) -> None:
        """The next `changed_outside` says yes (a merge was dropped: do it again)."""
        self._seen_version = None

    def fresh_count(self, flt: ExampleFilter) -> int:
        with self._own_connection() as store:
            return store.count(flt.guarded())

    def fresh_status_counts(self) -> dict[str, int]:
        with self._own_connection() as store:
            return store.counts_by("status")

    def fresh_overview(self, flt: ExampleFilter, example_id: int | None) -> Overview:
        with self._own_connection() as store:
            flt = flt.guarded()
            position = store.position(flt, example_id) if example_id is not None else 0
            return Overview(store.counts_by("status"), store.count(flt), position)

    def fresh_count_bulk(self, flt: ExampleFilter, model: str, min_confidence: float) -> int:
        with self._own_connection() as store:
            return count_bulk(store, flt.guarded(), model, min_confidence)


def _as_decided(ex: Example, kind: DecisionKind, action: str | None) -> Example:
    """The question as this decision leaves it (what the store will show once it is applied)."""
    if kind in (DecisionKind.ACCEPT, DecisionKind.OVERRIDE):
        return ex.model_copy(update={"label": action, "status": Status.REVIEWED})
    return ex.model_copy(update={"status": Status.SKIPPED if kind == DecisionKind.SKIP else Status.FLAGGED})


__all__ = ["Decided", "Detail", "JournalState", "WorkspaceLocked", "Overview", "ReviewSession", "Undone"]
