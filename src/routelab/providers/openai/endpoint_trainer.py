"""Fine-tuning on the endpoint a base model names (`--base-model azure/gpt-4.1-mini-2025-04-14`).

The OpenAI trainer (trainer.py) talks to one endpoint; this one picks it from the job's base
model at start (NAME/MODEL: the workspace's endpoint NAME; anything else: the default one),
checks first that the endpoint has a Files and a fine-tuning API (declared, detected, or one
free listing request each: one line, nothing uploaded, where it does not), and records which
endpoint it was in the job (URL, kind, api-version and the *name* of the key variable, never
a key), so a later poll or cancel goes back to the same place. The model it produces is
stored as NAME/ft:..., so routing it goes to that endpoint too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from routelab.domain import Job, TrainedModel
from routelab.providers.base import JobReporter, TrainingFiles, UploadLog
from routelab.providers.openai.endpoints import DEFAULT, Target, target
from routelab.providers.openai.trainer import OpenAITrainer

NO_FINETUNE = "fine-tune with --provider local, or on an endpoint that has it"
TARGET_FIELDS = ("name", "base_url", "kind", "api_version", "api_key_env")


class _Prefixed:
    """A reporter that records the endpoint with the job and names produced models NAME/MODEL."""

    def __init__(self, inner: JobReporter, target: Target):
        self._inner = inner
        self._target = target

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def remote(self, remote_id: str, **params: Any) -> None:
        endpoint = {k: getattr(self._target, k) for k in TARGET_FIELDS}
        self._inner.remote(remote_id, endpoint=endpoint, **params)

    def result(self, **fields: Any) -> None:
        if fields.get("fine_tuned_model"):  # the id to route it with
            fields["fine_tuned_model"] = f"{self._target.name}/{fields['fine_tuned_model']}"
        self._inner.result(**fields)

    def produced(self, model: TrainedModel) -> None:
        name = self._target.name
        self._inner.produced(model.model_copy(update={"id": f"{name}/{model.id}",
                                                      "base": f"{name}/{model.base}" if model.base else None}))


class EndpointTrainer(OpenAITrainer):
    def export_base(self, base: str) -> str:
        """The model whose limits and prices apply: MODEL of NAME/MODEL where MODEL is one we know."""
        from routelab.pricing import known

        rest = base.partition("/")[2]
        return rest if rest and known(rest) else base

    def _use(self, found: Target, store=None, *, check: bool = True) -> None:
        from routelab.providers.openai.client import OpenAIClient, RetryPolicy
        from routelab.providers.openai.finetune_api import MAX_ATTEMPTS, MAX_WAIT, OpenAIFineTuning

        policy = RetryPolicy(max_attempts=MAX_ATTEMPTS, max_rate_limited=MAX_ATTEMPTS, max_wait=MAX_WAIT)
        client = OpenAIClient.for_target(found, settings=self.settings, store=store, policy=policy)
        if check:  # at start; a job that exists was checked then
            client.require_api("files", NO_FINETUNE)
            client.require_api("fine_tuning", NO_FINETUNE)
        self._api = OpenAIFineTuning(client)

    def check_base(self, store, base: str) -> None:
        found = target(store, base, self.settings)
        if found.name != DEFAULT:
            self._use(found, store)  # one line where the endpoint has no Files or fine-tuning API

    def start(self, job: Job, files: TrainingFiles, reporter: JobReporter, uploads: UploadLog) -> None:
        found = target(uploads, job.model or self.default_base, self.settings)
        if found.name == DEFAULT:
            return super().start(job, files, reporter, uploads)
        self._use(found, uploads)
        super().start(job.model_copy(update={"model": found.model}), files, _Prefixed(reporter, found), uploads)

    def _remote_job(self, job: Job) -> tuple[Job, Target | None]:
        recorded = job.params.get("endpoint")
        if not recorded:
            return job, None
        found = Target(model_id=job.model or "", model=(job.model or "").partition("/")[2], **recorded)
        self._use(replace(found, declared=()), check=False)
        return job.model_copy(update={"model": found.model}), found

    def poll(self, job: Job, reporter: JobReporter) -> None:
        wire, found = self._remote_job(job)
        super().poll(wire, _Prefixed(reporter, found) if found else reporter)

    def cancel(self, job: Job, reporter: JobReporter) -> None:
        wire, found = self._remote_job(job)
        super().cancel(wire, _Prefixed(reporter, found) if found else reporter)
