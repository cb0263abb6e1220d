"""The Review pane: a virtual list of questions, the shown question's proposals, one key per decision.

Every decision is committed to the store before the screen moves on; the list is then
edited locally (the decided row leaves a status filter, the cursor stays on the next
one) instead of re-querying, so a decision costs a few small indexed queries whatever
the size of the workspace. Changes from other processes (a `routelab label` run,
another reviewer) are noticed through `PRAGMA data_version` and merged in the background.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from routelab.domain import SPLITS, DecisionKind, Example, Status, printable
from routelab.services.review import SessionPace, best_proposal, bulk_accept, count_bulk, preferred_teacher
from routelab.store import ExampleFilter, Store
from routelab.tui.components.bulk import BulkAcceptScreen
from routelab.tui.components.detail import DetailView, render_catalog, render_detail
from routelab.tui.components.example_list import ExampleList, RowWindow
from routelab.tui.components.picker import PickerScreen, PickItem

STYLES = Path(__file__).resolve().parent.parent.parent / "styles"
LOW_CONFIDENCE = 0.6
EMPTY_WORKSPACE = "no questions yet: routelab import FILE (or routelab demo)"
POLL_SECONDS = 2.0

# (keys, what) for the help overlay; kept beside BINDINGS so the two never drift apart.
REVIEW_KEYS: list[tuple[str, str]] = [
    ("Enter / a", "accept the shown proposal (marked ⏎: the teacher's, else the most confident valid one)"),
    ("1 … 9", "label with action N of the catalog (an override, or an accept if it agrees with ⏎)"),
    ("o", "pick any action with a fuzzy search (type a few letters, Enter)"),
    ("s", "skip"),
    ("f", "flag for a second look"),
    ("u", "undo the last decision (repeatable; appends an undo, nothing is deleted)"),
    ("j / ↓   k / ↑", "next / previous question"),
    ("PgDn / PgUp", "a screen down / up"),
    ("J / K", "scroll the question's detail (long questions, conversations)"),
    ("g / Home   G / End", "first / last question"),
    ("/", "full-text search (Enter applies, Esc closes; Esc again clears)"),
    ("v", (
        "filter: unreviewed, reviewed, skipped, flagged, disagreement between models, label ≠ proposal, "
        "low confidence, source, action, split, model. Filters combine: the bar above the list shows them all, "
        "● marks them in the menu, choosing a marked one turns it off"
    )),
    ("v all", "every question: clears every other filter (the search stays)"),
    ("v clear", "back to the start: unreviewed, no other filter, no search"),
    ("A", "bulk accept one model's proposals at or above a confidence (asks first, says how many)"),
    ("r", "reload from the workspace"),
]


class ReviewPane(Vertical, can_focus=True):
    DEFAULT_CSS = ""
    BINDINGS = [
        Binding("enter,a", "accept", "Accept"),
        *[Binding(str(n), f"label_number({n})", f"Action {n}", show=False) for n in range(1, 10)],
        Binding("o", "pick", "Pick"),
        Binding("s", "skip", "Skip"),
        Binding("f", "flag", "Flag"),
        Binding("u", "undo", "Undo"),
        Binding("j,down", "move(1)", "Next", show=False),
        Binding("k,up", "move(-1)", "Previous", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("g,home", "first", "First", show=False),
        Binding("G,end", "last", "Last", show=False),
        Binding("slash", "search", "Search"),
        Binding("v", "filter", "Filter"),
        Binding("A", "bulk", "Bulk accept"),
        Binding("escape", "escape", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("J", "detail(3)", show=False),
        Binding("K", "detail(-3)", show=False),
    ]

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

    def __init__(self, db_path, **kwargs):
        super().__init__(**kwargs)
        self.db_path = Path(db_path)
        self.flt = ExampleFilter(status=Status.UNREVIEWED)
        self.store: Store | None = None
        self.window: RowWindow | None = None
        self.actions = []
        self.teacher: str | None = None
        self.shown: Example | None = None
        self.best = None
        self.pace = SessionPace(clock=time.monotonic)
        self.session: list[tuple[int, int]] = []  # (decision id, example id) made here, for undo
        self.status_counts: dict[str, int] | None = None
        self._seq = 0  # bumps on every local change; background results from an older seq are dropped
        self._data_version: int | None = None
        self.ids_title = ""  # what an explicit set of questions (ShowExamples) is called

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="review-bar"):
            yield Static(id="review-filter")
            yield Input(id="review-search", placeholder="search: words, Enter applies, Esc closes")
            yield Static(id="review-progress")
        # list and detail are direct children (a grid): one container less to paint per line
        yield ExampleList(id="review-list")
        yield DetailView(id="review-detail")
        yield Static(id="review-catalog")

    @property
    def dataset(self) -> ExampleList:
        return self.query_one("#review-list", ExampleList)

    def on_mount(self) -> None:
        self.store = Store.open(self.db_path)
        self.actions = self.store.actions()
        self.teacher = preferred_teacher(self.store)
        self.window = RowWindow(self.store, self.flt)
        self.window.reset(defer_count=True)  # first rows now; the COUNT in a worker
        if not self.window.rows and self.flt == ExampleFilter(status=Status.UNREVIEWED):
            self._start_elsewhere()
        self._data_version = self._version()
        self.dataset.set_window(self.window)
        self.query_one("#review-search", Input).display = False
        self.query_one("#review-catalog", Static).update(render_catalog(self.actions))
        self._show_current()
        self._paint_filter()
        self._load_counts()
        self._count_filter()
        self.set_interval(POLL_SECONDS, self._poll)
        self.focus()

    def _start_elsewhere(self) -> None:
        """Nothing unreviewed at first load (e.g. a dataset imported with its labels): open on the
        labels a proposal disagrees with (the teacher's first), else on everything, and say why."""
        assert self.store is not None and self.window is not None
        if not self._has_rows(ExampleFilter()):
            return  # an empty workspace: the hint says how to import
        choices = []
        if self.teacher:
            choices.append((ExampleFilter(conflict=True, model=self.teacher), "labels the teacher disagrees with"))
        choices.append((ExampleFilter(conflict=True), "labels a model's proposal disagrees with"))
        flt, why = ExampleFilter(), "every question"
        for candidate, what in choices:
            if self._has_rows(candidate):
                flt, why = candidate, what
                break
        self.flt = flt
        self.window.reset(flt, defer_count=True)
        self.notify(f"nothing unreviewed: showing {why}", timeout=6, markup=False)

    def _has_rows(self, flt: ExampleFilter) -> bool:
        assert self.store is not None
        return bool(self.store.page(flt, limit=1))

    def on_unmount(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    # ------------------------------------------------------------------ showing

    def _show_current(self) -> None:
        assert self.store is not None
        ex = self.dataset.current()
        self.shown = ex
        if ex is None:
            self.best = None
            if not self._has_rows(ExampleFilter()):
                hint = EMPTY_WORKSPACE
            else:
                hint = "Nothing left in this filter.  " if self.flt.status == Status.UNREVIEWED else ""
                hint += "v: change the filter · /: search"
            self.dataset.empty_hint = hint if hint == EMPTY_WORKSPACE else None
            self.query_one(DetailView).show(render_detail(None, [], [], None, empty_hint=hint))
        else:
            proposals = self.store.proposals(ex.id)
            history = self.store.history(ex.id)
            self.best = best_proposal(proposals, self.teacher)
            self.query_one(DetailView).show(render_detail(ex, proposals, history, self.best))
        # the counts repaint in the frame after the question: the question is on screen first
        self.call_after_refresh(self._paint_progress)
        self.post_message(self.Shown(ex.id if ex else None))

    def _filter_text(self) -> str:
        f = self.flt
        parts = [str(f.status) if f.status else "all"]
        if f.disagreement:
            parts.append("disagreement")
        if f.conflict:
            parts.append("label ≠ proposal")
        if f.max_confidence is not None:
            parts.append(f"confidence < {f.max_confidence:g}")
        for name in ("source", "split", "action", "model"):
            value = getattr(f, name)
            if value is not None:
                parts.append(f"{name} {printable(value)}")
        if f.ids is not None:
            parts.append(self.ids_title or f"{len(f.ids)} chosen")
        if f.query:
            parts.append(f"/{printable(f.query)}")
        return " · ".join(parts)

    def _paint_filter(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" ▾ ", style="bold")
        t.append(self._filter_text(), style="bold")
        self.query_one("#review-filter", Static).update(t, layout=False)

    def _progress(self) -> tuple[int, int] | None:
        if self.status_counts is None:
            return None
        return self.status_counts.get("reviewed", 0), sum(self.status_counts.values())

    def _paint_progress(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis", justify="right")
        n = self.window.count if self.window else 0
        pos = self.dataset.cursor + 1 if n else 0
        exact = self.window is None or self.window.exact
        t.append(f"{pos:,}/{n:,} here" if exact else f"{pos:,}/counting… here")
        prog = self._progress()
        pace = self.pace.per_minute()
        if prog is not None:
            t.append(f" · {prog[0]:,}/{prog[1]:,} reviewed", style="bold")
        t.append(f" · {pace:.0f}/min " if pace is not None else " · —/min ")
        self.query_one("#review-progress", Static).update(t, layout=False)
        if prog is not None:
            self.post_message(self.Progress(prog[0], prog[1], pace))

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
            self.window.set_count(self.window.store.count(self.flt))
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
            self.notify("No valid proposal to accept: press 1-9 or o to choose the action.", timeout=3, markup=False)
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
        assert self.store is not None and self.window is not None
        ex = ex or self.shown
        if ex is None:
            self.app.bell()
            return
        d = self.store.decide(ex.id, kind, action, model=model)  # committed before anything moves
        self._seq += 1
        self.session.append((d.id, ex.id))
        self.pace.record()
        fresh = self.store.example(ex.id)
        assert fresh is not None
        self._count_move(ex.status, fresh.status)
        offset = self.window.offset_of(ex.id)
        cursor = self.dataset.cursor
        if offset is None:  # off the window (moved meanwhile): re-read around the cursor
            self.dataset.cursor = self.window.reload_around(self.shown.id if self.shown else None, cursor)
        elif self._matches(fresh, member=True):
            self.window.replace(offset, fresh)
            self.dataset.cursor = offset + 1 if offset == cursor else cursor
        else:
            self.window.remove(offset)
            self.dataset.cursor = cursor - 1 if offset < cursor else cursor
        self.dataset.sync(lazy=True)
        self._show_current()

    def _matches(self, ex: Example, *, member: bool) -> bool:
        """Does `ex` belong to the current filter? `member`: it did before its label changed."""
        f = self.flt
        if f.status is not None and ex.status != f.status:
            return False
        if member and f.action is None and not f.conflict:
            return True  # the other facets do not depend on decisions
        assert self.store is not None
        return self.store.count(replace(f, ids=(ex.id,))) > 0

    def _count_move(self, old: Status, new: Status) -> None:
        if self.status_counts is not None and old != new:
            self.status_counts[str(old)] = self.status_counts.get(str(old), 0) - 1
            self.status_counts[str(new)] = self.status_counts.get(str(new), 0) + 1

    def action_undo(self) -> None:
        assert self.store is not None and self.window is not None
        undone = None
        before = None
        while self.session and undone is None:
            decision_id, example_id = self.session.pop()
            before = self.store.example(example_id)
            undone = self.store.undo(decision_id)
        if undone is None:  # nothing of this session left: the newest decision in the workspace
            before = None
            undone = self.store.undo()
        if undone is None:
            self.app.bell()
            self.notify("Nothing to undo.", timeout=2, markup=False)
            return
        self._seq += 1
        self.pace.undo()
        ex = self.store.example(undone.example_id)
        assert ex is not None
        if before is not None:
            self._count_move(before.status, ex.status)
        else:
            self._load_counts()
        offset = self.window.offset_of(ex.id)
        if self._matches(ex, member=False):
            if offset is not None:
                self.window.replace(offset, ex)
            else:
                offset = self.window.insert(ex)
            if offset is None:
                offset = self.window.reload_around(ex.id)
            self.dataset.cursor = offset
        else:
            if offset is not None:
                self.window.remove(offset)
            self.notify(f"Undone #{ex.id}: now {ex.status}, outside this filter.", timeout=3, markup=False)
        self.dataset.sync()
        self._show_current()

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

    def show_examples(self, ids: list[int], title: str = "") -> None:
        """Review exactly these questions, whatever their status (e.g. a confusion-matrix cell)."""
        self.ids_title = printable(title) if title else f"{len(ids)} chosen"
        self.set_filter(ExampleFilter(ids=tuple(ids)))

    def action_search(self) -> None:
        box = self.query_one("#review-search", Input)
        box.value = self.flt.query or ""
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "review-search":
            return
        event.stop()
        event.input.display = False
        self.focus()
        query = event.value.strip() or None
        if query != self.flt.query:
            self.set_filter(replace(self.flt, query=query))

    def action_escape(self) -> None:
        box = self.query_one("#review-search", Input)
        if box.display:
            box.display = False
            self.focus()
        elif self.flt.query:
            self.set_filter(replace(self.flt, query=None))

    def filter_items(self) -> list[PickItem]:
        assert self.store is not None
        f = self.flt
        on = "● "
        items = [PickItem(f"status:{s}", f"{on if f.status == s else ''}{s}", "status") for s in Status]
        everything = replace(f, query=None) == ExampleFilter()
        items.append(PickItem("all", f"{on if everything else ''}all questions, no other filter (the search stays)", "status"))
        items.append(PickItem("disagreement", f"{on if f.disagreement else ''}disagreement between models", "proposals"))
        items.append(PickItem("conflict", f"{on if f.conflict else ''}label ≠ proposal (a model disagrees with the label)", "proposals"))
        items.append(PickItem("low", f"{on if f.max_confidence is not None else ''}low confidence (< {LOW_CONFIDENCE:g})", "proposals"))
        items += [PickItem(f"source:{s}", f"{on if f.source == s else ''}source {s}", "source") for s in self.store.sources()]
        items += [PickItem(f"split:{s}", f"{on if f.split == s else ''}split {s}", "split") for s in SPLITS]
        items += [PickItem(f"model:{m}", f"{on if f.model == m else ''}model {m}", "model") for m in self.store.proposal_models()]
        items += [PickItem(f"action:{a.name}", f"{on if f.action == a.name else ''}action {a.name}", "action") for a in self.actions]
        items.append(PickItem("clear", "clear every filter (back to unreviewed)", ""))
        return items

    def apply_filter_choice(self, value: str) -> None:
        f = self.flt
        kind, _, arg = value.partition(":")
        if kind == "status":
            f = replace(f, status=Status(arg) if arg else None)
        elif kind == "all":  # every question: the other filters go too, the search stays
            f = ExampleFilter(query=f.query)
        elif kind == "disagreement":
            f = replace(f, disagreement=not f.disagreement)
        elif kind == "conflict":
            f = replace(f, conflict=not f.conflict)
        elif kind == "low":
            f = replace(f, max_confidence=None if f.max_confidence is not None else LOW_CONFIDENCE)
        elif kind in ("source", "split", "model", "action"):
            f = replace(f, **{kind: None if getattr(f, kind) == arg else arg})
        elif kind == "clear":
            f = ExampleFilter(status=Status.UNREVIEWED)
        self.set_filter(f)

    def action_filter(self) -> None:
        def done(value: str | None) -> None:
            if value is not None:
                self.apply_filter_choice(value)

        self.app.push_screen(PickerScreen(f"Filter (now: {self._filter_text()})", self.filter_items()), done)

    # ------------------------------------------------------------------ bulk accept

    def action_bulk(self) -> None:
        assert self.store is not None
        models = self.store.proposal_models()
        if not models:
            self.notify("No proposals yet: run routelab label first.", timeout=3, markup=False)
            return
        if self.teacher in models:
            models.remove(self.teacher)
            models.insert(0, self.teacher)
        flt, db = self.flt, self.db_path

        def count(model: str, conf: float) -> int:
            with Store.open(db) as s:
                return count_bulk(s, flt, model, conf)

        def done(choice: tuple[str, float] | None) -> None:
            if choice:
                self.notify(f"Accepting {printable(choice[0])}'s proposals…", timeout=2, markup=False)
                self._run_bulk(flt, *choice)

        self.app.push_screen(BulkAcceptScreen(models, count, filter_text=self._filter_text()), done)

    @work(thread=True, exclusive=True, group="review-bulk")
    def _run_bulk(self, flt: ExampleFilter, model: str, conf: float) -> None:
        with Store.open(self.db_path) as s:
            result = bulk_accept(s, flt, model, conf, cancelled=lambda: get_current_worker().is_cancelled)
        self.app.call_from_thread(self._bulk_done, result.decisions, model)

    def _bulk_done(self, decisions: list[tuple[int, int]], model: str) -> None:
        self.session += decisions
        self.notify(f"Accepted {len(decisions):,} proposals from {printable(model)}.", timeout=4, markup=False)
        self.action_reload()

    # ------------------------------------------------------------------ outside changes

    def _version(self) -> int | None:
        if self.store is None:
            return None
        return self.store.conn.execute("PRAGMA data_version").fetchone()[0]

    def _poll(self) -> None:
        version = self._version()
        if version is not None and version != self._data_version:
            self._data_version = version
            self._merge_outside()
        else:
            self._paint_progress()  # the pace moves with the clock

    def action_reload(self) -> None:
        """Re-read counts, rows and the catalog (in a worker; the cursor stays on its question)."""
        self._seq += 1
        self._merge_outside()

    @work(thread=True, exclusive=True, group="review-filter-count")
    def _count_filter(self) -> None:
        assert self.window is not None
        if self.window.exact:
            return
        seq, flt = self._seq, self.flt
        with Store.open(self.db_path) as s:
            n = s.count(flt)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._set_filter_count, seq, flt, n)

    def _set_filter_count(self, seq: int, flt: ExampleFilter, n: int) -> None:
        assert self.window is not None
        if flt != self.flt or self.window.exact:
            return
        if seq != self._seq:
            self._count_filter()  # decided meanwhile: count again
            return
        self.window.set_count(n)
        self.dataset.sync()
        self._paint_progress()

    @work(thread=True, exclusive=True, group="review-counts")
    def _load_counts(self) -> None:
        seq = self._seq
        with Store.open(self.db_path) as s:
            counts = s.counts_by("status")
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._set_counts, counts, seq)

    def _set_counts(self, counts: dict[str, int], seq: int) -> None:
        if seq != self._seq and self.status_counts is not None:
            self._load_counts()  # we decided meanwhile: count again
            return
        self.status_counts = counts
        self._paint_progress()

    @work(thread=True, exclusive=True, group="review-merge")
    def _merge_outside(self) -> None:
        seq, flt = self._seq, self.flt
        shown_id = self.shown.id if self.shown else None
        with Store.open(self.db_path) as s:
            counts = s.counts_by("status")
            count = s.count(flt)
            position = s.position(flt, shown_id) if shown_id is not None else 0
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._apply_outside, seq, shown_id, counts, count, position)

    def _apply_outside(self, seq: int, shown_id: int | None, counts, count: int, position: int) -> None:
        if seq != self._seq:
            self._data_version = None  # we changed things meanwhile: merge again at the next poll
            return
        assert self.window is not None and self.store is not None
        self.status_counts = counts
        self.actions = self.store.actions()
        self.query_one("#review-catalog", Static).update(render_catalog(self.actions))
        if shown_id is not None:
            self.dataset.cursor = self.window.reanchor(shown_id, position, count)
        else:
            self.window.reset(self.flt, count=count)
            self.dataset.cursor = 0
        self.dataset.sync()
        self._show_current()

    # ------------------------------------------------------------------ for the app

    @staticmethod
    def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
        return [("Review", REVIEW_KEYS)]
