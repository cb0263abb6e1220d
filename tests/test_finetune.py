"""Fine-tuning end to end: OpenAI against the fake server (real HTTP), and the embedded local trainer."""

from __future__ import annotations

import json

import pytest

from routelab.config import settings as load_settings
from routelab.domain import BadInput, JobStatus
from routelab.providers import registry
from routelab.providers.local.trainer import LocalTrainer
from routelab.providers.openai.finetune_api import OpenAIFineTuning
from routelab.providers.openai.trainer import OpenAITrainer
from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune
from routelab.services.jobs import JobService
from routelab.store import ExampleFilter


def _jobs(run_cli, db):
    r = run_cli("--db", db, "jobs", "list", "--json")
    assert r.code == 0, r
    return [j for j in json.loads(r.out) if j["kind"] == "finetune"]


def test_openai_finetune_end_to_end_from_the_cli(demo_store, fake_openai, run_cli):
    db = demo_store.path
    r = run_cli("--db", db, "finetune", "--provider", "openai", "--suffix", "hr", "--wait", "--interval", "0.01")
    assert r.code == 0, r
    assert "estimate for gpt-4.1-mini-2025-04-14" in r.out and "Step 6/6" in r.out
    assert "succeeded: model ft:gpt-4.1-mini-2025-04-14:hr:" in r.out
    # both files went up with purpose fine-tune, byte for byte what the export wrote
    files = [f for f in fake_openai.files.values() if f["purpose"] == "fine-tune"]
    assert sorted(f["filename"] for f in files) == ["train.jsonl", "validation.jsonl"]
    [job] = _jobs(run_cli, db)
    export_dir = job["params"]["export_dir"]
    uploaded = fake_openai.file_bytes[job["params"]["training_file"]]
    assert uploaded == open(f"{export_dir}/train.jsonl", "rb").read()
    assert job["status"] == "succeeded" and job["fine_tuned_model"].startswith("ft:gpt-4.1-mini")
    assert job["error"] is None and job["cost"] > 0 and job["result"]["trained_tokens"] > 0
    assert job["result"]["checkpoints"] and job["progress_done"] == job["progress_total"] == 6
    remote = fake_openai.jobs[job["remote_id"]]
    assert remote["model"] == "gpt-4.1-mini-2025-04-14" and remote["user_provided_suffix"] == "hr"
    model = demo_store.trained_model(job["fine_tuned_model"])
    assert model.provider == "openai" and "Actions:" in model.params["system_prompt"]
    assert fake_openai.api_key not in r.out + r.err

    # the same data again: nothing is uploaded twice
    n_files = len(fake_openai.files)
    r = run_cli("--db", db, "finetune", "--provider", "openai", "--yes")
    assert r.code == 0, r
    assert "reusing" in r.out and "routelab jobs watch" in r.out
    assert len(fake_openai.files) == n_files
    jobs = _jobs(run_cli, db)
    assert jobs[0]["params"]["training_file"] == job["params"]["training_file"]
    assert jobs[0]["status"] in ("validating", "queued", "running")


def test_failed_validation_exits_1_with_the_api_error(demo_store, fake_openai, run_cli):
    fake_openai.ft_fail_validation = True
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "openai", "--wait", "--interval", "0.01")
    assert r.code == 1
    assert "failed: invalid_training_file: The job failed due to an invalid training file" in r.err
    [job] = _jobs(run_cli, demo_store.path)
    assert job["status"] == "failed" and job["error"].startswith("invalid_training_file")


@pytest.mark.parametrize("case", ["base_model", "bad_key", "file_rejected"])
def test_refusals_leave_no_job_claiming_to_run(demo_store, fake_openai, run_cli, monkeypatch, case):
    args = ["--db", demo_store.path, "finetune", "--provider", "openai"]
    if case == "base_model":
        args += ["--base-model", "gpt-3.5-turbo"]
        expect = "400 model_not_available: Model gpt-3.5-turbo is not available for fine-tuning"
    elif case == "bad_key":
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123456789")
        expect = "rejected the API key (401)"
    else:
        fake_openai.reject_files = True
        expect = "400 invalid_file_format: Invalid file format"
    r = run_cli(*args)
    assert r.code == 1 and expect in r.err, r
    assert "sk-wrong" not in r.err + r.out and len(r.err.strip().splitlines()) == 1
    [job] = _jobs(run_cli, demo_store.path)
    assert job["status"] == "failed" and expect.split(":")[0].split(" (")[0] in job["error"]


def test_spend_limit_asks_first(demo_store, fake_openai, run_cli, monkeypatch):
    monkeypatch.setenv("ROUTELAB_SPEND_LIMIT", "0.10")
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "openai")
    assert r.code == 2 and "above the spend limit $0.10" in r.err and "--yes" in r.err
    assert not fake_openai.files and not demo_store.jobs(kind="finetune")
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "openai", "--yes")
    assert r.code == 0, r
    assert len(demo_store.jobs(kind="finetune")) == 1


class _Terminal:
    """A stdin that is a terminal and answers the prompt."""

    def __init__(self, answer: str):
        self.answer = answer

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        return self.answer + "\n"


def test_at_a_terminal_a_paid_finetune_always_shows_its_estimate_and_asks(demo_store, fake_openai, run_cli,
                                                                           monkeypatch):
    import sys

    monkeypatch.setattr(sys, "stdin", _Terminal("n"))  # the estimate (~$1.4) is below the default $5 limit
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "openai")
    assert r.code == 2 and "not started" in r.err
    assert not fake_openai.files and not demo_store.jobs(kind="finetune")
    monkeypatch.setattr(sys, "stdin", _Terminal("y"))
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "openai")
    assert r.code == 0, r
    assert len(demo_store.jobs(kind="finetune")) == 1
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "local")  # free: never asks
    assert r.code == 0, r


def test_openai_needs_a_key(demo_store, run_cli):
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "openai")
    assert r.code == 2 and "OPENAI_API_KEY" in r.err


def test_malformed_data_is_stopped_before_upload(demo_store, fake_openai):
    settings = load_settings()
    plan = plan_finetune(demo_store, FinetuneOptions(provider="openai"), settings)
    with plan.written.train_path.open("a") as f:
        f.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(BadInput, match="missing assistant message"):
        start_finetune(demo_store, plan, settings)
    assert not fake_openai.files and not fake_openai.jobs and not demo_store.jobs(kind="finetune")


def test_uploads_retry_transient_errors(demo_store, fake_openai):
    settings = load_settings()
    api = OpenAIFineTuning.from_settings(settings, backoff=0.01)
    fake_openai.fail_next(1, 503, path_contains="/files")
    fake_openai.fail_next(1, 429, retry_after=0.01, path_contains="/fine_tuning/jobs")
    plan = plan_finetune(demo_store, FinetuneOptions(provider="openai", epochs=2, seed=3), settings)
    job = start_finetune(demo_store, plan, settings, trainer=OpenAITrainer(settings, api=api))
    assert job.remote_id in fake_openai.jobs and job.status == JobStatus.VALIDATING
    assert len(fake_openai.files) == 2
    body = fake_openai.jobs[job.remote_id]
    assert body["seed"] == 3 and body["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2


def test_local_finetune_end_to_end_routes(demo_store, run_cli):
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "local", "--json")
    assert r.code == 0, r
    lines = [json.loads(ln) for ln in r.out.splitlines()]
    events = [ln["event"] for ln in lines if "event" in ln]
    job = lines[-1]["job"]
    assert job["status"] == "succeeded" and job["provider"] == "local"
    assert [e["message"] for e in events if e["type"] == "metrics"] == [f"Step {i}/5 metrics" for i in range(1, 6)]
    assert len({e["id"] for e in events}) == len(events)  # every event printed once
    model_id = job["fine_tuned_model"]
    assert model_id.startswith(f"local-ft-{job['id']}-")
    model = demo_store.trained_model(model_id)
    assert model.provider == "local" and model.artifact and model.metrics["valid_accuracy"] > 0.7
    # the new model routes the held-out test questions
    router = registry.router(demo_store, model_id, load_settings())
    test = demo_store.page(ExampleFilter(split="test"), limit=1000)
    routes = router.route_batch(test, demo_store.actions())
    accuracy = sum(r.action == e.label for r, e in zip(routes, test)) / len(test)
    assert accuracy > 0.7


def test_local_job_can_be_cancelled_between_steps(demo_store):
    settings = load_settings()
    plan = plan_finetune(demo_store, FinetuneOptions(provider="local"), settings)
    svc = JobService(demo_store, settings)

    def on_event(ev):
        if ev.message.startswith("Step 2/5 metrics"):
            svc.cancel(ev.job_id)

    job = start_finetune(demo_store, plan, settings, trainer=LocalTrainer(settings), on_event=on_event)
    assert job.status == JobStatus.CANCELLED
    assert not demo_store.trained_models(provider="local")
    messages = [e.message for e in demo_store.job_events(job.id)]
    assert "Step 3/5 metrics" not in messages and any("cancelled" in m for m in messages)


def test_a_cached_upload_that_is_gone_is_uploaded_again(demo_store, fake_openai):
    settings = load_settings()
    plan = plan_finetune(demo_store, FinetuneOptions(provider="openai"), settings)
    first = start_finetune(demo_store, plan, settings)
    with fake_openai._lock:  # someone deleted the training file at the provider
        fake_openai.files.pop(first.params["training_file"])
    second = start_finetune(demo_store, plan, settings)
    assert second.params["training_file"] != first.params["training_file"]
    assert second.params["validation_file"] == first.params["validation_file"]  # still there: reused
    assert second.remote_id in fake_openai.jobs
