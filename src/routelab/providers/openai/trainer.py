"""OpenAI fine-tuning as a Trainer: upload (once per content), create, then poll status and events.

Everything the API says is turned into neutral terms here (JobStatus, events with their
remote ids, progress from the metrics events, the result, the cost) and reported; the
services store it. On success the fine-tuned model is reported as produced, with the
system prompt it was trained on, so it routes with exactly that prompt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from routelab.domain import Job, JobStatus, TrainedModel
from routelab.providers.base import JobReporter, Trainer, TrainingFiles, UploadLog
from routelab.providers.openai.errors import scrub

DEFAULT_BASE_MODEL = "gpt-4.1-mini-2025-04-14"
OPENAI_STATUS = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
RESULT_FIELDS = ("fine_tuned_model", "trained_tokens", "estimated_finish", "result_files")


def _iso(ts: Any) -> str:
    if isinstance(ts, (int, float)):
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return str(ts) if ts else datetime.now(UTC).isoformat(timespec="milliseconds")


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OpenAITrainer(Trainer):
    provider = "openai"
    default_base = DEFAULT_BASE_MODEL

    def __init__(self, settings, api=None):
        self.settings = settings
        self._api = api

    @property
    def api(self):
        if self._api is None:
            from routelab.providers.openai.backend import OpenAIBackend
            from routelab.providers.openai.finetune_api import OpenAIFineTuning

            OpenAIBackend().require(self.settings, "fine-tuning with --provider openai")
            self._api = OpenAIFineTuning.from_settings(self.settings)
        return self._api

    def export_base(self, base: str) -> str:
        return base

    def describe(self, report: dict[str, Any], base: str, cost: float | None) -> str:
        price = "unknown cost (no price for this model)" if cost is None else f"about ${cost:.2f}"
        return (f"fine-tune {base} on {report['train']['examples']} examples x {report['epochs']} epochs = "
                f"{report['billed_tokens']:,} billed tokens: {price}")

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # ------------------------------------------------------------ the lifecycle

    def _upload(self, path: Path, reporter: JobReporter, uploads: UploadLog) -> str:
        sha, api = _sha256(path), self.api
        known = uploads.find_upload("openai", api.base_url, sha, "fine-tune")
        if known and api.file_exists(known):
            reporter.event(f"{path.name} already uploaded as {known} (same sha256)")
            return known
        obj = api.upload_file(path, "fine-tune")
        uploads.record_upload("openai", api.base_url, sha, "fine-tune", obj["id"], path.name, path.stat().st_size)
        reporter.event(f"Uploaded {path.name} as {obj['id']}")
        return obj["id"]

    def start(self, job: Job, files: TrainingFiles, reporter: JobReporter, uploads: UploadLog) -> None:
        # the status stays queued until the remote job exists (the services leave such a job
        # alone while the process submitting it lives)
        train_id = self._upload(files.train, reporter, uploads)
        val_id = self._upload(files.validation, reporter, uploads) if files.validation else None
        p = job.params
        remote = self.api.create_job(model=job.model or self.default_base, training_file=train_id,
                                     validation_file=val_id, n_epochs=p.get("epochs"), suffix=p.get("suffix"),
                                     seed=p.get("seed"), metadata={"routelab_job": str(job.id)})
        reporter.remote(remote["id"], training_file=train_id, validation_file=val_id)
        self._apply(job.model_copy(update={"remote_id": remote["id"]}), remote, [], reporter)

    def poll(self, job: Job, reporter: JobReporter) -> None:
        assert job.remote_id, "only a submitted job is polled"
        remote = self.api.retrieve_job(job.remote_id)
        events = self.api.events_since(job.remote_id, reporter.seen)
        self._apply(job, remote, events, reporter)

    def cancel(self, job: Job, reporter: JobReporter) -> None:
        if not job.remote_id:
            reporter.event("Cancelled before it was submitted", level="warn")
            reporter.status(JobStatus.CANCELLED)
            return
        self.api.cancel_job(job.remote_id)
        self.poll(job, reporter)

    # ------------------------------------------------------------ what the API said

    def _apply(self, job: Job, remote: dict[str, Any], events: list[dict[str, Any]], reporter: JobReporter) -> None:
        steps = []
        for e in events:
            level = e.get("level") if e.get("level") in ("info", "warn", "error") else "info"
            type_ = "metrics" if e.get("type") == "metrics" else "message"
            data = e.get("data") or {}
            reporter.event(scrub(str(e.get("message") or "")), level, type_, data, remote_id=e["id"],
                           at=_iso(e.get("created_at")))
            if type_ == "metrics" and data.get("step"):
                steps.append(data)
        if steps:
            last = max(steps, key=lambda d: d["step"])
            reporter.progress(int(last["step"]), int(last["total_steps"]) if last.get("total_steps") else None)
        result = self._result(job, remote)
        status = OPENAI_STATUS.get(str(remote.get("status")), job.status)
        if status == JobStatus.SUCCEEDED:
            self._checkpoints(job, result, any("heckpoint" in str(e.get("message")) for e in events))
            if not steps:
                reporter.progress(job.progress_total or job.progress_done)
        if result.get("trained_tokens"):
            from routelab.pricing import training_cost

            cost = training_cost(job.model or "", int(result["trained_tokens"]))
            if cost is not None:
                reporter.cost(round(cost, 4))
        reporter.result(**result)
        error = remote.get("error") or None
        message = None
        if error and (error.get("message") or error.get("code")):
            message = f"{error.get('code') or 'error'}: {scrub(str(error.get('message') or ''))}"
        reporter.status(status, message)
        if status == JobStatus.SUCCEEDED and result.get("fine_tuned_model"):
            reporter.produced(TrainedModel(
                id=result["fine_tuned_model"], provider="openai", kind="finetune", base=job.model, job_id=job.id,
                params={"system_prompt": job.params.get("system_prompt"),
                        "prompt_version": job.params.get("prompt_version"),
                        "n_epochs": result.get("n_epochs"), "remote_job": job.remote_id},
                metrics={"trained_tokens": result.get("trained_tokens")},
            ))

    @staticmethod
    def _result(job: Job, remote: dict[str, Any]) -> dict[str, Any]:
        result = {k: job.result[k] for k in ("checkpoints",) if k in job.result}
        for key in RESULT_FIELDS:
            if remote.get(key) is not None:
                result[key] = remote[key]
        hp = remote.get("hyperparameters") or {}
        if isinstance(hp.get("n_epochs"), int):
            result["n_epochs"] = hp["n_epochs"]
        result["remote_status"] = remote.get("status")
        error = remote.get("error") or None
        if error and (error.get("message") or error.get("code")):
            result["error_code"] = error.get("code")
        return result

    def _checkpoints(self, job: Job, result: dict[str, Any], announced: bool) -> None:
        if not announced and "checkpoints" in result:
            return
        try:
            result["checkpoints"] = [
                {"id": c.get("fine_tuned_model_checkpoint"), "step": c.get("step_number"),
                 "metrics": c.get("metrics") or {}}
                for c in self.api.checkpoints(job.remote_id)
            ]
        except Exception:  # checkpoints are a nicety; never fail the job over them
            result.setdefault("checkpoints", [])
