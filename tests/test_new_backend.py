"""A new backend registered through the registry only drives every command that takes a provider or
a model: label, finetune, eval, route, jobs (and the Jobs pane's list of trainers), with no edit
anywhere else. The CLI runs in-process: the registration lives in this test process."""

from __future__ import annotations

import json

import pytest

from routelab.config import Settings
from routelab.providers import registry
from routelab.services import evaluation
from routelab.services.finetune import providers
from routelab.store import ExampleFilter
from tests.keyword_backend import NAME, KeywordBackend


@pytest.fixture
def keyword():
    backend = registry.register(KeywordBackend())
    yield backend
    registry.unregister(NAME)


def test_a_registered_backend_runs_label_finetune_eval_and_route(keyword, demo_store, run_cli):
    db = demo_store.path
    assert NAME in run_cli("label", "--help").out and NAME in run_cli("finetune", "--help").out

    r = run_cli("--db", db, "label", "--provider", NAME, "--json")
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["model"] == NAME and doc["provider"] == NAME and doc["labelled"] == demo_store.count()
    assert {p.prompt_version for p in demo_store.proposals_for(NAME).values()} == {"kw-v1"}

    r = run_cli("--db", db, "finetune", "--provider", NAME, "--wait", "--interval", "0.01")
    assert r.code == 0, r
    assert "keyword table from" in r.out and "Reading train.jsonl" in r.out
    [job] = [j for j in demo_store.jobs(kind="finetune")]
    model_id = job.result["fine_tuned_model"]
    assert job.provider == NAME and job.status == "succeeded" and f"succeeded: model {model_id}" in r.out
    trained = demo_store.trained_model(model_id)
    assert trained.provider == NAME and trained.metrics["train_accuracy"] > 0.5 and trained.metrics["words"] > 0

    r = run_cli("--db", db, "eval", "--models", f"local,{model_id}", "--json")
    assert r.code == 0, r
    rows = {m["model"]: m for m in json.loads(r.out)["models"]}
    assert set(rows) == {"local", model_id} and rows[model_id]["n"] == 60
    assert rows[model_id]["accuracy"] > 0.3
    test_ids = [e.id for e in demo_store.page(ExampleFilter(split="test"), limit=100)]
    assert len(demo_store.proposals_for(model_id, test_ids)) == 60

    r = run_cli("--db", db, "route", "Can I get a copy of my payslip for May?", "--model", model_id, "--json")
    assert r.code == 0, r
    [route] = json.loads(r.out)["routes"]
    assert route["model"] == model_id and route["action"] == "get_payslip" and route["valid"]

    r = run_cli("--db", db, "jobs", "show", str(job.id), "--json")
    assert r.code == 0 and json.loads(r.out)["provider"] == NAME


def test_the_registry_lists_it_everywhere_a_provider_is_chosen(keyword, demo_store):
    assert NAME in providers()  # the Jobs pane's trainers
    assert NAME in registry.names("train") and NAME in registry.names("route")
    models = evaluation.default_models(demo_store, Settings())
    assert models[:2] == [evaluation.ZERO_SHOT, "local"] and NAME in models  # eval's and the playground's list
    assert registry.resolve(demo_store, NAME)[0] is keyword


def test_unregistered_it_is_gone_and_its_models_say_why(demo_store, run_cli):
    backend = registry.register(KeywordBackend())
    r = run_cli("--db", demo_store.path, "finetune", "--provider", NAME)
    assert r.code == 0, r
    model_id = demo_store.jobs(kind="finetune")[0].result["fine_tuned_model"]
    registry.unregister(backend.name)
    assert NAME not in providers()
    r = run_cli("--db", demo_store.path, "route", "where is my payslip", "--model", model_id)
    assert r.code == 1 and f"trained by the '{NAME}' provider, which is not installed" in r.err
    r = run_cli("--db", demo_store.path, "label", "--provider", NAME)
    assert r.code == 2 and "invalid choice" in r.err


async def test_the_jobs_pane_trains_with_it(keyword, demo_store):
    from routelab.tui.app import RoutelabApp
    from routelab.tui.components.confirm import ConfirmScreen
    from routelab.tui.components.picker import PickerScreen
    from routelab.tui.panes.jobs import JobsPane

    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(140, 45)) as pilot:
        pane = app.query_one(JobsPane)
        await pilot.press("f2", "t")
        for _ in range(200):
            if isinstance(app.screen, PickerScreen):
                break
            await pilot.pause(0.02)
        await pilot.press(*NAME, "enter")
        for _ in range(1500):
            if isinstance(app.screen, ConfirmScreen):
                await pilot.press("y")
            job = pane.selected_job()
            if job is not None and job.provider == NAME and job.status == "succeeded":
                break
            await pilot.pause(0.02)
        assert job is not None and job.provider == NAME and job.status == "succeeded"
        assert demo_store.trained_model(job.result["fine_tuned_model"]).provider == NAME
