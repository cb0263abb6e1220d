"""The Batch API (half price): one JSONL upload of chat requests, a batch, its output files.

Each line is `{"custom_id", "method", "url", "body"}` with the same body the live path
sends; results come back unordered and are joined on custom_id (`ex-<example id>`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from routelab.domain import Action, Example, JobStatus
from routelab.providers.base import BatchLabeler, BatchResults, BatchState, UploadLog
from routelab.providers.openai.answers import route_from_completion

if TYPE_CHECKING:
    from routelab.providers.openai.router import OpenAIRouter

ENDPOINT = "/v1/chat/completions"
AZURE_ENDPOINT = "/chat/completions"  # Azure's batch lines and batches name the path without /v1
NO_BATCH = "run `label` without --batch"
STATUS = {
    "validating": JobStatus.VALIDATING, "in_progress": JobStatus.RUNNING, "finalizing": JobStatus.RUNNING,
    "cancelling": JobStatus.RUNNING, "completed": JobStatus.SUCCEEDED, "failed": JobStatus.FAILED,
    "expired": JobStatus.FAILED, "cancelled": JobStatus.CANCELLED,
}


def custom_id(example_id: int) -> str:
    return f"ex-{example_id}"


def example_id(custom: str) -> int | None:
    try:
        return int(custom.removeprefix("ex-"))
    except ValueError:
        return None


def check_batch_api(client) -> None:
    """BadInput, before anything is sent, where the endpoint has no Batch API."""
    client.require_api("batch", NO_BATCH)


class OpenAIBatchLabeler(BatchLabeler):
    def __init__(self, router: OpenAIRouter):
        self.router = router
        self.client = router.client

    def submit(self, examples: Sequence[Example], actions: Sequence[Action], *, job_id: int,
               uploads: UploadLog) -> BatchState:
        model = self.router.wire_model
        url = AZURE_ENDPOINT if self.client.target.kind == "azure" else ENDPOINT
        lines = [json.dumps({"custom_id": custom_id(e.id), "method": "POST", "url": url,
                             "body": {"model": model, **self.router.request_body(e, actions)}}, ensure_ascii=False)
                 for e in examples]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        sha, name = hashlib.sha256(data).hexdigest(), f"routelab-batch-{job_id}.jsonl"
        endpoint, sync = self.client.endpoint, self.client.sync
        file_id = uploads.find_upload("openai", endpoint, sha, "batch")
        if file_id is None:
            file_id = self.client.call(f"uploading {name}", sync.files.create, file=(name, data), purpose="batch").id
            uploads.record_upload("openai", endpoint, sha, "batch", file_id, name, len(data))
        batch = self.client.call("creating the batch", sync.batches.create, input_file_id=file_id, endpoint=url,
                                 completion_window="24h", metadata={"routelab_job": str(job_id)})
        state = self._state(batch)
        state.details["input_file_id"] = file_id
        return state

    def poll(self, remote_id: str) -> BatchState:
        return self._state(self.client.call(f"reading batch {remote_id}", self.client.sync.batches.retrieve, remote_id))

    @staticmethod
    def _state(batch) -> BatchState:
        counts = batch.request_counts
        error = None
        if batch.status in ("failed", "expired", "cancelled"):
            detail = ""
            errors = getattr(batch, "errors", None)
            if errors and getattr(errors, "data", None):
                detail = ": " + "; ".join(str(getattr(d, "message", d)) for d in errors.data[:3])
            error = f"batch {batch.status}{detail}"
        return BatchState(
            remote_id=batch.id, status=STATUS.get(batch.status, JobStatus.RUNNING), label=batch.status,
            done=(counts.completed + counts.failed) if counts else 0, total=counts.total if counts else 0,
            error=error, details={"output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id},
        )

    def collect(self, state: BatchState, actions: Sequence[Action]) -> BatchResults:
        """Download the output (and error) files and join them on custom_id."""
        names = {a.name for a in actions}
        results = BatchResults([], [])
        for line in self._lines(state.details.get("output_file_id")):
            try:
                obj = json.loads(line)
            except ValueError:
                results.failures.append("unreadable line in the batch output")
                continue
            eid = example_id(str(obj.get("custom_id", "")))
            response = obj.get("response") or {}
            if eid is None or response.get("status_code") != 200:
                body = response.get("body") or obj.get("error")
                results.failures.append(f"{obj.get('custom_id')}: {json.dumps(body)[:200]}")
                continue
            results.routes.append((eid, route_from_completion(response.get("body") or {}, names,
                                                              self.router.wire_model, batch=True)))
        for line in self._lines(state.details.get("error_file_id")):
            try:
                obj = json.loads(line)
            except ValueError:
                results.failures.append("unreadable line in the batch error file")
                continue
            body = (obj.get("response") or {}).get("body") or obj.get("error")
            results.failures.append(f"{obj.get('custom_id')}: {json.dumps(body)[:200]}")
        return results

    def _lines(self, file_id: str | None) -> list[str]:
        if not file_id:
            return []
        text = self.client.call(f"downloading {file_id}", self.client.sync.files.content, file_id).text
        return [line for line in text.splitlines() if line.strip()]

    def close(self) -> None:
        self.client.close()
