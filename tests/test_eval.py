"""`routelab eval`: local models on the demo workspace, and OpenAI models through the fake server."""

from __future__ import annotations

import json

import pytest

from routelab.config import Settings
from routelab.domain import NewExample, TrainedModel
from routelab.services import evaluation as ev
from routelab.store import ExampleFilter

FT = "ft:gpt-4.1-mini-2025-04-14:routelab:abc"


def _train_local_model(store, model_id: str = "local-ft-test") -> str:
    """A real local trained model (embeddings + logistic regression) on the demo's train labels."""
    from routelab.providers.local.model import LinearRouter, embed_examples

    train = [e for e in store.page(ExampleFilter(split="train"), limit=10_000) if e.label]
    model = LinearRouter.fit(embed_examples(train), [e.label for e in train])
    store.save_model(TrainedModel(id=model_id, provider="local", base="local", artifact=model.to_bytes()))
    return model_id


def test_eval_local_models_on_demo(demo_store, run_cli):
    model_id = _train_local_model(demo_store)
    path = demo_store.path
    r = run_cli("--db", path, "eval", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["split"] == "test" and doc["n"] == 60
    models = [m["model"] for m in doc["models"]]
    assert models == [ev.ZERO_SHOT, "local", model_id]  # every local model; the zero-shot baseline first
    assert doc["base"] == ev.ZERO_SHOT
    for m in doc["models"]:
        assert 0.0 <= m["ci_low"] <= m["accuracy"] <= m["ci_high"] <= 1.0
        assert m["n"] == 60 and m["slices"]["user"]["n"] == 60 and m["slices"]["synthetic"]["n"] == 0
        assert set(m["per_action"]) == {"get_policy", "book_holiday", "get_payslip", "escalate"}
        assert m["cost_per_1k"] == 0.0 and m["latency_p50_ms"] is not None
        assert sum(sum(row.values()) for row in m["confusion"].values()) == 60
    trained = doc["models"][2]
    assert trained["accuracy"] > doc["models"][0]["accuracy"]  # training beats zero-shot on the demo
    assert trained["improvement"]["delta"] == pytest.approx(trained["accuracy"] - doc["models"][0]["accuracy"])

    # stored: the job, the evaluations, and the predictions as proposals (they feed review filters)
    job = demo_store.job(doc["job_id"])
    assert job.kind == "eval" and job.status == "succeeded" and job.progress_done == job.progress_total == 180
    assert {e.model for e in demo_store.evaluations()} == set(models)
    test_ids = [e.id for e in demo_store.page(ExampleFilter(split="test"), limit=100)]
    assert len(demo_store.proposals_for(model_id, test_ids)) == 60
    assert demo_store.count(ExampleFilter(split="test", model=model_id, max_confidence=1.01)) == 60

    # the human table: intervals and n; --show prints it again without running anything
    r = run_cli("--db", path, "eval", "--models", f"local,{model_id}")
    assert r.code == 0, r.err
    assert "60 questions with a human label" in r.out and "[" in r.out and "–" in r.out
    jobs_before = len(demo_store.jobs(kind="eval"))
    r = run_cli("--db", path, "eval", "--show")
    assert r.code == 0 and model_id in r.out and ev.ZERO_SHOT in r.out
    assert len(demo_store.jobs(kind="eval")) == jobs_before
    r = run_cli("--db", path, "eval", "--show", "--json")
    shown = json.loads(r.out)
    # the newest run's models in its order (its base first), then the older rows, compared with that base
    assert [m["model"] for m in shown["models"]] == ["local", model_id, ev.ZERO_SHOT]
    assert shown["base"] == "local" and shown["models"][2]["improvement"]["delta"] < 0


def test_eval_without_a_test_split_says_so(store, run_cli):
    store.add_examples([NewExample(text="where is my payslip", label="get_payslip", split="train")])
    r = run_cli("--db", store.path, "eval")
    assert r.code == 2
    assert "no questions in the test split" in r.err and "--split test" in r.err
    assert r.err.count("\n") == 1
    store.add_examples([NewExample(text="book me a day off", split="test")])
    r = run_cli("--db", store.path, "eval")
    assert r.code == 2 and "none has a human label" in r.err
    r = run_cli("--db", store.path, "eval", "--show")
    assert r.code == 2 and "no stored evaluation" in r.err


def test_eval_one_bad_model_does_not_lose_the_others(demo_store, run_cli):
    r = run_cli("--db", demo_store.path, "eval", "--models", "local,gpt-4.1", "--json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert [m["model"] for m in doc["models"]] == ["local"]
    assert "OPENAI_API_KEY" in doc["errors"]["gpt-4.1"]
    assert "gpt-4.1" in r.err and "Traceback" not in r.err
    assert demo_store.jobs(kind="eval")[0].error


def test_eval_openai_teacher_and_finetuned_against_fake_server(demo_store, run_cli, fake_openai):
    from tests.fake_openai import REFUSE

    gold = {e.text: e.label for e in demo_store.page(ExampleFilter(split="test"), limit=100)}
    refused = sorted(gold)[0]

    def answer(messages, enum):
        text = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        question = next((q for q in gold if q in text), None)
        if question == refused:
            return REFUSE
        return gold.get(question, enum[0])

    fake_openai.answer = answer
    r = run_cli("--db", demo_store.path, "eval", "--models", f"gpt-4.1,{FT}", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    teacher, student = doc["models"]
    assert (teacher["model"], student["model"]) == ("gpt-4.1", FT)
    for m in (teacher, student):
        assert m["accuracy"] == pytest.approx(59 / 60)
        assert m["invalid_rate"] == pytest.approx(1 / 60)
        assert m["cost_per_1k"] > 0
        assert m["latency_p95_ms"] >= m["latency_p50_ms"] > 0
    assert student["cost_per_1k"] < teacher["cost_per_1k"]  # the mini fine-tune is priced below gpt-4.1
    assert student["improvement"]["delta"] == 0.0
    sent = len(fake_openai.chat_requests())
    assert sent == 120
    assert {b["model"] for b in fake_openai.chat_requests()} == {"gpt-4.1", FT}

    # re-evaluating reuses the stored predictions: nothing is sent again
    r = run_cli("--db", demo_store.path, "eval", "--models", f"gpt-4.1,{FT}")
    assert r.code == 0, r.err
    assert len(fake_openai.chat_requests()) == sent
    assert "gpt-4.1" in r.out and "0.98 [" in r.out
    assert fake_openai.api_key not in r.out + r.err


def test_default_models_with_a_key(demo_store, fake_openai):
    from routelab.config import settings

    demo_store.save_model(TrainedModel(id=FT, provider="openai", base="gpt-4.1-mini-2025-04-14"))
    models = ev.default_models(demo_store, settings())
    assert models[0] == "gpt-4.1-mini-2025-04-14"  # the fine-tune's base model is the base of the table
    assert models[1:] == [ev.ZERO_SHOT, "local", "gpt-4.1", FT]


def test_latest_compares_older_rows_with_the_newest_base(demo_store):
    ev.evaluate(demo_store, ["local"], base="local", settings=Settings())
    ev.evaluate(demo_store, [ev.ZERO_SHOT], settings=Settings())
    rows = ev.latest(demo_store, "test")
    assert [r.model for r in rows] == [ev.ZERO_SHOT, "local"]
    assert rows[1].details["base"] == ev.ZERO_SHOT
    assert rows[1].details["improvement"]["delta"] == pytest.approx(rows[1].accuracy - rows[0].accuracy)


def test_eval_asks_before_spending_above_the_limit(demo_store, run_cli, fake_openai, monkeypatch):
    monkeypatch.setenv("ROUTELAB_SPEND_LIMIT", "0.000001")
    r = run_cli("--db", demo_store.path, "eval", "--models", "local,gpt-4.1")
    assert r.code == 1
    assert "spend limit" in r.err and "gpt-4.1" in r.err
    assert fake_openai.chat_requests() == []  # nothing was sent
    assert "local" in r.out  # the free model is still evaluated
    r = run_cli("--db", demo_store.path, "eval", "--models", "local,gpt-4.1", "--yes", "--json")
    assert r.code == 0, r.err
    assert [m["model"] for m in json.loads(r.out)["models"]] == ["local", "gpt-4.1"]
    assert len(fake_openai.chat_requests()) == 60


def test_local_teacher_never_learns_from_the_test_split(demo_store):
    from routelab.providers.local import LocalTeacher

    teacher = LocalTeacher.from_store(demo_store)
    assert teacher.trained and teacher.training
    assert all(e.split != "test" for e in teacher.training)


def test_stored_predictions_are_evaluated_offline(demo_store, run_cli, monkeypatch):
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as fake:  # an earlier run with a key labelled the test split with gpt-4.1
        monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        assert run_cli("--db", demo_store.path, "eval", "--models", "gpt-4.1").code == 0
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    r = run_cli("--db", demo_store.path, "eval", "--json")  # offline now: gpt-4.1 needs no call
    assert r.code == 0, r.err
    assert [m["model"] for m in json.loads(r.out)["models"]] == [ev.ZERO_SHOT, "local", "gpt-4.1"]


def test_fine_tuned_openai_model_routes_with_the_prompt_it_was_trained_on(demo_store, run_cli, fake_openai):
    """Fine-tuning data uses the fixed (unshuffled) router prompt; routing must use the same."""
    from routelab.domain import TrainedModel
    from routelab.providers.prompts import router_system_prompt

    prompt = router_system_prompt(demo_store.actions())
    model = "ft:gpt-4.1-mini-2025-04-14:routelab:fixed1"
    demo_store.save_model(TrainedModel(id=model, provider="openai", base="gpt-4.1-mini-2025-04-14",
                                       params={"system_prompt": prompt}))
    for _ in range(3):
        r = run_cli("--db", demo_store.path, "route", "can I see my payslip", "--model", model, "--json")
        assert r.code == 0, r
    systems = [b["messages"][0]["content"] for b in fake_openai.chat_requests() if b["model"] == model]
    assert systems == [prompt] * 3
