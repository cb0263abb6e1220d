"""The embedded local teacher and the provider registry: offline, real embeddings, real training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from routelab.config import Settings
from routelab.domain import BadInput, NewExample, Status, TrainedModel
from routelab.providers import registry
from routelab.providers.local import MIN_LABELS, LocalModelRouter, LocalTeacher
from routelab.providers.local.model import LinearRouter, embed
from routelab.providers.registry import default_teacher
from routelab.services.labeling import label
from routelab.store import ExampleFilter

OBVIOUS = {
    "Please book me annual leave from 3 to 7 March": "book_holiday",
    "Can I get a copy of my payslip for last month?": "get_payslip",
    "My manager is bullying me and I want to file a grievance": "escalate",
}


def test_zero_shot_until_there_are_enough_labels(store):
    store.add_examples([NewExample(text=t) for t in OBVIOUS])
    teacher = LocalTeacher.from_store(store)
    assert not teacher.trained and teacher.mode == "zero-shot"
    result = label(store, teacher)
    assert result.labelled == 3 and result.cost == 0 and result.tokens_in == 0
    props = store.proposals_for("local")
    by_text = {e.text: props[e.id] for e in store.page(limit=10)}
    for text, action in OBVIOUS.items():
        p = by_text[text]
        assert p.action == action and p.valid and 0.25 < p.confidence <= 1.0
        assert json.loads(p.raw) == {"mode": "zero-shot"}
        assert p.latency_ms is not None and p.latency_ms < 1000
    job = store.jobs(kind="label")[0]
    assert job.provider == "local" and job.status == "succeeded" and job.progress_done == 3


def test_trains_on_reviewed_labels_but_never_on_the_test_split(store):
    names = store.action_names()
    # test-split labels are deliberately wrong: if they were learnt, they would show
    train = [NewExample(text=f"{n.replace('_', ' ')} request number {i}", label=n, split="train")
             for n in names for i in range(6)]
    test = [NewExample(text=f"zebra giraffe {i}", label="get_payslip", split="test") for i in range(30)]
    store.add_examples(train + test)
    teacher = LocalTeacher.from_store(store)
    assert teacher.trained and len(teacher.training) == len(train) >= MIN_LABELS
    assert all(e.split != "test" for e in teacher.training)
    assert teacher.mode == f"trained on {len(train)} labels"
    routes = teacher.route_batch(store.page(limit=100))
    assert all(r.valid and r.action in names for r in routes)
    assert json.loads(routes[0].raw) == {"mode": "trained"}


def test_too_few_labels_per_action_stays_zero_shot(store):
    store.add_examples([NewExample(text=f"leave rules {i}", label="get_policy", split="train")
                        for i in range(MIN_LABELS)])  # 20 labels, all one action
    assert not LocalTeacher.from_store(store).trained


def test_zero_shot_then_trained_on_the_demo(demo_store):
    """The demo: its 191 reviewed non-test labels train the teacher; the held-out test split
    shows trained proposals beat zero-shot ones."""
    test = [e for e in demo_store.page(limit=1000) if e.split == "test"]
    zero = LocalTeacher(demo_store.actions())
    trained = LocalTeacher.from_store(demo_store)
    assert not zero.trained and trained.trained and len(trained.training) == 191

    def accuracy(t):
        return np.mean([r.action == e.label for r, e in zip(t.route_batch(test), test)])

    acc_zero, acc_trained = accuracy(zero), accuracy(trained)
    assert acc_zero > 0.5 and acc_trained > acc_zero + 0.05


def test_demo_workspace_comes_with_local_proposals(demo_store, run_cli):
    n = demo_store.count()
    props = demo_store.proposals_for("local")
    assert len(props) == n and all(p.valid for p in props.values())
    assert demo_store.jobs(kind="label")[0].status == "succeeded"
    r = run_cli("label", "--db", demo_store.path)
    assert r.code == 0 and "nothing to label" in r.out  # no key: local is the default


def test_cli_label_local_offline(store, db_path, run_cli):
    store.add_examples([NewExample(text=t) for t in OBVIOUS])
    r = run_cli("label", "--db", db_path, "--json")
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["model"] == "local" and doc["labelled"] == 3 and doc["cost"] == 0
    store.add_examples([NewExample(text="when is pay day")])
    r = run_cli("label", "--db", db_path, "--provider", "local")
    assert r.code == 0 and "local (zero-shot): labelled 1" in r.out
    assert len(store.proposals_for("local")) == 4


def test_registry_resolves_local_trained_and_openai_models(store, monkeypatch):
    settings = Settings()
    assert default_teacher(settings) == "local"
    assert isinstance(registry.router(store, "local", settings), LocalTeacher)
    names = store.action_names()
    model = LinearRouter.fit(embed([f"about {n}" for n in names] * 2), names * 2)
    store.save_model(TrainedModel(id="local-ft-1", provider="local", artifact=model.to_bytes()))
    router = registry.router(store, "local-ft-1", settings)
    assert isinstance(router, LocalModelRouter) and router.model == "local-ft-1"
    store.add_examples([NewExample(text="about escalate")])
    assert router.route_batch(store.page())[0].action in names
    with pytest.raises(BadInput, match="OPENAI_API_KEY"):
        registry.router(store, "gpt-4.1-mini", settings)
    monkeypatch.setenv("OPENAI_API_KEY", "dummy-not-a-key")
    monkeypatch.setenv("ROUTELAB_TEACHER", "gpt-4.1-mini")
    settings = Settings()
    assert default_teacher(settings) == "gpt-4.1-mini"
    router = registry.router(store, "gpt-4.1-mini", settings, timeout=3)
    assert router.provider == "openai" and router.model == "gpt-4.1-mini"
    assert "dummy-not-a-key" not in repr(router) + repr(router.client)


def test_trained_teacher_is_fitted_once_per_set_of_labels(demo_store):
    """Routing, eval and the playground reuse the fitted teacher until the labels change."""
    from routelab.providers.local import LocalTeacher

    first = LocalTeacher.from_store(demo_store)
    assert first.trained
    first.route_batch(demo_store.page(limit=3))
    cached = demo_store.trained_model("local")
    assert cached.kind == "teacher" and cached.params["fingerprint"] == first.fingerprint()
    assert demo_store.trained_models() == []  # the cache is not a fine-tuned model

    again = LocalTeacher.from_store(demo_store)
    assert again._cached() is not None  # no second fit
    unlabelled = demo_store.page(ExampleFilter(status=Status.UNREVIEWED, split="train"), limit=1)[0]
    demo_store.decide(unlabelled.id, "override", "escalate")
    changed = LocalTeacher.from_store(demo_store)
    assert changed.fingerprint() != first.fingerprint() and changed._cached() is None
