"""Jobs and their events: long work (labeling, training, polling) any view can follow.

What a job records from the outside world (its error, its result, its events' messages
and data: a server's words, often) passes through `routelab.redaction` on the way in,
so no key a server echoed ever reaches the workspace, whoever built the message. The
parameters are ours and kept exactly (a fine-tune's system prompt must stay as trained).
"""

from __future__ import annotations

import json
from typing import Any

from routelab.domain import Job, JobEvent, JobStatus, now_iso
from routelab.redaction import redact, redact_values
from routelab.store.connection import StoreBase

UPDATABLE = {"status", "model", "remote_id", "params", "result", "error", "progress_done", "progress_total", "cost"}


class JobsTable(StoreBase):
    def create_job(self, job: Job) -> Job:
        record = job.model_dump(exclude={"id"}) | _encoded(job.model_dump(include={"status", "params", "result", "error"}))
        with self.transaction():
            job.id = self.db["jobs"].insert(record).last_rowid
        return job

    def update_job(self, job_id: int, **fields: Any) -> Job:
        bad = set(fields) - UPDATABLE
        if bad:
            raise ValueError(f"cannot update {bad}")
        values = _encoded(fields) | {"updated_at": now_iso()}
        if "status" in fields and JobStatus(fields["status"]).terminal:
            values["finished_at"] = values["updated_at"]
        with self.transaction():
            self.db["jobs"].update(job_id, values)
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: int) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(self, *, kind: str | None = None, active_only: bool = False, limit: int = 200) -> list[Job]:
        sql, args = "SELECT * FROM jobs WHERE 1", []
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if active_only:
            sql += " AND status NOT IN ('succeeded', 'failed', 'cancelled')"
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [_job(r) for r in self._rows(sql, args)]

    def add_job_events(self, events: list[JobEvent]) -> int:
        """Store events; one with a remote id already stored for its job is ignored."""
        records = [e.model_dump(exclude={"id"}) | {"message": redact(e.message), "data": json.dumps(redact_values(e.data))}
                   for e in events]
        with self.transaction() as c:
            before = c.total_changes
            self.db["job_events"].insert_all(records, ignore=True)
            return c.total_changes - before

    def job_events(self, job_id: int, *, after: int = 0, limit: int = 10_000) -> list[JobEvent]:
        rows = self._rows(
            "SELECT * FROM job_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?", (job_id, after, limit)
        )
        return [JobEvent(**{**r, "data": json.loads(r["data"])}) for r in rows]


def _encoded(fields: dict[str, Any]) -> dict[str, Any]:
    """Column values as stored: params and result as JSON text (the result redacted), a status as
    its name, an error redacted."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if k == "result":
            v = json.dumps(redact_values(v))
        elif k == "params":
            v = json.dumps(v)
        elif k == "status":
            v = str(v)
        elif k == "error" and isinstance(v, str):
            v = redact(v)
        out[k] = v
    return out


def _job(r: dict[str, Any]) -> Job:
    return Job(**{**r, "params": json.loads(r["params"]), "result": json.loads(r["result"])})
