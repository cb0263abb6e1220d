"""Following jobs: events stored once, restart mid-job, cancel, orphaned local jobs, the jobs commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from routelab.config import settings as load_settings
from routelab.domain import Job, JobStatus, RoutelabError
from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune
from routelab.services.jobs import JobService, describe, metrics_series
from routelab.store import Store


def _start_openai(store):
    settings = load_settings()
    plan = plan_finetune(store, FinetuneOptions(provider="openai"), settings)
    return start_finetune(store, plan, settings), settings


def _remote_ids(store, job_id):
    return [e.remote_id for e in store.job_events(job_id) if e.remote_id]


def test_events_are_stored_once_across_polls(demo_store, fake_openai):
    job, settings = _start_openai(demo_store)
    svc = JobService(demo_store, settings)
    statuses = []
    for _ in range(5):
        job = svc.poll(job)
        statuses.append(job.status)
        ids = _remote_ids(demo_store, job.id)
        assert len(ids) == len(set(ids))
    assert statuses[:3] == [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RUNNING]
    assert job.progress_done == 3 and job.progress_total == 6
    # everything the API has, each once, in the API's order (it lists newest first)
    remote = [e["id"] for e in fake_openai._job_state[job.remote_id]["events"]]
    assert _remote_ids(demo_store, job.id) == remote
    series = metrics_series(demo_store.job_events(job.id))
    assert [s for s, _ in series["train_loss"]] == [1, 2, 3] and len(series["valid_loss"]) == 3


def test_restart_mid_job_resumes_following(demo_store, fake_openai):
    job, settings = _start_openai(demo_store)
    first = JobService(demo_store, settings)
    for _ in range(3):
        job = first.poll(job)
    assert job.status == JobStatus.RUNNING
    demo_store.close()  # the app closes mid-job

    with Store.open(demo_store.path) as store:  # ... and opens again: the job is still there, and followed
        svc = JobService(store, load_settings())
        assert [j.id for j in svc.active()] == [job.id]
        seen = []
        done = svc.follow(job.id, interval=0.0, on_event=seen.append, sleep=lambda s: None)
        assert done.status == JobStatus.SUCCEEDED and done.result["fine_tuned_model"]
        ids = _remote_ids(store, job.id)
        assert len(ids) == len(set(ids)) == len(fake_openai._job_state[job.remote_id]["events"])
        assert len(seen) == len(store.job_events(job.id))
        assert store.trained_model(done.result["fine_tuned_model"]).job_id == job.id
        assert not svc.active()


def test_cancel_and_watch_from_the_cli(demo_store, fake_openai, run_cli):
    job, _ = _start_openai(demo_store)
    JobService(demo_store, load_settings()).poll(job)
    r = run_cli("--db", demo_store.path, "jobs", "cancel", str(job.id))
    assert r.code == 0 and "cancelled" in r.out, r
    assert fake_openai.jobs[job.remote_id]["status"] == "cancelled"
    r = run_cli("--db", demo_store.path, "jobs", "watch", job.remote_id, "--interval", "0.01")
    assert r.code == 1 and f"job {job.id} cancelled" in r.err
    assert "Fine-tuning job cancelled" in r.out
    r = run_cli("--db", demo_store.path, "jobs", "cancel", str(job.id))
    assert r.code == 2 and "already cancelled" in r.err


def test_jobs_list_and_show(demo_store, fake_openai, run_cli):
    job, settings = _start_openai(demo_store)
    JobService(demo_store, settings).follow(job.id, interval=0.0, sleep=lambda s: None)
    r = run_cli("--db", demo_store.path, "jobs", "list")
    assert r.code == 0 and "fine-tuned model" in r.out and "succeeded" in r.out
    r = run_cli("--db", demo_store.path, "jobs", "show", str(job.id), "--json")
    shown = json.loads(r.out)
    assert shown["status"] == "succeeded" and shown["fine_tuned_model"].startswith("ft:")
    assert shown["last_metrics"]["step"] == 6 and shown["events"]
    assert "system_prompt" not in shown["params"]
    r = run_cli("--db", demo_store.path, "jobs", "show", str(job.id))
    assert r.code == 0 and "trained tokens" in r.out and "The job has successfully completed" in r.out
    r = run_cli("--db", demo_store.path, "jobs", "show", "999")
    assert r.code == 2 and "no job 999" in r.err


def test_orphaned_local_job_is_marked_failed(demo_store, run_cli):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    job = demo_store.create_job(Job(kind="finetune", provider="local", status=JobStatus.RUNNING,
                                    params={"pid": int(dead.stdout), "host": socket.gethostname()}))
    r = run_cli("--db", demo_store.path, "jobs", "list", "--json")
    [shown] = [j for j in json.loads(r.out) if j["id"] == job.id]
    assert shown["status"] == "failed" and "interrupted" in shown["error"]


def test_describe_eta_from_progress():
    job = Job(kind="finetune", status=JobStatus.RUNNING, progress_done=2, progress_total=6,
              created_at="2026-01-01T00:00:00+00:00")
    view = describe(job, now=1767225600 + 60)  # one minute in, a third done
    assert view.elapsed == 60 and round(view.eta) == 120


def test_watch_json_prints_each_event_once_then_the_job(demo_store, fake_openai, run_cli):
    job, _ = _start_openai(demo_store)
    r = run_cli("--db", demo_store.path, "jobs", "watch", str(job.id), "--json", "--interval", "0.01")
    assert r.code == 0, r
    lines = [json.loads(ln) for ln in r.out.splitlines()]
    events = [ln["event"] for ln in lines[:-1]]
    assert len({e["id"] for e in events}) == len(events) == len(demo_store.job_events(job.id))
    assert lines[-1]["job"]["status"] == "succeeded" and lines[-1]["job"]["fine_tuned_model"]


def test_watch_rides_out_a_passing_outage(demo_store, fake_openai):
    from routelab.providers.openai.finetune_api import OpenAIFineTuning
    from routelab.providers.openai.trainer import OpenAITrainer

    job, settings = _start_openai(demo_store)
    api = OpenAIFineTuning.from_settings(settings, backoff=0.0, max_attempts=2)
    svc = JobService(demo_store, settings, trainers={"openai": OpenAITrainer(settings, api=api)})
    fake_openai.fail_next(4, 503, path_contains="/fine_tuning/jobs/")
    warnings = []
    done = svc.follow(job.id, interval=0.0, sleep=lambda s: None, on_error=warnings.append)
    assert done.status == JobStatus.SUCCEEDED and len(warnings) == 2 and "503" in warnings[0]
    # a refusal is not a passing outage: it ends the watch, and the job is left as it was
    job2, _ = _start_openai(demo_store)
    fake_openai.fail_next(1, 401, path_contains="/fine_tuning/jobs/")
    with pytest.raises(RoutelabError, match="401"):
        svc.follow(job2.id, interval=0.0, sleep=lambda s: None)
    assert demo_store.job(job2.id).status == JobStatus.VALIDATING
