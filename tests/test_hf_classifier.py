"""The hf classifier, end to end on a tiny BERT made here (random weights, a tokenizer trained on the
fly): the CLI's finetune, the job's lifecycle and events, the model folder beside the workspace,
cancel from another connection, checkpoint and resume, early stopping, route and eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routelab.config import Settings
from routelab.domain import JobStatus
from routelab.providers import registry
from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune
from routelab.services.jobs import JobService
from routelab.store import ExampleFilter, Store

FAST = {"learning_rate": 3e-3, "head_lr": 1e-2, "batch_size": 16, "max_length": 32, "threads": 1}


def _statuses(store, job_id) -> list[str]:
    return [e.message for e in store.job_events(job_id)]


def test_finetune_from_the_cli_trains_routes_and_evaluates(hf_encoder, demo_store, run_cli):
    db = demo_store.path
    r = run_cli("--db", db, "finetune", "--provider", "hf", "--method", "classifier", "--base-model", hf_encoder,
                "--epochs", "3", "--learning-rate", "3e-3", "--batch-size", "16", "--max-length", "32",
                "--checkpoint-every", "10")
    assert r.code == 0, r
    assert "hf classifier fine-tune of" in r.out and "s/step measured" in r.out and "tokens x 3 epochs" in r.out
    [job] = demo_store.jobs(kind="finetune")
    assert job.status == JobStatus.SUCCEEDED and job.provider == "hf"
    events = demo_store.job_events(job.id)
    metrics = [e.data for e in events if e.type == "metrics"]
    steps = [m["step"] for m in metrics]
    assert steps == sorted(steps) and metrics[-1]["step"] == metrics[-1]["total_steps"] == job.progress_done
    assert {"train_loss", "valid_loss", "valid_accuracy"} <= {k for m in metrics for k in m}
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]  # it learnt
    messages = [e.message for e in events]
    assert any("Checkpoint saved at step 10" in m for m in messages)
    model_id = job.result["fine_tuned_model"]
    trained = demo_store.trained_model(model_id)
    folder = Path(trained.params["path"])
    # the model is a folder beside the workspace; the row stores its path, not weights
    assert trained.artifact is None and folder == (Path(db).parent / "demo-models" / str(job.id) / "model").resolve()
    assert (folder / "config.json").exists() and (folder / "routelab.json").exists()
    assert not (folder.parent / "checkpoints").exists()  # a finished run keeps its model, not its checkpoints

    r = run_cli("--db", db, "route", "Can I get a copy of my payslip for May?", "--model", model_id, "--json")
    assert r.code == 0, r
    [route] = json.loads(r.out)["routes"]
    assert route["valid"] and route["action"] in {a.name for a in demo_store.actions()}

    r = run_cli("--db", db, "eval", "--models", f"local,{model_id}", "--json")
    assert r.code == 0, r
    rows = {m["model"]: m for m in json.loads(r.out)["models"]}
    assert set(rows) == {"local", model_id} and rows[model_id]["n"] == 60
    assert rows[model_id]["accuracy"] > 0.35  # four actions: better than chance after three epochs

    out = Path(db).parent / "exported"
    r = run_cli("--db", db, "export-model", model_id, "--out", out, "--json")
    assert r.code == 0, r
    assert {"config.json", "model.safetensors", "routelab.json"} <= set(json.loads(r.out)["files"])


def test_cancel_from_another_connection_keeps_a_checkpoint_and_a_new_run_resumes_it(hf_encoder, demo_store):
    settings = Settings()
    options = FinetuneOptions(provider="hf", base_model=str(hf_encoder), epochs=2,
                              train_options={**FAST, "checkpoint_every": 3})
    plan = plan_finetune(demo_store, options, settings)
    other = Store.open(demo_store.path)  # as `routelab jobs cancel` from another process would

    def cancel_after_step_4(ev) -> None:
        if ev.type == "metrics" and ev.data.get("step") == 4:
            JobService(other, settings).cancel(ev.job_id)

    job = start_finetune(demo_store, plan, settings, on_event=cancel_after_step_4)
    assert job.status == JobStatus.CANCELLED
    assert not demo_store.trained_models(provider="hf")
    messages = _statuses(demo_store, job.id)
    assert any("checkpoint step-000003 kept" in m for m in messages), messages
    run_dir = Path(demo_store.path).parent / "demo-models" / str(job.id)
    assert (run_dir / "checkpoints" / "step-000003" / "trainable.safetensors").exists()

    again = start_finetune(demo_store, plan_finetune(demo_store, options, settings), settings)
    assert again.status == JobStatus.SUCCEEDED and again.id != job.id
    messages = _statuses(demo_store, again.id)
    assert any(f"Resuming from the checkpoint at step 3 of job {job.id}" in m for m in messages), messages
    steps = [e.data["step"] for e in demo_store.job_events(again.id) if e.type == "metrics"]
    assert min(steps) == 4 and max(steps) == again.progress_total  # it went on from step 3
    other.close()


def test_no_resume_starts_afresh(hf_encoder, demo_store):
    settings = Settings()
    options = FinetuneOptions(provider="hf", base_model=str(hf_encoder), epochs=1,
                              train_options={**FAST, "checkpoint_every": 2})
    other = Store.open(demo_store.path)
    job = start_finetune(demo_store, plan_finetune(demo_store, options, settings), settings, on_event=lambda ev: (
        JobService(other, settings).cancel(ev.job_id) if ev.type == "metrics" and ev.data["step"] == 3 else None))
    assert job.status == JobStatus.CANCELLED
    fresh = FinetuneOptions(**{**options.__dict__, "train_options": {**options.train_options, "resume": False}})
    done = start_finetune(demo_store, plan_finetune(demo_store, fresh, settings), settings)
    steps = [e.data["step"] for e in demo_store.job_events(done.id) if e.type == "metrics"]
    assert done.status == JobStatus.SUCCEEDED and min(steps) == 1
    other.close()


def test_early_stopping_on_validation_loss_keeps_the_best_weights(hf_encoder, demo_store):
    settings = Settings()
    # a learning rate far too high: validation loss stops improving at once, and the run stops
    options = FinetuneOptions(provider="hf", base_model=str(hf_encoder), epochs=6,
                              train_options={**FAST, "learning_rate": 0.3, "head_lr": 0.3, "eval_every": 2,
                                             "patience": 2})
    job = start_finetune(demo_store, plan_finetune(demo_store, options, settings), settings)
    assert job.status == JobStatus.SUCCEEDED
    metrics = job.result["metrics"]
    assert metrics["stopped_early"] is True and metrics["step"] < metrics["total_steps"]
    assert any("Early stopping at step" in m for m in _statuses(demo_store, job.id))
    valid = [e.data["valid_loss"] for e in demo_store.job_events(job.id) if "valid_loss" in e.data]
    assert metrics["best_valid_loss"] == pytest.approx(min(valid), abs=1e-3)


def test_the_zero_shot_baseline_routes_with_the_base_encoder(hf_encoder, demo_store, monkeypatch):
    monkeypatch.setenv("ROUTELAB_HF_BASE_MODEL", str(hf_encoder))
    router = registry.router(demo_store, "hf-zero-shot", Settings())
    test = demo_store.page(ExampleFilter(split="test"), limit=5)
    routes = router.route_batch(test, demo_store.actions())
    assert len(routes) == 5 and all(r.valid and r.action for r in routes)
