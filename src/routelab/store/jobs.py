"""Jobs and their events: long work (labeling, training, polling) any view can follow."""

from __future__ import annotations

import json
from typing import Any

from routelab.domain import Job, JobEvent, JobStatus, now_iso
from routelab.store.connection import StoreBase

UPDATABLE = {"status", "model", "remote_id", "params", "result", "error", "progress_done", "progress_total", "cost"}


class JobsTable(StoreBase):
    def create_job(self, job: Job) -> Job:
        with self.transaction() as c:
            job.id = c.execute(
                "INSERT INTO jobs (kind, provider, status, model, remote_id, params, result, error, progress_done, "
                "progress_total, cost, created_at, updated_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job.kind, job.provider, str(job.status), job.model, job.remote_id, json.dumps(job.params),
                    json.dumps(job.result), job.error, job.progress_done, job.progress_total, job.cost,
                    job.created_at, job.updated_at, job.finished_at,
                ),
            ).lastrowid
        return job

    def update_job(self, job_id: int, **fields: Any) -> Job:
        bad = set(fields) - UPDATABLE
        if bad:
            raise ValueError(f"cannot update {bad}")
        values: dict[str, Any] = {}
        for k, v in fields.items():
            values[k] = json.dumps(v) if k in ("params", "result") else (str(v) if k == "status" else v)
        values["updated_at"] = now_iso()
        if "status" in fields and JobStatus(fields["status"]).terminal:
            values["finished_at"] = values["updated_at"]
        with self.transaction() as c:
            c.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?", [*values.values(), job_id]
            )
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
        with self.transaction() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO job_events (job_id, remote_id, at, level, type, message, data) "
                "VALUES (?,?,?,?,?,?,?)",
                [(e.job_id, e.remote_id, e.at, e.level, e.type, e.message, json.dumps(e.data)) for e in events],
            )
            return c.total_changes - before

    def job_events(self, job_id: int, *, after: int = 0, limit: int = 10_000) -> list[JobEvent]:
        rows = self._rows(
            "SELECT * FROM job_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?", (job_id, after, limit)
        )
        return [JobEvent(**{**r, "data": json.loads(r["data"])}) for r in rows]


def _job(r: dict[str, Any]) -> Job:
    return Job(**{**r, "params": json.loads(r["params"]), "result": json.loads(r["result"])})
