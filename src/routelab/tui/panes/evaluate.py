"""The Evaluate pane: the teacher-vs-student table, per-action metrics and confusions.

Stored evaluations are shown at once (read in a worker: the pane paints first); `r`
(re)runs the evaluation in a worker thread, with progress; Enter on a confusion asks
the app to open those examples in the Review pane (a ShowExamples message).
"""

from __future__ import annotations

import threading
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from routelab.domain import Evaluation, printable
from routelab.tui.messages import ShowExamples
from routelab.tui.safe import literal

# the headline (macro-F1 and the invalid rate are in the per-action panel's title)
TABLE_COLUMNS = ("model", "synthetic", "user", "all", "improvement", "latency", "cost")
MATRIX_MAX_ACTIONS = 12  # beyond this the full matrix is unreadable: the largest confusions say more


def _short(model: str, width: int = 30) -> str:
    return model if len(model) <= width else model[: width // 2 - 1] + "…" + model[-(width // 2):]


class EvaluatePane(Vertical):
    BINDINGS = [
        Binding("r", "run_eval", "Run eval"),
    ]

    def __init__(self, db_path, *, auto_run: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.db_path = Path(db_path)
        self.split = "test"
        self.rows: list[Evaluation] = []
        self.selected: str | None = None
        self.confusion_ids: list[tuple[str, list[int]]] = []
        self.running = False
        self.auto_run = auto_run  # evaluate once by itself when nothing is stored and every model is local
        self._auto_pending = False
        self._loaded = False

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
                matrix = Static(id="eval-matrix")
                matrix.border_title = "Confusion · rows: label, columns: predicted"
                yield matrix
                confusions = DataTable(id="eval-confusions", cursor_type="row")
                confusions.border_title = "Largest confusions · ⏎ review them"
                yield confusions

    def on_mount(self) -> None:
        t = self.query_one("#eval-table", DataTable)
        from routelab.services.evaluation import HEADLINE_COLUMNS

        for key, header in HEADLINE_COLUMNS:
            if key in TABLE_COLUMNS:
                t.add_column(header, key=key)
        self.query_one("#eval-per-action", DataTable).add_columns("F1", "prec.", "recall", "n", "action")
        self.query_one("#eval-confusions", DataTable).add_columns("count", "label", "predicted")
        self.reload()

    def on_show(self) -> None:
        """Shown (its tab opened): keys go to the table unless something here has focus."""
        if not any(w.has_focus for w in self.query(DataTable)):
            self.query_one("#eval-table", DataTable).focus()
        if self._auto_pending:
            self._maybe_auto_run()
        elif self.is_mounted and not self.running and self._loaded:
            self.reload()  # an evaluation run elsewhere (the CLI) since last time shows up

    # ------------------------------------------------------------------ loading

    @work(thread=True, exclusive=True, group="eval-load")
    def reload(self) -> None:
        from routelab.services.evaluation import check_split, latest
        from routelab.store import Store

        auto = False
        with Store.open(self.db_path, create=False) as store:
            rows = latest(store)
            split = rows[0].split if rows else self.split
            hint = None
            if not rows:
                try:
                    n = len(check_split(store, split or "test"))
                    hint = f"{n} questions in the {split} split have a human label · press r to evaluate every model"
                    # nothing stored yet and every model is local (free, offline): show the table unasked
                    from routelab.config import settings

                    auto = self.auto_run and not settings().has_openai  # no key: only local models run
                except Exception as e:  # BadInput: no test split, or no labels yet
                    hint = str(e)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, rows, split or "test", hint)
            if auto:
                self.app.call_from_thread(self._maybe_auto_run)

    def _displayed(self) -> bool:
        """On screen now (its tab is the active one)?"""
        return all(getattr(node, "display", True) for node in self.ancestors_with_self)

    def _maybe_auto_run(self) -> None:
        """Evaluate unasked once, the first time the pane is seen with nothing stored (local models only)."""
        self._auto_pending = True
        if self._displayed() and self.auto_run and not self.running:
            self.auto_run = self._auto_pending = False
            self.action_run_eval()

    def _show(self, rows: list[Evaluation], split: str, hint: str | None) -> None:
        from routelab.services.evaluation import headline_row

        self._loaded = True
        self.rows, self.split = rows, split
        t = self.query_one("#eval-table", DataTable)
        keep = self.selected
        t.clear()
        for ev in rows:
            cells = headline_row(ev)
            t.add_row(*(literal(_short(cells[k]) if k == "model" else cells[k]) for k in TABLE_COLUMNS), key=ev.model)
        if rows:
            names = [ev.model for ev in rows]
            index = names.index(keep) if keep in names else 0
            t.move_cursor(row=index)
            self._select(names[index])
            self._status()
        else:
            self._select(None)
            self.query_one("#eval-status", Static).update(literal(hint or "no evaluation yet · press r to run one"))

    def _status(self, extra: str = "") -> None:
        if not self.rows:
            return
        first = self.rows[0]
        slices = first.details.get("slices", {})
        counts = " · ".join(f"{k} n={slices[k]['n']}" for k in ("synthetic", "user") if k in slices)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.split} split", style="bold")
        text.append(f" · {counts} · base {first.details.get('base')}")
        text.append(f" · {first.created_at[:16].replace('T', ' ')} UTC")
        text.append(" · [95% Wilson CI] · r re-run", style="dim")
        if extra:
            text.append("  " + extra, style="bold yellow")
        self.query_one("#eval-status", Static).update(text)

    # ------------------------------------------------------------------ one model's details

    @on(DataTable.RowHighlighted, "#eval-table")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value != self.selected:
            self._select(event.row_key.value)

    def _select(self, model: str | None) -> None:
        self.selected = model
        ev = next((r for r in self.rows if r.model == model), None)
        per = self.query_one("#eval-per-action", DataTable)
        conf = self.query_one("#eval-confusions", DataTable)
        matrix = self.query_one("#eval-matrix", Static)
        per.clear()
        conf.clear()
        self.confusion_ids = []
        if ev is None:
            matrix.update("")
            return
        f1 = f"{ev.macro_f1:.2f}" if ev.macro_f1 is not None else "—"
        per.border_title = literal(f"{_short(ev.model, 24)} · macro-F1 {f1} · invalid {ev.invalid_rate:.1%} · worst first")
        items = sorted(ev.details.get("per_action", {}).items(), key=lambda kv: kv[1]["f1"])
        for action, m in items:
            per.add_row(f"{m['f1']:.2f}", f"{m['precision']:.2f}", f"{m['recall']:.2f}", str(m["support"]),
                        literal(action))
        for i, c in enumerate(ev.details.get("confusions", [])):
            conf.add_row(str(c["count"]), literal(_short(c["gold"], 24)), literal(_short(c["pred"], 24)), key=str(i))
            self.confusion_ids.append((f"{ev.model}: {c['gold']} → {c['pred']}", list(c["ids"])))
        labels = ev.details.get("labels", [])
        small = 0 < len(labels) <= MATRIX_MAX_ACTIONS
        matrix.display = small
        matrix.update(self._matrix(ev) if small else "")
        conf.border_title = ("Largest confusions · ⏎ review them" if small or not labels else
                             f"Largest confusions of {len(labels)} actions · ⏎ review them")

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
            title, ids = self.confusion_ids[index]
            self.post_message(ShowExamples(ids, title))
            self.notify(printable(f"{title}: {len(ids)} examples"), title="Opening in Review", markup=False)

    # ------------------------------------------------------------------ running

    def action_run_eval(self) -> None:
        if self.running:
            self.notify("an evaluation is already running")
            return
        self.running = True
        self._status("evaluating…") if self.rows else self.query_one("#eval-status", Static).update(
            Text("evaluating…", style="bold yellow"))
        self.run_eval()

    @work(thread=True, exclusive=True, group="eval-run")
    def run_eval(self) -> None:
        from routelab.domain import RoutelabError
        from routelab.services.evaluation import evaluate
        from routelab.store import Store

        worker = get_current_worker()

        def progress(p) -> None:
            pct = f" {100 * p.done / p.total:.0f}%" if p.total else ""
            self.app.call_from_thread(self._progress, f"evaluating{pct} · {p.message}")

        try:
            with Store.open(self.db_path, create=False) as store:
                run = evaluate(store, split=self.split, progress=progress, confirm=self._confirm_spend,
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
        self.notify(literal(message).plain, severity="error" if error else "information", markup=False)
        self.reload()
