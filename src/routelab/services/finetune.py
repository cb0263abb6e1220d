"""Fine-tuning: export (or reuse an identical export), estimate, start a job with a trainer.

    plan = plan_finetune(store, FinetuneOptions(provider="local"), settings)   # export + estimate
    job = start_finetune(store, plan, settings)                                # records + starts

Trainers come from the provider registry (any backend that declares it trains); they
report the job's life to a JobRecorder. Every failure after the job record exists marks
it failed with the error, so no job is ever left claiming to run.

A plan knows the earlier job that trained the same base model with the same provider on
exactly this data (the export's digest), unless that job failed or was cancelled: a
second paid fine-tune of it is a costly no-op more often than an experiment, so the
shells ask first (`duplicate_line` says what to ask).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from routelab.domain import BadInput, Job, JobEvent, JobStatus
from routelab.providers import registry
from routelab.providers.base import TRAIN, Cancelled, Trainer, TrainingFiles
from routelab.services.export import (
    DEFAULT_BASE_MODEL,
    Export,
    ExportOptions,
    ExportResult,
    build_export,
    check_jsonl_file,
    default_export_dir,
    write_export,
)
from routelab.services.export_report import split_changes_line
from routelab.services.jobrun import JobRecorder
from routelab.store import Store


@dataclass(frozen=True)
class FinetuneOptions:
    provider: str | None = None  # default: the remote trainer where it can run here, else local
    base_model: str | None = None
    epochs: int | None = None
    suffix: str | None = None
    seed: int = 0
    val_fraction: float = 0.2
    teacher: str | None = None
    reviewed_only: bool = False
    out_dir: Path | None = None  # default: beside the workspace, one folder per distinct data set
    steps: int = 5  # trainers that report steps (local): how many
    train_options: dict[str, Any] = field(default_factory=dict, hash=False)  # trainer-specific (hf: method, ...)


@dataclass
class FinetunePlan:
    options: FinetuneOptions  # with the provider resolved
    base_model: str
    export: Export
    written: ExportResult
    estimated_cost: float | None  # None: no price for this base model
    spend_limit: float
    free: bool  # the trainer costs nothing: no confirmation
    summary: str  # the trainer's one line on what it will do and cost
    earlier: Job | None = None  # a job that already trained this base model on exactly this data

    @property
    def report(self) -> dict[str, Any]:
        return self.written.report

    @property
    def needs_confirmation(self) -> bool:
        return self.estimated_cost is not None and self.estimated_cost > self.spend_limit

    @property
    def repeats_paid_job(self) -> bool:
        """Would this pay again for a training already done (or under way) on the same data?"""
        return self.earlier is not None and not self.free


def providers() -> list[str]:
    """The providers that can train (what `--provider` of finetune and the Jobs pane offer)."""
    return registry.names(TRAIN)


def plan_finetune(store: Store, options: FinetuneOptions, settings) -> FinetunePlan:
    """Build and check the export (BadInput before anything is spent), write it, estimate the cost."""
    options = replace(options, provider=options.provider or registry.default_trainer(settings))
    trainer = registry.trainer(options.provider, settings, store=store, base=options.base_model)
    trainer.configure(dict(options.train_options))
    if options.suffix is not None and (len(options.suffix) > 64 or not options.suffix.strip()):
        raise BadInput("--suffix must be 1 to 64 characters")
    base = options.base_model or trainer.default_base
    export = build_export(store, ExportOptions(
        val_fraction=options.val_fraction, seed=options.seed, teacher=options.teacher,
        reviewed_only=options.reviewed_only, base_model=trainer.export_base(base) or DEFAULT_BASE_MODEL,
        epochs=options.epochs,
    ))
    out_dir = options.out_dir or default_export_dir(Path(store.path), export)
    written = write_export(store, export, out_dir)
    cost = trainer.estimate_cost(written.report)
    return FinetunePlan(options, base, export, written, cost, float(settings.spend_limit), trainer.free,
                        trainer.describe(written.report, base, cost),
                        earlier_job(store, trainer.provider, base, written.report.get("digest")))


def models_root(db_path: Path) -> Path:
    """The folder beside the workspace where trainers that make files keep them (hf: one folder per job)."""
    return db_path.parent / f"{db_path.stem}-models"


def earlier_job(store: Store, provider: str, base_model: str, digest: str | None) -> Job | None:
    """The newest fine-tune of `base_model` by `provider` on the data of this digest that did not
    fail or get cancelled (it trained, or still does)."""
    if not digest:
        return None
    for job in store.jobs(kind="finetune", limit=100_000):  # newest first
        if (job.provider == provider and job.model == base_model and job.params.get("digest") == digest
                and job.status not in (JobStatus.FAILED, JobStatus.CANCELLED)):
            return job
    return None


def duplicate_line(plan: FinetunePlan) -> str | None:
    """One line on the earlier job of the same data, for the question a shell asks; None if there is none."""
    job = plan.earlier
    if job is None:
        return None
    model = job.result.get("fine_tuned_model")
    state = f"succeeded: {model}" if job.status == JobStatus.SUCCEEDED and model else job.status.value
    done = "already fine-tuned" if job.status == JobStatus.SUCCEEDED else "is already fine-tuning"
    when = job.created_at[:16].replace("T", " ")
    return f"job {job.id} ({state}, started {when} UTC) {done} {job.model} on this exact data"


def _job_params(plan: FinetunePlan, db_path: Path) -> dict[str, Any]:
    from routelab.providers.prompts import prompt_hash

    o, r = plan.options, plan.report
    return {
        "export_dir": str(plan.written.out_dir), "digest": r.get("digest"), "train_examples": r["train"]["examples"],
        "validation_examples": r["validation"]["examples"], "labels": r["labels"], "epochs": o.epochs,
        "estimated_epochs": r["epochs"], "billed_tokens": r["billed_tokens"], "estimated_cost": plan.estimated_cost,
        "suffix": o.suffix, "seed": o.seed, "steps": o.steps, "system_prompt": plan.export.system_prompt,
        "prompt_version": r["prompt_version"], "prompt_sha": prompt_hash(plan.export.system_prompt),
        "train_options": dict(o.train_options), "models_dir": str(models_root(db_path)),
    }


def start_finetune(store: Store, plan: FinetunePlan, settings, *, trainer: Trainer | None = None,
                   on_event: Callable[[JobEvent], None] | None = None) -> Job:
    """Record the job and start it. A trainer that runs here runs to completion. Any failure marks the job failed."""
    trainer = trainer or registry.trainer(plan.options.provider, settings, store=store, base=plan.base_model)
    w = plan.written  # the files on disk are what gets trained on: check them (again) before the job exists
    check_jsonl_file(w.train_path, plan.report["token_limit"])
    if w.validation_path:
        check_jsonl_file(w.validation_path, plan.report["token_limit"])
    r = plan.report
    recorder = JobRecorder.create(store, Job(kind="finetune", provider=trainer.provider, status=JobStatus.QUEUED,
                                             model=plan.base_model, params=_job_params(plan, Path(store.path))), on_event=on_event)
    recorder.event(f"Export {w.out_dir.name}: {r['train']['examples']} train, {r['validation']['examples']} validation "
                   f"({r['labels']['human']} human, {r['labels']['teacher']} teacher labels)"
                   + (f"; estimate ${plan.estimated_cost:.2f}" if plan.estimated_cost else ""))
    if (r.get("split_changes") or {}).get("moved_to_validation"):
        recorder.event(split_changes_line(r), level="warn")  # the workspace's splits changed: said where it is seen
    try:
        with recorder.running():
            trainer.start(recorder.job, TrainingFiles(w.train_path, w.validation_path), recorder, store)
    except BaseException as e:
        if isinstance(e, Cancelled) or recorder.job.status == JobStatus.CANCELLED:
            return recorder.finish(JobStatus.CANCELLED, error=recorder.job.error)
        recorder.fail("interrupted" if isinstance(e, KeyboardInterrupt) else e)
        raise
    return recorder.job


def estimate_line(plan: FinetunePlan) -> str:
    return plan.summary if plan.free else f"{plan.summary} (spend limit ${plan.spend_limit:.2f})"
