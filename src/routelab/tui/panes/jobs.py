"""The Jobs pane: every job (label, batch, fine-tune, eval) and a live panel for the selected one.

Left: the jobs, newest first. Right: status and timeline, elapsed and ETA, a step/total
progress bar, the train/validation loss chart (only for a job with loss metrics, i.e. a
fine-tune once its first step is in; otherwise the event log takes its room), the event
log (auto-scrolling), trained tokens and cost.

Polling: one worker thread at a time, with its own Store connection, reads the store (and
at most every `remote_interval` seconds asks the provider about unfinished remote jobs);
when it finishes, the next poll is scheduled with set_timer, so polls never overlap. The
first poll resumes every unfinished job (a fine-tune started yesterday is followed again).
Worker results come back to the UI thread through Worker.StateChanged; no thread touches
a widget or a reactive.

Keys: f fine-tune (OpenAI with a key, else local; a confirm dialog shows the estimate),
l local fine-tune, c cancel the selected job, p open its model in the playground, r refresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from routelab.domain import Job, JobEvent, printable
from routelab.services.progress import format_duration
from routelab.tui.safe import literal

try:  # textual-plotext: a real line chart; the Sparkline is the fallback
    from textual_plotext import PlotextPlot
except ImportError:  # pragma: no cover
    PlotextPlot = None  # type: ignore[assignment,misc]

STATUS_MARK = {
    "queued": ("○", "dim"), "validating": ("◌", "cyan"), "running": ("●", "yellow"),
    "succeeded": ("✓", "green"), "failed": ("✗", "red"), "cancelled": ("⊘", "magenta"),
}

LOSS_SERIES = {"train_loss": "train", "valid_loss": "valid"}  # what the chart draws, and its legend


JOBS_KEYS: list[tuple[str, str]] = [
    ("↑ ↓", "select a job: its status, progress, loss chart and events on the right"),
    ("f", "fine-tune (OpenAI when OPENAI_API_KEY is set, else local); shows the estimate first"),
    ("l", "fine-tune the embedded local router (free, offline, seconds)"),
    ("c", "cancel the selected job"),
    ("p", "open the selected job's model in the Playground"),
    ("r", "refresh now"),
]


@dataclass
class Snapshot:
    """What one poll read: the job list, and the selected job's new events."""

    jobs: list[Job]
    job_id: int | None
    events: list[JobEvent] = field(default_factory=list)  # events after `after`
    after: int = 0
    error: str | None = None


class JobsPane(Vertical):
    BINDINGS = [
        Binding("f", "finetune", "Fine-tune"),
        Binding("l", "finetune_local", "Local fine-tune"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("p", "open_model", "Open in playground"),
        Binding("r", "refresh", "Refresh", show=False),
    ]

    @staticmethod
    def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
        return [("Jobs", JOBS_KEYS)]

    poll_interval = 1.0  # seconds between store reads
    remote_interval = 5.0  # seconds between calls to a provider about one job

    def __init__(self, db_path, **kwargs):
        super().__init__(**kwargs)
        self.db_path = Path(db_path)
        self.jobs: list[Job] = []
        self.selected: int | None = None
        self._events: list[JobEvent] = []  # of the selected job
        self._events_for: int | None = None
        self._last_remote: dict[int, float] = {}
        self._resumed = False
        self._poll_store = None
        self._rows: dict[int, tuple] = {}
        self._columns: list = []
        self._stopped = False
        self._polling = False
        self._poll_again = False
        self._timer = None
        self._max_seen: int | None = None
        self._chart_signature: tuple = ()
        self._shown: dict[str | None, tuple] = {}

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="jobs-main"):
            table = DataTable(id="jobs-table", cursor_type="row", zebra_stripes=False)
            self._columns = table.add_columns("", "job", "kind", "status", "model")
            yield table
            with Vertical(id="job-detail"):
                yield Static(Text("no job selected", style="dim"), id="job-title")
                with Horizontal(id="job-progress-row"):
                    yield ProgressBar(total=None, show_eta=False, id="job-progress")
                    yield Static("", id="job-step")
                if PlotextPlot is not None:
                    chart = PlotextPlot(id="job-chart")
                else:  # pragma: no cover
                    from textual.widgets import Sparkline

                    chart = Sparkline([], id="job-chart")
                chart.display = False  # until the selected job has loss points
                yield chart
                yield RichLog(id="job-log", markup=False, wrap=True, auto_scroll=True, max_lines=5000)
                yield Static("", id="job-footer")
        yield Static(Text("f fine-tune · l local fine-tune · c cancel · p open model in playground", style="dim"),
                     id="jobs-keys")

    def on_mount(self) -> None:
        self._poll()

    def on_show(self) -> None:
        """The tab became visible: the keys (f, c, p, ...) belong to the job list."""
        self.query_one("#jobs-table", DataTable).focus()

    def on_unmount(self) -> None:
        self._stopped = True

    # ------------------------------------------------------------ polling

    def _poll(self) -> None:
        """Start a poll now, or right after the one in flight: one poll at a time, one timer chain."""
        if self._stopped or not self.is_attached:
            return
        if self._polling:
            self._poll_again = True
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._polling = True
        after = (self._events[-1].id or 0) if self._events and self._events_for == self.selected else 0
        self._poll_worker(self.selected, after)

    def _schedule(self) -> None:
        self._polling = False
        if self._stopped:
            return
        if self._poll_again:
            self._poll_again = False
            self._poll()
        else:
            self._timer = self.set_timer(self.poll_interval, self._poll)

    @work(thread=True, group="jobs-poll", name="jobs-poll", exit_on_error=False)
    def _poll_worker(self, selected: int | None, after: int) -> Snapshot:
        from routelab.services.jobs import JobService
        from routelab.store import Store

        if self._poll_store is None:
            self._poll_store = Store.open(self.db_path)
        store = self._poll_store
        svc = JobService(store)
        error = None
        now = time.monotonic()
        if not self._resumed:
            self._resumed = True
            for job in svc.resume():  # unfinished jobs are followed again; orphans are marked
                self._last_remote[job.id] = now
        for job in svc.active():
            due = job.provider == "local" or now - self._last_remote.get(job.id, 0.0) >= self.remote_interval
            if due and job.kind == "finetune":
                self._last_remote[job.id] = now
                try:
                    svc.poll(job)
                except Exception as e:  # the network may be down; say so and try again later
                    error = f"job {job.id}: {e}"
        jobs = store.jobs(limit=500)
        if selected is None or all(j.id != selected for j in jobs):
            selected = jobs[0].id if jobs else None
            after = 0
        events = store.job_events(selected, after=after) if selected is not None else []
        return Snapshot(jobs, selected, events, after, error)

    @on(Worker.StateChanged)
    def _worker_done(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.name == "jobs-poll":
            if worker.state == WorkerState.SUCCESS:
                self._apply(worker.result)
            elif worker.state == WorkerState.ERROR:
                self._show_error(f"polling failed: {worker.error}")
            if worker.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
                self._schedule()
        elif worker.name in ("jobs-plan", "jobs-start", "jobs-cancel") and worker.state == WorkerState.ERROR:
            self._show_error(str(worker.error))
        elif worker.name == "jobs-plan" and worker.state == WorkerState.SUCCESS:
            self._confirm_plan(worker.result)
        elif worker.name == "jobs-start" and worker.state == WorkerState.SUCCESS:
            job = worker.result
            self.app.notify(f"job {job.id}: {job.status.value}", title="Fine-tune")
            self.refresh_now()
        elif worker.name == "jobs-cancel" and worker.state == WorkerState.SUCCESS:
            self.app.notify(f"job {worker.result.id}: {worker.result.status.value}", title="Cancel")
            self.refresh_now()

    def refresh_now(self) -> None:
        self._poll()

    def _show_error(self, message: str) -> None:
        self.app.notify(printable(message)[:300], severity="error", title="Jobs")

    # ------------------------------------------------------------ showing

    def _apply(self, snap: Snapshot) -> None:
        if snap.error:
            self._set(self.query_one("#job-footer", Static), Text(printable(snap.error), style="red"))
        self.jobs = snap.jobs
        newest = max((j.id for j in snap.jobs), default=None)
        if newest is not None and self._max_seen is not None and newest > self._max_seen:
            # a job just started (here or in another process): show it live
            self.selected = newest
            self._poll_again = True
        self._max_seen = newest if newest is not None else self._max_seen
        self._fill_table()
        if snap.job_id != self._events_for or snap.after == 0:
            self._events = []
            self._events_for = snap.job_id
            self.query_one("#job-log", RichLog).clear()
        if snap.job_id == self.selected or self.selected is None:
            self.selected = snap.job_id
            have = {e.id for e in self._events}
            new = [e for e in snap.events if e.id not in have]
            self._events += new
            log = self.query_one("#job-log", RichLog)
            for ev in new:
                if ev.type == "message":
                    log.write(self._event_text(ev))
        self._show_detail()

    @staticmethod
    def _cells(j: Job) -> list[Text]:
        mark, style = STATUS_MARK.get(j.status.value, ("?", ""))
        return [Text(mark, style=style), Text(str(j.id)), Text(j.kind), Text(j.status.value, style=style),
                literal(j.result.get("fine_tuned_model") or j.model or "")]

    def _fill_table(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        rows = {j.id: (j.status.value, j.model, j.result.get("fine_tuned_model")) for j in self.jobs}
        if list(rows) == list(self._rows):  # same jobs: update the rows that changed, in place
            for j in self.jobs:
                if rows[j.id] != self._rows[j.id]:
                    for column, cell in zip(self._columns, self._cells(j)):
                        table.update_cell(str(j.id), column, cell)
            self._rows = rows
            return
        self._rows = rows
        with self.prevent(DataTable.RowHighlighted):  # rebuilding is not the user moving the cursor
            table.clear()
            for j in self.jobs:
                table.add_row(*self._cells(j), key=str(j.id))
            if self.selected is not None and str(self.selected) in table.rows:
                table.move_cursor(row=table.get_row_index(str(self.selected)), animate=False)

    @on(DataTable.RowHighlighted, "#jobs-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        job_id = int(event.row_key.value)
        if job_id != self.selected:
            self.selected = job_id
            self._events = []
            self._events_for = None
            self.query_one("#job-log", RichLog).clear()
            self._show_detail()
            self._poll()

    def selected_job(self) -> Job | None:
        return next((j for j in self.jobs if j.id == self.selected), None)

    @staticmethod
    def _event_text(ev: JobEvent) -> Text:
        when = ev.at[11:19] if len(ev.at) >= 19 else ev.at
        style = {"warn": "yellow", "error": "red"}.get(ev.level, "")
        text = Text(f"{when} ", style="dim")
        text.append_text(literal(ev.message, style))
        return text

    def _show_detail(self) -> None:
        from routelab.services.jobs import describe, metrics_series

        job = self.selected_job()
        title = self.query_one("#job-title", Static)
        bar = self.query_one("#job-progress", ProgressBar)
        step = self.query_one("#job-step", Static)
        footer = self.query_one("#job-footer", Static)
        if job is None:
            self._set(title, Text("no jobs yet: press f to fine-tune (l for the local trainer)", style="dim"))
            bar.update(total=None, progress=0)
            self._set(step, Text(""))
            self._set(footer, Text(""))
            self.query_one("#job-chart").display = False
            return
        events = self._events if self._events_for == job.id else []
        view = describe(job, events)
        mark, style = STATUS_MARK.get(job.status.value, ("?", ""))
        t = Text()
        t.append(f"{mark} ", style=style)
        t.append_text(literal(job.remote_id or f"job {job.id}", "bold"))
        t.append(f" · {job.kind} · {job.provider} · ")
        t.append_text(literal(job.model or "—"))
        t.append(" · ")
        t.append(job.status.value, style=style)
        t.append(f" · {format_duration(view.elapsed)}")
        if view.eta is not None:
            t.append(f" · ETA {format_duration(view.eta)}")
        if job.error:
            t.append("\n")
            t.append_text(literal(job.error, "red"))
        self._set(title, t)
        if job.progress_total:
            bar.update(total=job.progress_total, progress=job.progress_done)
            self._set(step, Text(f" step {job.progress_done}/{job.progress_total}"))
        else:
            bar.update(total=None if not job.status.terminal else 1, progress=1 if job.status.terminal else 0)
            self._set(step, Text(f" {job.progress_done}" if job.progress_done else ""))
        self._draw_chart(metrics_series(events))
        parts = []
        tokens = job.result.get("trained_tokens")
        if tokens:
            parts.append(f"trained tokens {tokens:,}")
        if job.cost:
            parts.append(f"cost ${job.cost:.2f}")
        elif job.params.get("estimated_cost"):
            parts.append(f"est. ${job.params['estimated_cost']:.2f}")
        metrics = view.last_metrics
        for key in ("valid_accuracy", "valid_mean_token_accuracy"):
            if isinstance(metrics.get(key), (int, float)):
                parts.append(f"{key.replace('_', ' ')} {metrics[key]:.3f}")
        parts.append(f"model {view.model_id}" if view.model_id else "model —")
        self._set(footer, literal(" · ".join(parts)))

    def _set(self, widget: Static, text: Text) -> None:
        """Update a Static only when its content changed (each update costs a layout pass)."""
        key = (text.plain, tuple((sp.start, sp.end, str(sp.style)) for sp in text.spans), str(text.style))
        if self._shown.get(widget.id) != key:
            self._shown[widget.id] = key
            widget.update(text)

    def _draw_chart(self, series: dict[str, list[tuple[int, float]]]) -> None:
        chart = self.query_one("#job-chart")
        # a label or eval job (or a fine-tune before its first step) has no loss: no empty frame,
        # the event log below gets the room
        chart.display = any(series.get(key) for key in LOSS_SERIES)
        signature = (self.selected, tuple(len(v) for v in series.values()))
        if signature == self._chart_signature:
            return  # plotext redraws are not free: only when a point was added
        self._chart_signature = signature
        if PlotextPlot is None or not isinstance(chart, PlotextPlot):  # pragma: no cover
            chart.data = [v for _, v in series.get("train_loss", [])]
            return
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss")
        for key, label in LOSS_SERIES.items():
            points = series.get(key)
            if points:
                plt.plot([s for s, _ in points], [v for _, v in points], label=label, marker="braille")
        plt.xlabel("step")
        chart.refresh()

    # ------------------------------------------------------------ actions

    def action_refresh(self) -> None:
        self._poll()

    def action_finetune(self) -> None:
        from routelab.config import settings

        self._plan_worker("openai" if settings().has_openai else "local")

    def action_finetune_local(self) -> None:
        self._plan_worker("local")

    @work(thread=True, exclusive=True, group="jobs-plan", name="jobs-plan", exit_on_error=False)
    def _plan_worker(self, provider: str):
        from routelab.config import settings
        from routelab.services.finetune import FinetuneOptions, plan_finetune
        from routelab.store import Store

        with Store.open(self.db_path) as store:
            return plan_finetune(store, FinetuneOptions(provider=provider), settings())

    def _confirm_plan(self, plan) -> None:
        from routelab.services.export import format_report
        from routelab.services.finetune import estimate_line
        from routelab.tui.components.confirm import ConfirmScreen

        message = Text()
        message.append(f"Start a {plan.options.provider} fine-tune?\n\n", style="bold")
        message.append_text(literal(estimate_line(plan)))
        if plan.needs_confirmation:
            message.append("\nabove the spend limit", style="bold red")
        message.append("\n\n")
        message.append(Text(printable(format_report(plan.report))))

        def answered(yes: bool | None) -> None:
            if yes:
                self._start_worker(plan)

        self.app.push_screen(ConfirmScreen(message, yes="Start", no="Not now"), answered)

    @work(thread=True, group="jobs-start", name="jobs-start", exit_on_error=False)
    def _start_worker(self, plan):
        from routelab.config import settings
        from routelab.services.finetune import start_finetune
        from routelab.store import Store

        # local training runs here, in this thread, to the end; the poller shows it live
        with Store.open(self.db_path) as store:
            return start_finetune(store, plan, settings())

    def action_cancel_job(self) -> None:
        from routelab.tui.components.confirm import ConfirmScreen

        job = self.selected_job()
        if job is None:
            return
        if job.status.terminal:
            self.app.notify(f"job {job.id} has already {job.status.value}")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel_worker(job.id)

        self.app.push_screen(ConfirmScreen(Text(f"Cancel job {job.id} ({job.kind}, {job.status.value})?")), answered)

    @work(thread=True, group="jobs-cancel", name="jobs-cancel", exit_on_error=False)
    def _cancel_worker(self, job_id: int):
        from routelab.services.jobs import JobService
        from routelab.store import Store

        with Store.open(self.db_path) as store:
            return JobService(store).cancel(job_id)

    def action_open_model(self) -> None:
        job = self.selected_job()
        model_id = job.result.get("fine_tuned_model") if job else None
        if not model_id:
            self.app.notify("the selected job has no model yet", severity="warning")
            return
        show = getattr(self.app, "action_show_tab", None)
        if show is not None:
            show("playground")
        try:
            from routelab.tui.panes.playground import PlaygroundPane

            pane = self.app.query_one(PlaygroundPane)
            select: Any = getattr(pane, "select_model", None)
            if select is not None:
                select(model_id)
        except Exception:
            pass
        self.app.notify(f"model {printable(model_id)} opened in the playground", title="Playground")
