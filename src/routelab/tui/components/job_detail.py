"""The Jobs pane's right-hand panel: one job's status line, progress bar, loss chart, event log
and footer (trained tokens, cost, metrics, model).

The loss chart shows only for a job with loss metrics (a fine-tune once its first step is
in); otherwise the event log takes its room. Every string from a job (ids, model names,
errors, event messages) is shown literally.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, RichLog, Static
from textual_plotext import PlotextPlot

from routelab.domain import Job, JobEvent
from routelab.services.formatting import format_duration
from routelab.services.jobs import describe, metrics_series
from routelab.tui.safe import literal

STATUS_MARK = {
    "queued": ("○", "dim"), "validating": ("◌", "cyan"), "running": ("●", "yellow"),
    "succeeded": ("✓", "green"), "failed": ("✗", "red"), "cancelled": ("⊘", "magenta"),
}
LOSS_SERIES = {"train_loss": "train", "valid_loss": "valid"}  # what the chart draws, and its legend
NO_JOBS = "no jobs yet: press f to fine-tune (l for the local trainer)"


def status_mark(job: Job) -> tuple[str, str]:
    """The job's status symbol and its style."""
    return STATUS_MARK.get(job.status.value, ("?", ""))


def event_line(ev: JobEvent) -> Text:
    """`12:01:07 Step 84/120: training loss=0.21`, coloured by level."""
    when = ev.at[11:19] if len(ev.at) >= 19 else ev.at
    text = Text(f"{when} ", style="dim")
    text.append_text(literal(ev.message, {"warn": "yellow", "error": "red"}.get(ev.level, "")))
    return text


def title_line(job: Job, elapsed: float | None, eta: float | None) -> Text:
    """`● ftjob-abc · finetune · openai · gpt-4.1-mini · running · 6m12s · ETA 4m`, and the error below."""
    mark, style = status_mark(job)
    t = Text()
    t.append(f"{mark} ", style=style)
    t.append_text(literal(job.remote_id or f"job {job.id}", "bold"))
    t.append(f" · {job.kind} · ")
    t.append_text(literal(job.provider))
    t.append(" · ")
    t.append_text(literal(job.model or "—"))
    t.append(" · ")
    t.append(job.status.value, style=style)
    t.append(f" · {format_duration(elapsed)}")
    if eta is not None:
        t.append(f" · ETA {format_duration(eta)}")
    if job.error:
        t.append("\n")
        t.append_text(literal(job.error, "red"))
    return t


def footer_line(job: Job, metrics: dict, model_id: str | None) -> Text:
    """`trained tokens 412,000 · cost $2.06 · valid mean token accuracy 0.930 · model ft:…`."""
    parts = []
    tokens = job.result.get("trained_tokens")
    if tokens:
        parts.append(f"trained tokens {tokens:,}")
    if job.cost:
        parts.append(f"cost ${job.cost:.2f}")
    elif job.params.get("estimated_cost"):
        parts.append(f"est. ${job.params['estimated_cost']:.2f}")
    for key in ("valid_accuracy", "valid_mean_token_accuracy"):
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"{key.replace('_', ' ')} {metrics[key]:.3f}")
    parts.append(f"model {model_id}" if model_id else "model —")
    return literal(" · ".join(parts))


class JobDetail(Vertical):
    """Shows one job; `show` repaints only what changed (each Static update costs a layout pass)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._shown: dict[str | None, tuple] = {}
        self._chart_signature: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static(Text("no job selected", style="dim"), id="job-title")
        with Horizontal(id="job-progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="job-progress")
            yield Static("", id="job-step")
        chart = PlotextPlot(id="job-chart")
        chart.display = False  # until the selected job has loss points
        yield chart
        yield RichLog(id="job-log", markup=False, wrap=True, auto_scroll=True, max_lines=5000)
        yield Static("", id="job-footer")

    def show(self, job: Job | None, events: list[JobEvent], *, now: float | None = None,
             problem: str | None = None) -> None:
        """`job` with its events so far (None: there are no jobs); `now` (epoch seconds) for the elapsed
        time; `problem`: the last poll could not reach a provider (said in the footer, in red)."""
        bar = self.query_one("#job-progress", ProgressBar)
        if job is None:
            self._set("#job-title", Text(NO_JOBS, style="dim"))
            bar.update(total=None, progress=0)
            self._set("#job-step", Text(""))
            self._set("#job-footer", Text(""))
            self.query_one("#job-chart").display = False
            return
        view = describe(job, events, now=now)
        self._set("#job-title", title_line(job, view.elapsed, view.eta))
        if job.progress_total:
            bar.update(total=job.progress_total, progress=job.progress_done)
            self._set("#job-step", Text(f" step {job.progress_done}/{job.progress_total}"))
        else:
            bar.update(total=None if not job.status.terminal else 1, progress=1 if job.status.terminal else 0)
            self._set("#job-step", Text(f" {job.progress_done}" if job.progress_done else ""))
        self._draw_chart(job.id, metrics_series(events))
        footer = literal(problem, "red") if problem else footer_line(job, view.last_metrics, view.model_id)
        self._set("#job-footer", footer)

    def write_events(self, events: list[JobEvent]) -> None:
        log = self.query_one("#job-log", RichLog)
        for ev in events:
            if ev.type == "message":
                log.write(event_line(ev))

    def clear_log(self) -> None:
        self.query_one("#job-log", RichLog).clear()

    def _set(self, selector: str, text: Text) -> None:
        """Update a Static only when its content changed."""
        key = (text.plain, tuple((sp.start, sp.end, str(sp.style)) for sp in text.spans), str(text.style))
        if self._shown.get(selector) != key:
            self._shown[selector] = key
            self.query_one(selector, Static).update(text)

    def _draw_chart(self, job_id: int | None, series: dict[str, list[tuple[int, float]]]) -> None:
        chart = self.query_one("#job-chart", PlotextPlot)
        # a label or eval job (or a fine-tune before its first step) has no loss: no empty frame,
        # the event log below gets the room
        chart.display = any(series.get(key) for key in LOSS_SERIES)
        signature = (job_id, tuple(len(v) for v in series.values()))
        if signature == self._chart_signature:
            return  # plotext redraws are not free: only when a point was added
        self._chart_signature = signature
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
