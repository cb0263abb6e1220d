"""`routelab generate`: synthetic questions from the teacher, deduplicated, against the fake server."""

from __future__ import annotations

import itertools
import json

import pytest

from routelab.domain import BadInput, NewExample
from routelab.providers.local import LocalTeacher
from routelab.services.generation import generate
from tests.test_labeling import teacher


def unique_questions():
    counter = itertools.count()

    def gen(messages):
        ask = messages[-1]["content"]
        n = int(ask.split("Write ")[1].split(" ")[0])
        action = ask.split("action '")[1].split("'")[0]
        qs = [f"{action} question number {next(counter)}" for _ in range(n)]
        qs[0] = "Where is my payslip?"  # the same in every answer, and already in the workspace
        return json.dumps({"questions": qs})

    return gen


def test_generate_adds_new_synthetic_questions_per_action(store, fake_openai):
    store.add_examples([NewExample(text="Where is my payslip?")])
    fake_openai.generate = unique_questions()
    fake_openai.fail_next(2, 429, retry_after=0.01)
    fake_openai.fail_next(1, 500)
    result = generate(store, teacher(), per_action=5, concurrency=2)
    names = store.action_names()
    assert result.added == 5 * len(names) and result.by_action == {n: 5 for n in names}
    assert result.duplicates > 0 and result.cost > 0 and result.failed_requests == 0
    synthetic = [e for e in store.page(limit=100) if e.source == "synthetic"]
    assert len(synthetic) == 20 and all(e.label is None for e in synthetic)
    assert store.count() == 21  # the existing question was not added twice
    job = store.jobs(kind="generate")[0]
    assert job.status == "succeeded" and job.progress_done == 20 and job.error is None
    # the request asks for the action with the catalog and a json schema of questions
    body = fake_openai.chat_requests()[0]
    assert body["response_format"]["json_schema"]["name"] == "questions"
    assert all(f"- {n}:" in body["messages"][0]["content"] for n in names)


def test_generate_asks_again_for_the_shortfall_and_stops(store, fake_openai):
    # the default fake generator repeats itself: fewer than asked, never more, and it stops
    result = generate(store, teacher(), per_action=8, actions=["get_payslip"])
    assert 0 < result.added <= 8 and result.by_action.keys() == {"get_payslip"}
    rounds = fake_openai.chat_requests()
    assert 1 < len(rounds) <= 3
    assert "Do not repeat" in rounds[-1]["messages"][-1]["content"]


def test_generate_spend_limit_and_bad_input(store, fake_openai):
    with pytest.raises(BadInput, match="spend limit"):
        generate(store, teacher(), per_action=5, spend_limit=0.0)
    with pytest.raises(BadInput, match="unknown action"):
        generate(store, teacher(), per_action=5, actions=["nope"])
    assert fake_openai.chat_requests() == []


def test_generate_offline_says_it_needs_an_endpoint(store, db_path, run_cli):
    r = run_cli("generate", "--db", db_path, "--per-action", "3")
    assert r.code == 2
    assert "generate needs an OpenAI-compatible endpoint: set OPENAI_API_KEY" in r.err
    with pytest.raises(BadInput, match="needs an OpenAI-compatible endpoint"):
        generate(store, LocalTeacher(store.actions()), per_action=3)
    assert store.count() == 0


def test_cli_generate(store, fake_openai, db_path, run_cli):
    fake_openai.generate = unique_questions()
    r = run_cli("generate", "--db", db_path, "--per-action", "4", "--actions", "escalate,get_policy", "--json")
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["added"] == 8 and doc["by_action"] == {"escalate": 4, "get_policy": 4}
    assert fake_openai.api_key not in r.out + r.err
    r = run_cli("generate", "--db", db_path, "--per-action", "2", "--model", "local")
    assert r.code == 2 and "OPENAI_API_KEY" in r.err
