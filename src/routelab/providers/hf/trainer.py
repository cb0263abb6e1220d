"""The hf Trainer: what the services call (describe and estimate, start, cancel).

It runs in the calling process, to the end, like the local trainer (the CLI's process, or
the TUI's worker thread), on the CPU or the GPU it finds; with `gpus` above 1 it starts
`accelerate launch` and follows it (launch.py). Cancelling from any process marks the job
cancelled; the run sees it between steps and stops, keeping its last checkpoint.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from routelab.domain import BadInput, Job, JobStatus
from routelab.providers.base import Cancelled, JobReporter, Trainer, TrainingFiles, UploadLog
from routelab.providers.hf.deps import require
from routelab.providers.hf.options import DEFAULT_BASE, HFOptions, parse_options


class HFTrainer(Trainer):
    provider = "hf"
    runs_here = True

    def __init__(self, settings):
        self.settings = settings
        self.opts: HFOptions = parse_options({"method": getattr(settings, "hf_method", None) or "classifier"})
        self.base: str | None = None
        self._estimate = None

    @property
    def default_base(self) -> str:  # type: ignore[override]
        return getattr(self.settings, "hf_base_model", None) or DEFAULT_BASE[self.opts.method]

    @property
    def free(self) -> bool:  # type: ignore[override]
        """Free on this machine's CPU; a GPU costs its hourly price (0: your own GPU, never asked about)."""
        return self._estimate is None or not self._estimate.device.gpu or self._price() <= 0

    def _price(self) -> float:
        return float(getattr(self.settings, "gpu_price", 2.5))

    def configure(self, options: dict[str, Any]) -> None:
        self.opts = parse_options({"method": self.opts.method, **options})
        require("fine-tuning with --provider hf", self.opts.method)

    def check_base(self, store: Any, base: str) -> None:
        self.base = base

    def export_base(self, base: str) -> str | None:
        return None  # the export's token checks are OpenAI's; an open model has its own limits (max_length)

    def estimate(self, report: dict[str, Any]):
        """Measured here, once per plan: loads the base, encodes the export, times a few steps."""
        if self._estimate is None:
            from routelab.providers.hf.device import pick_device
            from routelab.providers.hf.estimate import estimate
            from routelab.providers.hf.run import RunSpec, build_task

            require("fine-tuning with --provider hf", self.opts.method)
            if self.opts.epochs is None and report.get("epochs_rule") == "given":  # finetune --epochs N
                self.opts = replace(self.opts, epochs=int(report["epochs"]))
            files = report.get("files", {})
            spec = RunSpec(0, self.base or self.default_base, self.opts.as_dict(), files["train"]["path"],
                           files.get("validation", {}).get("path"), models_dir="")
            device = pick_device(self.opts.device, self.opts.threads)
            train, valid = _read(spec)
            task = build_task(spec, self.opts, device, train, valid)
            self._estimate = estimate(task, self.opts, device, base=spec.base, gpu_price=self._price(),
                                      gpu_tflops=float(getattr(self.settings, "gpu_tflops", 100.0)),
                                      world=self.opts.gpus)
        return self._estimate

    def estimate_cost(self, report: dict[str, Any]) -> float | None:
        return round(self.estimate(report).dollars_here, 4)

    def describe(self, report: dict[str, Any], base: str, cost: float | None) -> str:
        line = self.estimate(report).line()
        if self.opts.gpus > 1:
            from routelab.providers.hf.launch import launch_command

            line += f"; runs as: {' '.join(launch_command(Path('<job folder>/run.json'), self.opts.gpus))}"
        return line

    def start(self, job: Job, files: TrainingFiles, reporter: JobReporter, uploads: UploadLog) -> None:
        from routelab.providers.hf.run import RunSpec, run_training

        options = {**(job.params.get("train_options") or {})}
        for key in ("epochs", "seed"):
            if job.params.get(key) is not None:
                options.setdefault(key, job.params[key])
        opts = parse_options(options)
        models_dir = job.params.get("models_dir") or str(files.train.parent / "hf-models")
        spec = RunSpec(job.id, job.model or self.default_base, opts.as_dict(), str(files.train),
                       str(files.validation) if files.validation else None, models_dir, job.params.get("digest"))
        reporter.event(f"Created hf {opts.method} training job {job.id}: models in {spec.run_dir}")
        try:
            if opts.gpus > 1:
                from routelab.providers.hf.launch import run_launched

                run_launched(spec, reporter, opts.gpus)
            else:
                run_training(spec, reporter)
        except Cancelled:
            from routelab.providers.hf.checkpoints import latest

            point = latest(spec.run_dir)
            reporter.event("Training cancelled; no model was saved" + (
                f" (checkpoint {point.name} kept: the same fine-tune started again continues from it)" if point else ""),
                level="warn")
            raise

    def cancel(self, job: Job, reporter: JobReporter) -> None:
        """The run asks its reporter between steps and stops; a run whose process is gone is just marked."""
        reporter.event("Cancellation requested", level="warn")
        reporter.status(JobStatus.CANCELLED)


def _read(spec):
    from routelab.providers.prompts import read_chat_jsonl

    train = read_chat_jsonl(Path(spec.train))
    valid = read_chat_jsonl(Path(spec.validation)) if spec.validation else ([], [])
    if len(set(train[1])) < 2:
        raise BadInput(f"{Path(spec.train).name}: a router needs examples of at least two actions")
    return train, valid
