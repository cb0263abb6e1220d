"""Fine-tuning: export (or reuse an identical export), estimate, start a job, behind one small
trainer interface with two implementations: OpenAI (remote) and local (the embedded router).

    plan = plan_finetune(store, FinetuneOptions(provider="local"), settings)   # export + estimate
    job = start_finetune(store, plan, settings)                                # records + starts

A trainer starts a job, polls it and cancels it; register another with `register_trainer`.
Every failure after the job record exists marks it failed with the error, so no job is
ever left claiming to run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from routelab.domain import BadInput, Job, JobEvent, JobStatus, TrainedModel
from routelab.services.export import (
    DEFAULT_BASE_MODEL,
    Export,
    ExportOptions,
    ExportResult,
    build_export,
    check_jsonl_file,
    default_export_dir,
    sha256_file,
    write_export,
)
from routelab.store import Store

LOCAL_BASE = "wordllama-256+logreg"
OPENAI_STATUS = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}


@dataclass(frozen=True)
class FinetuneOptions:
    provider: str = "openai"
    base_model: str | None = None
    epochs: int | None = None
    suffix: str | None = None
    seed: int = 0
    val_fraction: float = 0.2
    teacher: str | None = None
    reviewed_only: bool = False
    out_dir: Path | None = None  # default: beside the workspace, one folder per distinct data set
    steps: int = 5  # local trainer: learning-curve steps


@dataclass
class FinetunePlan:
    options: FinetuneOptions
    base_model: str
    export: Export
    written: ExportResult
    estimated_cost: float | None  # None: no price for this base model
    spend_limit: float

    @property
    def report(self) -> dict[str, Any]:
        return self.written.report

    @property
    def needs_confirmation(self) -> bool:
        return self.estimated_cost is not None and self.estimated_cost > self.spend_limit


# ------------------------------------------------------------------ trainers


class Trainer(ABC):
    provider: str

    @abstractmethod
    def start(self, store: Store, job: Job, plan: FinetunePlan, *,
              on_event: Callable[[JobEvent], None] | None = None) -> Job:
        """Submit (remote) or run (local) the job; record what happened in the store."""

    @abstractmethod
    def poll(self, store: Store, job: Job) -> Job:
        """Bring the stored job up to date (status, events, progress, result). One round trip."""

    @abstractmethod
    def cancel(self, store: Store, job: Job) -> Job:
        """Ask for the job to stop; returns the stored job afterwards."""


_TRAINERS: dict[str, Callable[[Any], Trainer]] = {}


def register_trainer(provider: str, factory: Callable[[Any], Trainer]) -> None:
    """Make `--provider NAME` available: factory(settings) -> Trainer."""
    _TRAINERS[provider] = factory


def trainer_for(provider: str, settings) -> Trainer:
    try:
        factory = _TRAINERS[provider]
    except KeyError:
        raise BadInput(f"unknown fine-tuning provider {provider!r} (known: {', '.join(sorted(_TRAINERS))})") from None
    return factory(settings)


def providers() -> list[str]:
    return sorted(_TRAINERS)


def _iso(ts: Any) -> str:
    if isinstance(ts, (int, float)):
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return str(ts) if ts else datetime.now(UTC).isoformat(timespec="milliseconds")


class OpenAITrainer(Trainer):
    provider = "openai"

    def __init__(self, settings, api=None):
        self.settings = settings
        self._api = api

    @property
    def api(self):
        if self._api is None:
            from routelab.providers.openai_finetune import OpenAIFineTuning

            self._api = OpenAIFineTuning.from_settings(self.settings)
        return self._api

    def _upload(self, store: Store, job: Job, path: Path) -> str:
        sha = sha256_file(path)
        api = self.api
        known = store.find_upload("openai", api.base_url, sha, "fine-tune")
        if known and api.file_exists(known):
            store.add_job_events([JobEvent(job_id=job.id, message=f"{path.name} already uploaded as {known} (same sha256)")])
            return known
        obj = api.upload_file(path, "fine-tune")
        store.record_upload("openai", api.base_url, sha, "fine-tune", obj["id"], path.name, path.stat().st_size)
        store.add_job_events([JobEvent(job_id=job.id, message=f"Uploaded {path.name} as {obj['id']}")])
        return obj["id"]

    def start(self, store: Store, job: Job, plan: FinetunePlan, *,
              on_event: Callable[[JobEvent], None] | None = None) -> Job:
        w = plan.written
        # The files on disk are what gets uploaded: check them again, whatever happened since export.
        check_jsonl_file(w.train_path, plan.report["token_limit"])
        if w.validation_path:
            check_jsonl_file(w.validation_path, plan.report["token_limit"])
        # status stays queued until the remote job exists (poll() leaves such a job alone while its process lives)
        train_id = self._upload(store, job, w.train_path)
        val_id = self._upload(store, job, w.validation_path) if w.validation_path else None
        o = plan.options
        remote = self.api.create_job(model=plan.base_model, training_file=train_id, validation_file=val_id,
                                     n_epochs=o.epochs, suffix=o.suffix, seed=o.seed,
                                     metadata={"routelab_job": str(job.id)})
        params = {**job.params, "training_file": train_id, "validation_file": val_id}
        store.update_job(job.id, remote_id=remote["id"], params=params)
        return self._apply(store, store.job(job.id), remote, [])

    def poll(self, store: Store, job: Job) -> Job:
        if not job.remote_id:
            from routelab.providers.local_trainer import owner_alive

            if job.status == JobStatus.QUEUED and owner_alive(job.params):
                return job  # being submitted right now (uploads, job creation)
            msg = job.error or "interrupted before the job was created at the provider; start it again"
            store.add_job_events([JobEvent(job_id=job.id, level="error", message=msg)])
            return store.update_job(job.id, status=JobStatus.FAILED, error=msg)
        remote = self.api.retrieve_job(job.remote_id)
        known = {e.remote_id for e in store.job_events(job.id) if e.remote_id}
        events = self.api.events_since(job.remote_id, known)
        return self._apply(store, job, remote, events)

    def cancel(self, store: Store, job: Job) -> Job:
        if job.status.terminal:
            return job
        if not job.remote_id:
            store.add_job_events([JobEvent(job_id=job.id, level="warn", message="Cancelled before it was submitted")])
            return store.update_job(job.id, status=JobStatus.CANCELLED)
        self.api.cancel_job(job.remote_id)
        return self.poll(store, store.job(job.id))

    def _apply(self, store: Store, job: Job, remote: dict[str, Any], events: list[dict[str, Any]]) -> Job:
        from routelab.providers.openai_provider import scrub

        stored = []
        for e in events:
            level = e.get("level") if e.get("level") in ("info", "warn", "error") else "info"
            type_ = "metrics" if e.get("type") == "metrics" else "message"
            stored.append(JobEvent(job_id=job.id, remote_id=e["id"], at=_iso(e.get("created_at")), level=level,
                                   type=type_, message=scrub(str(e.get("message") or "")), data=e.get("data") or {}))
        if stored:
            store.add_job_events(stored)
        status = OPENAI_STATUS.get(str(remote.get("status")), job.status)
        fields: dict[str, Any] = {"status": status}
        steps = [ev.data for ev in stored if ev.type == "metrics" and ev.data.get("step")]
        if steps:
            last = max(steps, key=lambda d: d["step"])
            fields["progress_done"] = int(last["step"])
            if last.get("total_steps"):
                fields["progress_total"] = int(last["total_steps"])
        result = dict(job.result)
        hp = remote.get("hyperparameters") or {}
        for key in ("fine_tuned_model", "trained_tokens", "estimated_finish", "result_files"):
            if remote.get(key) is not None:
                result[key] = remote[key]
        if isinstance(hp.get("n_epochs"), int):
            result["n_epochs"] = hp["n_epochs"]
        result["remote_status"] = remote.get("status")
        error = remote.get("error") or None
        if error and (error.get("message") or error.get("code")):
            fields["error"] = f"{error.get('code') or 'error'}: {scrub(str(error.get('message') or ''))}"
            result["error_code"] = error.get("code")
        if result.get("trained_tokens"):
            from routelab.pricing import training_cost

            cost = training_cost(job.model or "", int(result["trained_tokens"]))
            if cost is not None:
                fields["cost"] = round(cost, 4)
        if status == JobStatus.SUCCEEDED:
            if any("heckpoint" in ev.message for ev in stored) or "checkpoints" not in result:
                try:
                    result["checkpoints"] = [
                        {"id": c.get("fine_tuned_model_checkpoint"), "step": c.get("step_number"),
                         "metrics": c.get("metrics") or {}}
                        for c in self.api.checkpoints(job.remote_id)
                    ]
                except Exception:  # checkpoints are a nicety; never fail the job over them
                    result.setdefault("checkpoints", [])
            fields["progress_done"] = fields.get("progress_done", job.progress_total or job.progress_done)
        fields["result"] = result
        updated = store.update_job(job.id, **fields)
        if status == JobStatus.SUCCEEDED and result.get("fine_tuned_model") and \
                store.trained_model(result["fine_tuned_model"], with_artifact=False) is None:
            metrics = {k: v for k, v in (self._last_metrics(store, job.id)).items()}
            store.save_model(TrainedModel(
                id=result["fine_tuned_model"], provider="openai", kind="finetune", base=job.model, job_id=job.id,
                params={"system_prompt": job.params.get("system_prompt"), "prompt_version": job.params.get("prompt_version"),
                        "n_epochs": result.get("n_epochs"), "remote_job": job.remote_id},
                metrics={**metrics, "trained_tokens": result.get("trained_tokens")},
            ))
        return updated

    @staticmethod
    def _last_metrics(store: Store, job_id: int) -> dict[str, Any]:
        metrics = [e.data for e in store.job_events(job_id) if e.type == "metrics"]
        return metrics[-1] if metrics else {}


class LocalTrainer(Trainer):
    provider = "local"

    def __init__(self, settings=None):
        self.settings = settings

    def start(self, store: Store, job: Job, plan: FinetunePlan, *,
              on_event: Callable[[JobEvent], None] | None = None) -> Job:
        from routelab.providers.local_trainer import LocalTrainingRun

        w = plan.written
        check_jsonl_file(w.train_path)
        if w.validation_path:
            check_jsonl_file(w.validation_path)
        LocalTrainingRun(store, job.id, steps=plan.options.steps, seed=plan.options.seed, on_event=on_event).run(
            w.train_path, w.validation_path)
        return store.job(job.id)

    def poll(self, store: Store, job: Job) -> Job:
        """Local jobs write their own progress; polling only notices one whose process is gone."""
        from routelab.providers.local_trainer import is_running_here, mark_interrupted, owner, owner_alive

        if job.status.terminal or job.status == JobStatus.QUEUED:
            return job
        here = job.params.get("pid") == owner()["pid"] and job.params.get("host") == owner()["host"]
        if (here and not is_running_here(job.id)) or (not here and not owner_alive(job.params)):
            return mark_interrupted(store, job)
        return job

    def cancel(self, store: Store, job: Job) -> Job:
        """The run checks its status between steps and stops; a run whose process is gone is just marked."""
        if job.status.terminal:
            return job
        store.add_job_events([JobEvent(job_id=job.id, level="warn", message="Cancellation requested")])
        return store.update_job(job.id, status=JobStatus.CANCELLED)


register_trainer("openai", lambda settings: OpenAITrainer(settings))
register_trainer("local", lambda settings: LocalTrainer(settings))


# ------------------------------------------------------------------ the service


def plan_finetune(store: Store, options: FinetuneOptions, settings) -> FinetunePlan:
    """Build and check the export (BadInput before anything is spent), write it, estimate the cost."""
    if options.provider not in _TRAINERS:
        raise BadInput(f"unknown fine-tuning provider {options.provider!r} (known: {', '.join(providers())})")
    if options.suffix is not None and (len(options.suffix) > 64 or not options.suffix.strip()):
        raise BadInput("--suffix must be 1 to 64 characters")
    local = options.provider == "local"
    base = LOCAL_BASE if local else (options.base_model or DEFAULT_BASE_MODEL)
    export = build_export(store, ExportOptions(
        val_fraction=options.val_fraction, seed=options.seed, teacher=options.teacher,
        reviewed_only=options.reviewed_only, base_model=DEFAULT_BASE_MODEL if local else base,
        epochs=options.epochs,
    ))
    out_dir = options.out_dir or default_export_dir(Path(store.path), export)
    written = write_export(store, export, out_dir)
    cost = 0.0 if local else written.report.get("estimated_cost")
    return FinetunePlan(options, base, export, written, cost, float(getattr(settings, "spend_limit", 5.0)))


def start_finetune(store: Store, plan: FinetunePlan, settings, *, trainer: Trainer | None = None,
                   on_event: Callable[[JobEvent], None] | None = None) -> Job:
    """Record the job and start it. Local: runs to completion here. Any failure marks the job failed."""
    from routelab.providers.local_trainer import owner
    from routelab.providers.prompts import prompt_hash

    trainer = trainer or trainer_for(plan.options.provider, settings)
    w = plan.written  # the files on disk are what gets trained on: check them (again) before the job exists
    check_jsonl_file(w.train_path, plan.report["token_limit"])
    if w.validation_path:
        check_jsonl_file(w.validation_path, plan.report["token_limit"])
    o = plan.options
    r = plan.report
    job = store.create_job(Job(
        kind="finetune", provider=trainer.provider, status=JobStatus.QUEUED, model=plan.base_model,
        params={
            "export_dir": str(plan.written.out_dir), "digest": r.get("digest"), "train_examples": r["train"]["examples"],
            "validation_examples": r["validation"]["examples"], "labels": r["labels"], "epochs": o.epochs,
            "estimated_epochs": r["epochs"], "billed_tokens": r["billed_tokens"], "estimated_cost": plan.estimated_cost,
            "suffix": o.suffix, "seed": o.seed, "system_prompt": plan.export.system_prompt,
            "prompt_version": r["prompt_version"], "prompt_sha": prompt_hash(plan.export.system_prompt), **owner(),
        },
    ))
    store.add_job_events([JobEvent(job_id=job.id, message=(
        f"Export {plan.written.out_dir.name}: {r['train']['examples']} train, {r['validation']['examples']} validation "
        f"({r['labels']['human']} human, {r['labels']['teacher']} teacher labels)"
        + (f"; estimate ${plan.estimated_cost:.2f}" if plan.estimated_cost else "")))])
    try:
        return trainer.start(store, job, plan, on_event=on_event)
    except BaseException as e:
        from routelab.providers.local_trainer import Cancelled

        current = store.job(job.id)
        if isinstance(e, Cancelled) or (current is not None and current.status == JobStatus.CANCELLED):
            return store.update_job(job.id, status=JobStatus.CANCELLED)
        msg = "interrupted" if isinstance(e, KeyboardInterrupt) else " ".join(str(e).split()) or type(e).__name__
        store.add_job_events([JobEvent(job_id=job.id, level="error", message=msg)])
        store.update_job(job.id, status=JobStatus.FAILED, error=msg)
        raise


def estimate_line(plan: FinetunePlan) -> str:
    r = plan.report
    if plan.options.provider == "local":
        return f"local training on {r['train']['examples']} examples: free, about a few seconds"
    cost = "unknown cost (no price for this model)" if plan.estimated_cost is None else f"about ${plan.estimated_cost:.2f}"
    return (f"fine-tune {plan.base_model} on {r['train']['examples']} examples x {r['epochs']} epochs = "
            f"{r['billed_tokens']:,} billed tokens: {cost} (spend limit ${plan.spend_limit:.2f})")

