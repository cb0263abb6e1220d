"""The Evaluate pane: the teacher-vs-student table, per-action metrics and confusions.

Stored evaluations are shown at once (read in a worker: the pane paints first); `r`
(re)runs the evaluation in a worker thread, with progress; Enter on a confusion asks
the app to open those examples in the Review pane (a ShowExamples message).
"""

from __future__ import annotations

import threading

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from routelab.domain import Evaluation, RoutelabError
from routelab.services.formatting import has_scope, headline_row
from routelab.services.workspace import EvaluationOverview, Workspace
from routelab.tui.components.model_names import cut_middle, short_model
from routelab.tui.messages import ShowExamples
from routelab.tui.safe import literal, say

# the headline (macro-F1 and the invalid rate are in the per-action panel's title)
TABLE_COLUMNS = ("model", "synthetic", "user", "all", "improvement", "latency", "cost")
MATRIX_MAX_ACTIONS = 12  # beyond this the full matrix is unreadable: the largest confusions say more


MODEL_WIDTH = (16, 44)  # the headline's model column: at least, at most (the rest of the row decides)


# key -> header; compact cells so that five or more models fit 120 columns
HEADERS = {"model": "model", "synthetic": "synthetic", "user": "user", "all": "all", "improvement": "vs base",
           "latency": "p50/p95 ms", "cost": "$/1k routes"}
# the panel beside the confusions: calibration (ECE) of every model, and with a fallback action
# in-scope accuracy and out-of-scope recall/precision
SCOPE_COLUMNS = (("in_scope", "in-scope"), ("oos_recall", "recall"), ("oos_precision", "prec."))


def headline_cells(ev: Evaluation) -> dict[str, str]:
    """The headline row of one model, compact (the model id in full)."""
    return headline_row(ev, compact=True)


class EvaluatePane(Vertical):
    BINDINGS = [
        Binding("r", "run_eval", "Run eval"),
    ]

    def __init__(self, workspace: Workspace, *, auto_run: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.workspace = workspace
        self.split = "test"
        self.rows: list[Evaluation] = []
        self.selected: str | None = None
        self.changed_test_labels = 0
        self.confusion_ids: list[tuple[str, list[int], str | None]] = []  # title, ids, the evaluated split
        self.running = False
        self.auto_run = auto_run  # evaluate once by itself when nothing is stored and every model is local
        self._auto_pending = False
        self._visible = False  # between a Show and a Hide event: its tab is the active one
        self._loaded = False
        self._model_width = MODEL_WIDTH[1]  # of the headline's model column, as last filled
        self._first_next = False  # a run finished: the next load selects its first row

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading evaluations…"), id="eval-status")
        table = DataTable(id="eval-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Models"
        yield table
        with Horizontal(id="eval-bottom"):
            per_action = DataTable(id="eval-per-action", cursor_type="row")
            per_action.border_title = "Per action"
            yield per_action
            with Vertical(id="eval-right"):
                scope = DataTable(id="eval-scope", cursor_type="none", show_cursor=False)
                scope.can_focus = False  # a summary beside the headline: keys stay with the tables
                scope.display = False
                yield scope
                matrix = Static(id="eval-matrix")
                matrix.border_title = "Confusion · rows: label, columns: predicted"
                yield matrix
                confusions = DataTable(id="eval-confusions", cursor_type="row")
                confusions.border_title = "Largest confusions · ⏎ review them"
                yield confusions

    def on_mount(self) -> None:
        self._columns(self.query_one("#eval-table", DataTable))
        self.query_one("#eval-per-action", DataTable).add_columns("F1", "prec.", "recall", "n", "action")
        self.query_one("#eval-confusions", DataTable).add_columns("count", "label", "predicted")
        self.reload()

    def on_show(self) -> None:
        """Shown (its tab opened): keys go to the table unless something here has focus."""
        self._visible = True
        if not any(w.has_focus for w in self.query(DataTable)):
            self.query_one("#eval-table", DataTable).focus()
        if self._auto_pending:
            self._maybe_auto_run()
        elif self.is_mounted and not self.running and self._loaded:
            self.reload()  # an evaluation run elsewhere (the CLI) since last time shows up

    # ------------------------------------------------------------------ loading

    @work(thread=True, exclusive=True, group="eval-load")
    def reload(self, first: bool = False) -> None:
        """Read the stored evaluations; `first`: select the first row (after a run) instead of keeping the selection."""
        overview = self.workspace.evaluation_overview(self.split)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, overview, first)
            # nothing stored yet and every model is local (free, offline): show the table unasked
            if not overview.rows and overview.labelled is not None and overview.offline and self.auto_run:
                self.app.call_from_thread(self._maybe_auto_run)

    def on_hide(self) -> None:
        self._visible = False

    def _maybe_auto_run(self) -> None:
        """Evaluate unasked once, the first time the pane is seen with nothing stored (local models only)."""
        self._auto_pending = True
        # on screen, by the Show event: at start-up the tabs hide the panes a moment after they mount,
        # so looking at `display` then could start an evaluation nobody sees
        if self._visible and self.auto_run and not self.running:
            self.auto_run = self._auto_pending = False
            self.action_run_eval()

    def _show(self, overview: EvaluationOverview, first: bool = False) -> None:
        self._loaded = True
        self.rows, self.split = overview.rows, overview.split
        self.changed_test_labels = overview.changed_test_labels
        first, self._first_next = first or self._first_next, False
        self._fill(None if first else self.selected)
        if self.rows:
            self._status()
            return
        if overview.problem:
            hint = overview.problem
        else:
            hint = (f"{overview.labelled} questions in the {overview.split} split have a human label · "
                    "press r to evaluate every model")
        self.query_one("#eval-status", Static).update(literal(hint))

    @staticmethod
    def _widths(cells: list[dict[str, str]]) -> dict[str, int]:
        """Each column as wide as its widest cell or header."""
        return {k: max([cell_len(HEADERS[k])] + [cell_len(c[k]) for c in cells]) for k in TABLE_COLUMNS}

    def _fit_model_width(self, cells: list[dict[str, str]]) -> int:
        """How wide the model column may be so that the whole headline fits the pane."""
        width = self.size.width or self.app.size.width
        widths = self._widths(cells)
        others = sum(widths[k] + 2 for k in TABLE_COLUMNS if k != "model")  # + the cell padding
        scrollbar = 2 if len(cells) > 9 else 0  # more rows than the table shows
        room = width - 2 - others - 2 - scrollbar  # the border; the model column's padding
        return max(MODEL_WIDTH[0], min(MODEL_WIDTH[1], room, widths["model"]))

    def _fill(self, keep: str | None) -> None:
        """(Re)fill the headline table; the cursor on `keep` (else the first row) and the panels follow it."""
        t = self.query_one("#eval-table", DataTable)
        cells = [headline_cells(ev) for ev in self.rows]
        self._model_width = width = self._fit_model_width(cells)
        for ev, row in zip(self.rows, cells):
            mark = row["model"][len(ev.model):]  # " (in-sample)": kept whole, the id is shortened instead
            row["model"] = short_model(ev.model, max(8, width - len(mark))) + mark
        t.clear(columns=True)  # an auto-width column never narrows: set the widths anew
        self._columns(t, self._widths(cells) if cells else None)
        for ev, row in zip(self.rows, cells):
            t.add_row(*(literal(row[k]) for k in TABLE_COLUMNS), key=ev.model)
        cut = [(row["model"], ev.model) for ev, row in zip(self.rows, cells) if not row["model"].startswith(ev.model)]
        t.tooltip = Text("\n".join(f"{a} = {b}" for a, b in cut)) if cut else None  # the full ids
        self._fill_scope(cells)
        if self.rows:
            names = [ev.model for ev in self.rows]
            index = names.index(keep) if keep in names else 0
            t.move_cursor(row=index)
            self._select(names[index])
        else:
            self._select(None)

    def _fill_scope(self, cells: list[dict[str, str]]) -> None:
        """Every model's ECE, and with a fallback action its in-scope accuracy and out-of-scope recall/precision."""
        scope = self.query_one("#eval-scope", DataTable)
        scope.clear(columns=True)
        with_scope = has_scope(self.rows)
        columns = [*(SCOPE_COLUMNS if with_scope else ()), ("ece", "ECE")]
        scope.display = with_scope or any(ev.details.get("ece") is not None for ev in self.rows)
        if not scope.display:
            return
        if with_scope:
            fallback = next(ev.details["fallback"] for ev in self.rows if ev.details.get("out_of_scope"))
            scope.border_title = literal(f"Out of scope (fallback {cut_middle(fallback, 24)}) · calibration")
        else:
            scope.border_title = "Calibration · ECE, 0 = calibrated"
        others = sum(max(len(h), *(len(c[k]) for c in cells)) + 2 for k, h in columns)
        width = max(12, (scope.outer_size.width or self.size.width // 2 or 60) - 4 - others)
        scope.add_columns("model", *(h for _, h in columns))
        for ev, row in zip(self.rows, cells):
            scope.add_row(literal(short_model(ev.model, width)), *(literal(row[k]) for k, _ in columns))

    @staticmethod
    def _columns(t: DataTable, widths: dict[str, int] | None = None) -> None:
        for key in TABLE_COLUMNS:
            t.add_column(HEADERS[key], key=key, width=widths[key] if widths else None)

    def on_resize(self) -> None:
        if self.rows and self._fit_model_width([headline_cells(ev) for ev in self.rows]) != self._model_width:
            self._fill(self.selected)
        else:
            self._title_per_action()  # fit the new width

    def _status(self, extra: str = "") -> None:
        if not self.rows:
            return
        first = self.rows[0]
        slices = first.details.get("slices", {})
        counts = " · ".join(f"{k} n={slices[k]['n']}" for k in ("synthetic", "user")
                            if k in slices and slices[k].get("n")) or "n=0"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.split} split", style="bold")
        text.append(f" · {counts} · base {short_model(str(first.details.get('base')), 30)}")
        if self.changed_test_labels:  # before the rest: the line is cut at the pane's width
            text.append(f" · {self.changed_test_labels} test labels changed after a model proposed for them",
                        style="yellow")
        text.append(f" · {first.created_at[:16].replace('T', ' ')} UTC")
        text.append(" · [95% Wilson CI] · r re-run", style="dim")
        if extra:
            text.append("  " + extra, style="bold yellow")
        self.query_one("#eval-status", Static).update(text)

    # ------------------------------------------------------------------ one model's details

    @on(DataTable.RowHighlighted, "#eval-table")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # follow the cursor as it is now: a highlight queued before the table was refilled may be stale
        t = self.query_one("#eval-table", DataTable)
        if not t.row_count or not t.is_valid_coordinate(t.cursor_coordinate):
            return
        model = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        if model != self.selected:
            self._select(model)

    def _select(self, model: str | None) -> None:
        self.selected = model
        ev = next((r for r in self.rows if r.model == model), None)
        per = self.query_one("#eval-per-action", DataTable)
        conf = self.query_one("#eval-confusions", DataTable)
        matrix = self.query_one("#eval-matrix", Static)
        per.clear()
        conf.clear()
        self.confusion_ids = []
        self._title_per_action()
        if ev is None:
            matrix.update("")
            return
        items = sorted(ev.details.get("per_action", {}).items(), key=lambda kv: kv[1]["f1"])
        for action, m in items:
            per.add_row(f"{m['f1']:.2f}", f"{m['precision']:.2f}", f"{m['recall']:.2f}", str(m["support"]),
                        literal(action))
        for i, c in enumerate(ev.details.get("confusions", [])):
            conf.add_row(str(c["count"]), literal(cut_middle(c["gold"], 24)), literal(cut_middle(c["pred"], 24)), key=str(i))
            self.confusion_ids.append((f"{ev.model}: {c['gold']} → {c['pred']}", list(c["ids"]), ev.split))
        labels = ev.details.get("labels", [])
        small = 0 < len(labels) <= MATRIX_MAX_ACTIONS
        matrix.display = small
        matrix.update(self._matrix(ev) if small else "")
        conf.border_title = ("Largest confusions · ⏎ review them" if small or not labels else
                             f"Largest confusions of {len(labels)} actions · ⏎ review them")

    def _title_per_action(self) -> None:
        """`MODEL · macro-F1 0.83 · invalid 0.0%` whole in the border; the full id below when shortened."""
        per = self.query_one("#eval-per-action", DataTable)
        ev = next((r for r in self.rows if r.model == self.selected), None)
        if ev is None:
            per.border_title, per.border_subtitle = "Per action", None
            return
        f1 = f"{ev.macro_f1:.2f}" if ev.macro_f1 is not None else "—"
        # the border shows about its width less the corners: the model gets what the numbers leave
        room = max(24, (per.outer_size.width or self.size.width // 2 or 60) - 6)
        tail = f" · macro-F1 {f1} · invalid {ev.invalid_rate:.1%}"
        name = short_model(ev.model, max(12, room - len(tail)))
        title = name + tail
        if len(title) + len(" · worst first") <= room:
            title += " · worst first"
        per.border_title = literal(title)
        per.border_subtitle = literal(cut_middle(ev.model, room)) if name != ev.model else None  # the full id

    @staticmethod
    def _matrix(ev: Evaluation):
        labels = ev.details.get("labels", [])
        confusion = ev.details.get("confusion", {})
        if not labels:
            return ""
        from routelab.services.evaluation import INVALID

        preds = list(labels) + ([INVALID] if any(INVALID in row for row in confusion.values()) else [])
        table = Table(box=None, padding=(0, 1), show_edge=False)
        table.add_column("")
        for j, p in enumerate(preds):
            table.add_column(Text(str(j + 1) if p != INVALID else "∅"), justify="right")
        for i, g in enumerate(labels):
            row = confusion.get(g, {})
            cells = []
            for p in preds:
                n = row.get(p, 0)
                style = "green" if p == g and n else ("bold red" if n else "dim")
                cells.append(Text(str(n) if n else "·", style=style))
            table.add_row(literal(f"{i + 1} {g}"), *cells)
        return table

    @on(DataTable.RowSelected, "#eval-confusions")
    def _confusion_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open(int(event.row_key.value))

    def _open(self, index: int) -> None:
        if 0 <= index < len(self.confusion_ids):
            title, ids, split = self.confusion_ids[index]
            self.post_message(ShowExamples(ids, title, split))  # the split named: the test split shows
            say(self, f"{title}: {len(ids)} examples", title="Opening in Review")

    # ------------------------------------------------------------------ running

    def action_run_eval(self) -> None:
        if self.running:
            say(self, "an evaluation is already running")
            return
        self.running = True
        self._status("evaluating…") if self.rows else self.query_one("#eval-status", Static).update(
            Text("evaluating…", style="bold yellow"))
        self.run_eval()

    @work(thread=True, exclusive=True, group="eval-run")
    def run_eval(self) -> None:
        worker = get_current_worker()

        def progress(p) -> None:
            pct = f" {100 * p.done / p.total:.0f}%" if p.total else ""
            self.app.call_from_thread(self._progress, f"evaluating{pct} · {p.message}")

        try:
            run = self.workspace.evaluate(self.split, progress=progress, confirm=self._confirm_spend,
                                          cancelled=lambda: worker.is_cancelled)
        except RoutelabError as e:
            self.app.call_from_thread(self._done, str(e), True)
            return
        except Exception as e:  # shown, not raised: the app must stay up
            self.app.call_from_thread(self._done, f"evaluation failed: {type(e).__name__}: {e}", True)
            return
        message = f"evaluated {len(run.evaluations)} models on {run.n} questions"
        if run.errors:
            message += " · failed: " + "; ".join(f"{m}: {r}" for m, r in run.errors.items())
        self.app.call_from_thread(self._done, message, bool(run.errors))

    def _confirm_spend(self, estimate) -> bool:
        """Called from the worker thread: ask on screen, wait for the answer."""
        from routelab.tui.components.confirm import ConfirmScreen

        answer: list[bool] = []
        answered = threading.Event()

        def done(value: bool | None) -> None:
            answer.append(bool(value))
            answered.set()

        self.app.call_from_thread(
            self.app.push_screen, ConfirmScreen(f"{estimate.line()}\nSpend it to evaluate?"), done
        )
        answered.wait()
        return answer[0]

    def _progress(self, text: str) -> None:
        if self.rows:
            self._status(text)
        else:
            self.query_one("#eval-status", Static).update(literal(text))

    def _done(self, message: str, error: bool) -> None:
        self.running = False
        say(self, literal(message).plain, severity="error" if error else "information")
        self._first_next = True  # a new run: its first row (the base) and its panels
        self.reload(first=True)
