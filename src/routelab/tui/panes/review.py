"""The Review pane: a virtual list of questions, the shown question's proposals, one key per decision.

Every decision is saved (the session's decision journal) before the screen moves on, and
written to the store then or, while another process holds the write lock, as soon as it
frees (the bar says how many wait, and for whom); the list is edited locally (the decided row leaves a status filter, the cursor stays on the next
one) instead of re-querying, so a decision costs a few small indexed queries whatever
the size of the workspace. Changes from other processes (a `routelab label` run,
another reviewer) are noticed by the session (`changed_outside`) and merged in the background.
The pane talks to the review session service only (services/review_session.py).
"""

from __future__ import annotations

import time
from dataclasses import replace

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from routelab.domain import DecisionKind, Example, ExampleFilter, Status, printable
from routelab.services.review import SessionPace
from routelab.services.review_session import Overview, ReviewSession, Undone, WorkspaceLocked
from routelab.services.workspace import Workspace
from routelab.tui.components.bulk import BulkAcceptScreen
from routelab.tui.components.detail import DetailView, render_catalog, render_detail
from routelab.tui.components.example_list import ExampleList, RowWindow
from routelab.tui.components.picker import PickerScreen, PickItem
from routelab.tui.components.review_background import BackgroundReads
from routelab.tui.components.review_bar import ReviewBar
from routelab.tui.components.review_filters import UNREVIEWED, apply_choice, describe, filter_menu
from routelab.tui.components.review_wait import WaitLine
from routelab.tui.panes.review_keys import REVIEW_BINDINGS, REVIEW_KEYS
from routelab.tui.safe import say

EMPTY_WORKSPACE = "no questions yet: routelab import FILE (or routelab demo)"
POLL_SECONDS = 2.0


class ReviewPane(BackgroundReads, Vertical, can_focus=True):
    BINDINGS = REVIEW_BINDINGS

    class Progress(Message):
        """Review counts changed (the app shows them in its header)."""

        def __init__(self, reviewed: int, total: int, pace: float | None) -> None:
            super().__init__()
            self.reviewed, self.total, self.pace = reviewed, total, pace

    class Shown(Message):
        """A question is on screen (after a decision or a move); the bench waits for it."""

        def __init__(self, example_id: int | None) -> None:
            super().__init__()
            self.example_id = example_id
            self.at = time.perf_counter()

    def __init__(self, workspace: Workspace, **kwargs):
        super().__init__(**kwargs)
        self.workspace = workspace
        self.flt = UNREVIEWED
        self.session: ReviewSession | None = None
        self.window: RowWindow | None = None
        self.actions = []
        self.shown: Example | None = None
        self.best = None
        self.pace = SessionPace(clock=time.monotonic)
        self.status_counts: dict[str, int] | None = None
        self._seq = 0  # bumps on every local change; background results from an older seq are dropped
        self.ids_title = ""  # what an explicit set of questions (ShowExamples) is called

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield ReviewBar(id="review-bar")
        # list and detail are direct children (a grid): one container less to paint per line
        yield ExampleList(id="review-list")
        yield DetailView(id="review-detail")
        yield Static(id="review-catalog")

    @property
    def dataset(self) -> ExampleList:
        return self.query_one("#review-list", ExampleList)

    @property
    def bar(self) -> ReviewBar:
        return self.query_one(ReviewBar)

    def on_mount(self) -> None:
        self.session = session = self.workspace.review_session()
        self.actions = session.actions()
        # unreviewed questions; with none (a dataset imported with its labels) where a proposal disagrees
        self.flt, why = session.opening_filter()
        self.window = RowWindow(session, self.flt)
        self.window.reset(defer_count=True)  # first rows now; the COUNT in a worker
        if why:
            say(self, f"nothing unreviewed: showing {why}", timeout=6)
        self.dataset.set_window(self.window)
        self.query_one("#review-catalog", Static).update(render_catalog(self.actions))
        self.bar.wait_line.watch_session(session.journal_state)
        self._show_current()
        self._paint_filter()
        self._load_counts()
        self._count_filter()
        self.set_interval(POLL_SECONDS, self._poll)
        self.focus()

    def on_unmount(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ showing

    def _show_current(self) -> None:
        assert self.session is not None
        ex = self.dataset.current()
        self.shown = ex
        if ex is None:
            self.best = None
            if self.session.is_empty():
                hint = EMPTY_WORKSPACE
            else:
                hint = "Nothing left in this filter.  " if self.flt.status == Status.UNREVIEWED else ""
                held_out = self.session.held_out(self.flt)
                hint += f"({held_out:,} test-split questions held out: v, split test shows them)  " if held_out else ""
                hint += "v: change the filter · /: search"
            self.dataset.empty_hint = hint if hint == EMPTY_WORKSPACE else None
            self.query_one(DetailView).show(render_detail(None, [], [], None, empty_hint=hint))
        else:
            detail = self.session.detail(ex)
            self.best = detail.best
            self.query_one(DetailView).show(render_detail(ex, detail.proposals, detail.history, detail.best))
        # the counts repaint in the frame after the question: the question is on screen first
        self.call_after_refresh(self._paint_progress)
        self.post_message(self.Shown(ex.id if ex else None))

    def _filter_text(self) -> str:
        return describe(self.flt, self.ids_title)

    def _paint_filter(self) -> None:
        self.bar.show_filter(self._filter_text())

    def _paint_progress(self) -> None:
        window, counts, pace = self.window, self.status_counts, self.pace.per_minute()
        n = window.count if window else 0
        reviewed = (counts.get("reviewed", 0), sum(counts.values())) if counts is not None else None
        self.bar.show_progress(self.dataset.cursor + 1 if n else 0, n if window is None or window.exact else None,
                               reviewed, pace)
        if reviewed is not None:
            self.post_message(self.Progress(reviewed[0], reviewed[1], pace))

    # ------------------------------------------------------------------ moving

    def action_move(self, delta: int) -> None:
        self.dataset.move_to(self.dataset.cursor + delta)
        self._show_current()

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.dataset.size.height - 1))

    def action_detail(self, delta: int) -> None:
        self.query_one(DetailView).scroll_lines(delta)

    def action_first(self) -> None:
        self.dataset.move_to(0)
        self._show_current()

    def action_last(self) -> None:
        assert self.window is not None
        if not self.window.exact:  # still counting: count now (the operator asked for the end)
            self.window.count_now()
            self.dataset.sync()
        self.dataset.move_to(self.window.count - 1)
        self._show_current()

    def on_example_list_clicked(self, event: ExampleList.Clicked) -> None:
        self.dataset.move_to(event.offset)
        self._show_current()
        self.focus()

    # ------------------------------------------------------------------ deciding

    def action_accept(self) -> None:
        if self.shown is None:
            self.app.bell()
            return
        if self.best is None:
            self.app.bell()
            say(self, "No valid proposal to accept: press 1-9 or o to choose the action.", timeout=3)
            return
        self._decide(DecisionKind.ACCEPT, self.best.action, self.best.model)

    def action_label_number(self, n: int) -> None:
        if n > len(self.actions):
            self.app.bell()
            return
        self._label_with(self.actions[n - 1].name)

    def _label_with(self, action: str, ex: Example | None = None) -> None:
        ex = ex or self.shown
        if ex is None:
            self.app.bell()
            return
        best = self.best if (self.shown is not None and ex.id == self.shown.id) else None
        if best is not None and best.action == action:
            self._decide(DecisionKind.ACCEPT, action, best.model, ex)
        else:
            self._decide(DecisionKind.OVERRIDE, action, None, ex)

    def action_skip(self) -> None:
        self._decide(DecisionKind.SKIP)

    def action_flag(self) -> None:
        self._decide(DecisionKind.FLAG)

    def action_pick(self) -> None:
        ex = self.shown
        if ex is None or not self.actions:
            self.app.bell()
            return
        items = [PickItem(a.name, a.name, str(a.code), a.description) for a in self.actions]
        current = self.best.action if self.best else None

        def done(value: str | None) -> None:
            if value:
                self._label_with(value, ex)

        self.app.push_screen(PickerScreen(f"Action for #{ex.id}", items, current=current), done)

    def _decide(
        self, kind: DecisionKind, action: str | None = None, model: str | None = None, ex: Example | None = None
    ) -> None:
        assert self.session is not None and self.window is not None
        ex = ex or self.shown
        if ex is None:
            self.app.bell()
            return
        done = self.session.decide(ex.id, kind, action, model)  # saved before anything moves
        fresh = done.example
        if done.notice:
            say(self, done.notice, timeout=6)
        self._seq += 1
        self.pace.record()
        self._count_move(ex.status, fresh.status)
        session, flt = self.session, self.flt
        self.dataset.cursor = self.window.apply_decision(
            fresh, self.dataset.cursor, stays=lambda: session.belongs(flt, fresh, was_member=True),
            anchor=self.shown.id if self.shown else None)
        self.dataset.sync(lazy=True)
        self._show_current()
        self.bar.wait_line.show_state()

    def on_wait_line_applied(self, _: WaitLine.Applied) -> None:
        self._merge_outside()  # the pending decisions are in; so is what the other process wrote

    def _count_move(self, old: Status, new: Status) -> None:
        if self.status_counts is not None and old != new:
            self.status_counts[str(old)] = self.status_counts.get(str(old), 0) - 1
            self.status_counts[str(new)] = self.status_counts.get(str(new), 0) + 1

    def action_undo(self) -> None:
        assert self.session is not None
        if self.session.newest_step_size() > 1:  # a bulk accept: many small writes, in a worker
            self._undo_bulk()
            return
        try:
            undone = self.session.undo()
        except WorkspaceLocked as e:  # only the newest decision made elsewhere was left: not journalled
            self.app.bell()
            say(self, f"Not undone: {e}", timeout=4)
            return
        self.bar.wait_line.show_state()
        if undone is None:
            self.app.bell()
            say(self, "Nothing to undo.", timeout=2)
            return
        self._seq += 1
        self.pace.undo()
        self._show_undone(undone)

    def _show_undone(self, undone: Undone) -> None:
        """The undone question under the cursor when it is back in the filter; else say where it went."""
        assert self.session is not None and self.window is not None
        ex = undone.example
        if undone.before is not None:
            self._count_move(undone.before, ex.status)
        else:
            self._load_counts()
        offset = self.window.apply_undo(ex, belongs=self.session.belongs(self.flt, ex, was_member=False))
        if offset is not None:
            self.dataset.cursor = offset
        else:
            say(self, f"Undone #{ex.id}: now {ex.status}, outside this filter.", timeout=3)
        self.dataset.sync()
        self._show_current()

    def _undo_bulk(self) -> None:
        session = self.session
        assert session is not None

        def undo() -> str | None:
            try:
                undone = session.undo_bulk()
            except WorkspaceLocked as e:
                return f"Not undone (u tries again): {e}"
            return undone and f"Undone a bulk accept: {undone.decisions:,} questions are unreviewed again."

        self._in_background("review-bulk", undo, lambda _, said: self._bulk_done(said))

    def _bulk_done(self, message: str | None) -> None:
        if message is None:
            self.app.bell()
            return
        say(self, message, timeout=4)
        self.action_reload()

    # ------------------------------------------------------------------ filters and search

    def set_filter(self, flt: ExampleFilter) -> None:
        assert self.window is not None
        self.flt = flt
        self._seq += 1
        self.window.reset(flt, defer_count=True)
        self._count_filter()
        self.dataset.cursor = 0
        self.dataset.scroll_to(y=0, animate=False, immediate=True)
        self.dataset.sync()
        self._paint_filter()
        self._show_current()

    def show_examples(self, ids: list[int], title: str = "", split: str | None = None) -> None:
        """Review exactly these questions, whatever their status (e.g. a confusion-matrix cell). Test-split
        questions only when `split` names the test split (an evaluation on it), as everywhere in review."""
        self.ids_title = printable(title) if title else f"{len(ids)} chosen"
        self.set_filter(ExampleFilter(ids=tuple(ids), split=split).guarded())

    def action_search(self) -> None:
        self.bar.open_search(self.flt.query or "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "review-search":
            return
        event.stop()
        self.bar.close_search()
        self.focus()
        query = event.value.strip() or None
        if query != self.flt.query:
            self.set_filter(replace(self.flt, query=query))

    def action_escape(self) -> None:
        if self.bar.close_search():
            self.focus()
        elif self.flt.query:
            self.set_filter(replace(self.flt, query=None))

    def action_filter(self) -> None:
        assert self.session is not None
        items = filter_menu(self.flt, sources=self.session.sources(), models=self.session.proposal_models(),
                            actions=self.actions)

        def done(value: str | None) -> None:
            if value is not None:
                self.set_filter(apply_choice(self.flt, value))

        self.app.push_screen(PickerScreen(f"Filter (now: {self._filter_text()})", items), done)

    # ------------------------------------------------------------------ bulk accept

    def action_bulk(self) -> None:
        assert self.session is not None
        session, flt = self.session, self.flt
        models = session.bulk_models()
        if not models:
            say(self, "No proposals yet: run routelab label first.", timeout=3)
            return

        def done(choice: tuple[str, float] | None) -> None:
            if choice:
                say(self, f"Accepting {choice[0]}'s proposals…", timeout=2)
                self._in_background("review-bulk", lambda: accept(*choice), lambda _, said: self._bulk_done(said))

        def accept(model: str, conf: float) -> str:
            try:
                result = session.bulk_accept(flt, model, conf, cancelled=lambda: get_current_worker().is_cancelled)
            except WorkspaceLocked as e:
                return f"Nothing accepted: {e}"
            return f"Accepted {result.accepted:,} proposals from {model} (u undoes them all)."

        count = lambda model, conf: session.fresh_count_bulk(flt, model, conf)  # noqa: E731 - run in a worker
        self.app.push_screen(BulkAcceptScreen(models, count, filter_text=self._filter_text()), done)

    # ------------------------------------------------------------------ outside changes

    def _poll(self) -> None:
        if self.session is not None and self.session.changed_outside():
            self._merge_outside()
        else:
            self._paint_progress()  # the pace moves with the clock

    def action_reload(self) -> None:
        """Re-read counts, rows and the catalog (in a worker; the cursor stays on its question)."""
        self._seq += 1
        self._merge_outside()

    def _merge_outside(self) -> None:
        assert self.session is not None
        session, flt, shown_id = self.session, self.flt, self.shown.id if self.shown else None
        self._in_background("review-merge", lambda: session.fresh_overview(flt, shown_id),
                            lambda seq, overview: self._apply_outside(seq, shown_id, overview))

    def _apply_outside(self, seq: int, shown_id: int | None, overview: Overview) -> None:
        assert self.window is not None and self.session is not None
        if seq != self._seq:
            self.session.look_again()  # we changed things meanwhile: merge again at the next poll
            return
        self.status_counts = overview.counts
        self.actions = self.session.actions()
        self.query_one("#review-catalog", Static).update(render_catalog(self.actions))
        if shown_id is not None:
            self.dataset.cursor = self.window.reanchor(shown_id, overview.position, overview.count)
        else:
            self.window.reset(self.flt, count=overview.count)
            self.dataset.cursor = 0
        self.dataset.sync()
        self._show_current()

    # ------------------------------------------------------------------ for the app

    @staticmethod
    def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
        return [("Review", REVIEW_KEYS)]
