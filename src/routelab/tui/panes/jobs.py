"""The Jobs pane: every job (label, batch, fine-tune, eval) and a live panel for the selected one.

Left: the jobs, newest first. Right: status and timeline, elapsed and ETA, a step/total
progress bar, the train/validation loss chart (only for a job with loss metrics, i.e. a
fine-tune once its first step is in; otherwise the event log takes its room), the event
log (auto-scrolling), trained tokens and cost.

Polling: one worker thread at a time asks the job monitor (services/job_monitor.py) what
changed (it reads the workspace and, at most every `remote_interval` seconds, asks the
provider about unfinished remote jobs); when it finishes, the next poll is scheduled with
set_timer, so polls never overlap. The first poll resumes every unfinished job (a fine-tune
started yesterday is followed again). Worker results come back to the UI thread through
Worker.StateChanged; no thread touches a widget or a reactive.

Keys: f fine-tune (OpenAI with a key, else local; a confirm dialog shows the estimate),
l local fine-tune, c cancel the selected job, p open its model in the playground (an OpenInPlayground message
the app routes), r refresh.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from routelab.domain import Job, JobEvent, printable
from routelab.services.job_monitor import JobsSnapshot
from routelab.services.workspace import Workspace
from routelab.tui.components.job_detail import JobDetail, status_mark
from routelab.tui.messages import OpenInPlayground
from routelab.tui.safe import literal, say

JOBS_KEYS: list[tuple[str, str]] = [
    ("↑ ↓", "select a job: its status, progress, loss chart and events on the right"),
    ("f", "fine-tune (OpenAI when OPENAI_API_KEY is set, else local); shows the estimate first"),
    ("l", "fine-tune the embedded local router (free, offline, seconds)"),
    ("t", "fine-tune with a trainer you pick (every registered backend that trains)"),
    ("c", "cancel the selected job"),
    ("p", "open the selected job's model in the Playground"),
    ("r", "refresh now"),
]


class JobsPane(Vertical):
    BINDINGS = [
        Binding("f", "finetune", "Fine-tune"),
        Binding("l", "finetune_local", "Local fine-tune"),
        Binding("t", "pick_trainer", "Pick trainer", show=False),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("p", "open_model", "Open in playground"),
        Binding("r", "refresh", "Refresh", show=False),
    ]

    @staticmethod
    def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
        return [("Jobs", JOBS_KEYS)]

    poll_interval = 1.0  # seconds between store reads
    remote_interval = 5.0  # seconds between calls to a provider about one job
    clock = staticmethod(time.time)  # epoch seconds, for elapsed times (a snapshot test fixes it)

    def __init__(self, workspace: Workspace, **kwargs):
        super().__init__(**kwargs)
        self.workspace = workspace
        self.monitor = workspace.job_monitor()
        self.jobs: list[Job] = []
        self.selected: int | None = None
        self._events: list[JobEvent] = []  # of the selected job
        self._events_for: int | None = None
        self._problem: str | None = None  # the last poll could not reach a provider
        self._rows: dict[int, tuple] = {}
        self._columns: list = []
        self._stopped = False
        self._polling = False
        self._poll_again = False
        self._timer = None
        self._max_seen: int | None = None

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="jobs-main"):
            table = DataTable(id="jobs-table", cursor_type="row", zebra_stripes=False)
            self._columns = table.add_columns("", "job", "kind", "status", "model")
            yield table
            yield JobDetail(id="job-detail")
        yield Static(Text("f fine-tune · l local · t pick trainer · c cancel · p open model in playground", style="dim"),
                     id="jobs-keys")

    @property
    def detail(self) -> JobDetail:
        return self.query_one(JobDetail)

    def on_mount(self) -> None:
        self._poll()

    def on_show(self) -> None:
        """The tab became visible: the keys (f, c, p, ...) belong to the job list."""
        self.query_one("#jobs-table", DataTable).focus()

    def on_unmount(self) -> None:
        self._stopped = True
        if not self._polling:
            self.monitor.close()

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
            self.monitor.close()
            return
        if self._poll_again:
            self._poll_again = False
            self._poll()
        else:
            self._timer = self.set_timer(self.poll_interval, self._poll)

    @work(thread=True, group="jobs-poll", name="jobs-poll", exit_on_error=False)
    def _poll_worker(self, selected: int | None, after: int) -> JobsSnapshot:
        return self.monitor.poll(selected, after, remote_interval=self.remote_interval)

    @on(Worker.StateChanged)
    def _worker_done(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        if worker.name == "jobs-poll":
            if state == WorkerState.SUCCESS:
                self._apply(worker.result)
            elif state == WorkerState.ERROR:
                self._show_error(f"polling failed: {worker.error}")
            if state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
                self._schedule()
        elif worker.name in ("jobs-plan", "jobs-start", "jobs-cancel") and state == WorkerState.ERROR:
            self._show_error(str(worker.error))
        elif worker.name == "jobs-plan" and state == WorkerState.SUCCESS:
            self._confirm_plan(worker.result)
        elif worker.name in ("jobs-start", "jobs-cancel") and state == WorkerState.SUCCESS:
            job = worker.result
            say(self.app, f"job {job.id}: {job.status.value}", title="Fine-tune" if worker.name == "jobs-start" else "Cancel")
            self.refresh_now()

    def refresh_now(self) -> None:
        self._poll()

    def _show_error(self, message: str) -> None:
        say(self.app, message[:300], severity="error", title="Jobs")

    # ------------------------------------------------------------ showing

    def _apply(self, snap: JobsSnapshot) -> None:
        self._problem = snap.error
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
            self.detail.clear_log()
        if snap.job_id == self.selected or self.selected is None:
            self.selected = snap.job_id
            have = {e.id for e in self._events}
            new = [e for e in snap.events if e.id not in have]
            self._events += new
            self.detail.write_events(new)
        self._show_detail()

    @staticmethod
    def _cells(j: Job) -> list[Text]:
        mark, style = status_mark(j)
        return [Text(mark, style=style), Text(str(j.id)), literal(j.kind), Text(j.status.value, style=style),
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
            self.detail.clear_log()
            self._show_detail()
            self._poll()

    def selected_job(self) -> Job | None:
        return next((j for j in self.jobs if j.id == self.selected), None)

    def _show_detail(self) -> None:
        job = self.selected_job()
        events = self._events if job is not None and self._events_for == job.id else []
        self.detail.show(job, events, now=self.clock(), problem=self._problem)

    # ------------------------------------------------------------ actions

    def action_refresh(self) -> None:
        self._poll()

    def action_finetune(self) -> None:
        self._plan_worker(self.workspace.default_trainer())

    def action_finetune_local(self) -> None:
        self._plan_worker("local")

    def action_pick_trainer(self) -> None:
        from routelab.tui.components.picker import PickerScreen, PickItem

        default = self.workspace.default_trainer()
        items = [PickItem(name, name, description="default" if name == default else "")
                 for name in self.workspace.trainers()]

        def done(choice: str | None) -> None:
            if choice:
                self._plan_worker(choice)

        self.app.push_screen(PickerScreen("Fine-tune with", items, current=default), done)

    @work(thread=True, exclusive=True, group="jobs-plan", name="jobs-plan", exit_on_error=False)
    def _plan_worker(self, provider: str):
        return self.workspace.plan_finetune(provider)

    def _confirm_plan(self, plan) -> None:
        from routelab.services.export import format_report
        from routelab.services.finetune import duplicate_line, estimate_line
        from routelab.tui.components.confirm import ConfirmScreen

        message = Text()
        message.append_text(literal(f"Start a {plan.options.provider} fine-tune?", "bold"))
        message.append("\n\n")
        message.append_text(literal(estimate_line(plan)))
        if plan.needs_confirmation:
            message.append("\nabove the spend limit", style="bold red")
        if plan.repeats_paid_job:  # the same data, the same base: a second bill for the same model
            message.append("\n")
            message.append_text(literal(duplicate_line(plan) or "", "bold red"))
        message.append("\n\n")
        message.append(Text(printable(format_report(plan.report))))  # keeps its lines

        def answered(yes: bool | None) -> None:
            if yes:
                self._start_worker(plan)

        self.app.push_screen(ConfirmScreen(message, yes="Start", no="Not now"), answered)

    @work(thread=True, group="jobs-start", name="jobs-start", exit_on_error=False)
    def _start_worker(self, plan):
        # local training runs here, in this thread, to the end; the poller shows it live
        return self.workspace.start_finetune(plan)

    def action_cancel_job(self) -> None:
        from routelab.tui.components.confirm import ConfirmScreen

        job = self.selected_job()
        if job is None:
            return
        if job.status.terminal:
            say(self.app, f"job {job.id} has already {job.status.value}")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel_worker(job.id)

        question = literal(f"Cancel job {job.id} ({job.kind}, {job.status.value})?")
        self.app.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="jobs-cancel", name="jobs-cancel", exit_on_error=False)
    def _cancel_worker(self, job_id: int):
        return self.workspace.cancel_job(job_id)

    def action_open_model(self) -> None:
        job = self.selected_job()
        model_id = job.result.get("fine_tuned_model") if job else None
        if not model_id:
            say(self.app, "the selected job has no model yet", severity="warning")
            return
        self.post_message(OpenInPlayground(model_id))  # the app shows the Playground with it
        say(self.app, f"model {model_id} opened in the playground", title="Playground")
