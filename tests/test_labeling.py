"""Teacher labeling through the OpenAI provider, against the fake server over real HTTP."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter

import openai
import pytest

from routelab.config import Settings
from routelab.domain import Example, NewExample
from routelab.providers import registry
from routelab.providers.base import FatalProviderError
from routelab.providers.openai.errors import retry_after_seconds
from routelab.services.labeling import SpendNotConfirmed, label
from routelab.store import Store
from tests.fake_openai import MALFORMED, REFUSE, UNKNOWN

TOPICS = ["payslip", "holiday", "policy", "escalate"]


def add_questions(store: Store, n: int, prefix: str = "question") -> None:
    store.add_examples([NewExample(text=f"{prefix} {i}: something about my {TOPICS[i % 4]}") for i in range(n)])


def teacher(**kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return registry.get("openai").router(kw.pop("model", "gpt-4.1"), store=None, settings=Settings(), **kw)


def per_example_counts(store: Store, model: str) -> Counter:
    rows = store.conn.execute("SELECT example_id, COUNT(*) FROM proposals WHERE model = ? GROUP BY example_id",
                              (model,)).fetchall()
    return Counter({r[0]: r[1] for r in rows})


def asked_texts(fake) -> list[str]:
    return [b["messages"][-1]["content"] for b in fake.chat_requests()]


def test_every_example_gets_exactly_one_proposal_under_faults(store, fake_openai):
    add_questions(store, 48)
    answers = {"question 5:": MALFORMED, "question 6:": UNKNOWN, "question 7:": REFUSE}

    def answer(messages, enum):
        text = messages[-1]["content"]
        for prefix, special in answers.items():
            if text.startswith(prefix):
                return special
        from tests.fake_openai import default_answer

        return default_answer(messages, enum)

    fake_openai.answer = answer
    fake_openai.fail_next(3, 429, retry_after=0.02)
    fake_openai.fail_next(3, 500)
    fake_openai.fail_next(2, 503)
    fake_openai.fail_next(2, 500, delay=1.0)  # answered after the client's timeout: a timeout
    fake_openai.fail_next(2, 0)  # connection closed without an answer
    router = teacher(timeout=0.4)
    result = label(store, router, concurrency=6)

    counts = per_example_counts(store, "gpt-4.1")
    assert len(counts) == 48 and set(counts.values()) == {1}
    assert result.labelled == 48 and result.failed == 0 and result.remaining == 0
    assert result.retries >= 12
    by_text = {e.text: e for e in store.page(limit=100)}
    invalid = {}
    for e in by_text.values():
        p = store.proposals_for("gpt-4.1", [e.id])[e.id]
        if not p.valid:
            invalid[e.text.split(":")[0]] = p
        else:
            assert p.action in store.action_names()
            assert p.confidence == pytest.approx(0.9)
            assert p.tokens_in > 0 and p.cost > 0
    assert set(invalid) == {"question 5", "question 6", "question 7"}
    assert all(p.action is None for p in invalid.values())
    assert "not_a_listed_action" in invalid["question 6"].raw
    assert invalid["question 7"].raw.startswith("refusal:")
    assert invalid["question 5"].raw.startswith("The action is")
    job = store.job(result.job_id)
    assert job.kind == "label" and job.status == "succeeded"
    assert job.progress_done == 48 and job.progress_total == 48
    assert job.cost == pytest.approx(result.cost, abs=1e-6)
    assert job.result["retry_reasons"]
    assert store.job_events(job.id)


def test_resume_after_a_partial_run_sends_nothing_twice(store, fake_openai):
    add_questions(store, 30)
    first = label(store, teacher(), limit=12, concurrency=4)
    assert first.labelled == 12 and first.remaining == 18
    second = label(store, teacher(), concurrency=4)
    assert second.labelled == 18 and second.remaining == 0
    texts = asked_texts(fake_openai)
    assert len(texts) == 30 and len(set(texts)) == 30
    third = label(store, teacher())
    assert third.status == "nothing to do" and len(fake_openai.chat_requests()) == 30


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_run_loses_only_in_flight_requests(store, fake_openai, db_path, sig):
    """A real process killed mid-run: what it stored is never asked again, the rest is finished."""
    add_questions(store, 120)
    fake_openai.latency = 0.05
    env = {**os.environ, "OPENAI_API_KEY": fake_openai.api_key, "OPENAI_BASE_URL": fake_openai.base_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "routelab", "label", "--db", str(db_path), "--concurrency", "4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while store.conn.execute("SELECT COUNT(*) FROM proposals").fetchone()[0] < 20:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
        assert store.jobs(kind="label")[0].status == "cancelled"
    stored_first = {e.text for e in store.page(limit=200) if store.proposals_for("gpt-4.1", [e.id])}
    asked_first = asked_texts(fake_openai)
    assert 20 <= len(stored_first) < 120
    lost = set(asked_first) - stored_first
    assert len(lost) <= 4  # at most the requests in flight (concurrency 4)

    fake_openai.latency = 0.0
    before = len(asked_first)
    result = label(store, teacher(), concurrency=4)
    asked_second = asked_texts(fake_openai)[before:]
    assert not set(asked_second) & stored_first  # nothing stored was sent again
    assert result.remaining == 0
    counts = per_example_counts(store, "gpt-4.1")
    assert len(counts) == 120 and set(counts.values()) == {1}
    # the killed run's job is closed as interrupted by the next run
    statuses = [j.status for j in store.jobs(kind="label")]
    assert statuses == ["succeeded", "cancelled"]


def _catalog_order(body: dict) -> list[str]:
    system = body["messages"][0]["content"]
    return re.findall(r"^- ([^:]+):", system, flags=re.M)


def test_action_order_is_shuffled_per_request_and_answer_forced_by_schema(store, fake_openai):
    add_questions(store, 12)
    label(store, teacher(), concurrency=2)
    bodies = fake_openai.chat_requests()
    orders = [tuple(_catalog_order(b)) for b in bodies]
    names = sorted(store.action_names())
    assert all(sorted(o) == names for o in orders)
    assert len(set(orders)) > 1
    schema = bodies[0]["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert sorted(schema["schema"]["properties"]["action"]["enum"]) == names
    assert bodies[0]["logprobs"] is True and bodies[0]["messages"][-1]["role"] == "user"


def test_conversation_turns_come_before_the_question(store, fake_openai):
    from routelab.domain import Message

    store.add_examples([NewExample(text="and the payslip for May?", conversation=[
        Message(role="user", content="hi"), Message(role="assistant", content="Hello, how can I help?")])])
    label(store, teacher())
    roles = [m["role"] for m in fake_openai.chat_requests()[0]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_logprobs_refused_falls_back_once(store, fake_openai):
    add_questions(store, 10)
    fake_openai.logprobs_supported = False
    result = label(store, teacher(), concurrency=1)
    assert result.labelled == 10 and result.valid == 10
    assert all(p.confidence is None for p in store.proposals_for("gpt-4.1").values())
    logprob_requests = [r for r in fake_openai.requests if (r["body"] or {}).get("logprobs")]
    assert len(logprob_requests) == 1
    assert store.job(result.job_id).result["logprobs_disabled"] is True


def test_samples_give_agreement_confidence(store, fake_openai):
    add_questions(store, 4)
    calls = Counter()

    def answer(messages, enum):
        text = messages[-1]["content"]
        calls[text] += 1
        return "escalate" if calls[text] % 3 == 0 else "get_payslip"

    fake_openai.answer = answer
    label(store, teacher(samples=3))
    for p in store.proposals_for("gpt-4.1").values():
        assert p.action == "get_payslip" and p.confidence == pytest.approx(2 / 3, abs=1e-3)
    assert all(b["n"] == 3 and "logprobs" not in b for b in fake_openai.chat_requests())


def test_persistent_failures_stop_the_run_and_the_rest_is_retried_next_time(store, fake_openai):
    add_questions(store, 10)
    fake_openai.fail_next(6, 500)
    with pytest.raises(FatalProviderError, match="failed requests in a row"):
        label(store, teacher(max_attempts=2), concurrency=1, max_consecutive_failures=3)
    assert store.jobs(kind="label")[0].status == "failed"
    assert store.conn.execute("SELECT COUNT(*) FROM proposals").fetchone()[0] == 0
    result = label(store, teacher(), concurrency=2)
    assert result.labelled == 10 and result.remaining == 0


def test_a_bad_request_is_not_retried_and_fails_only_its_example(store, fake_openai):
    add_questions(store, 3)
    fake_openai.fail_next(1, 400)
    result = label(store, teacher(), concurrency=1)
    assert result.failed == 1 and result.labelled == 2 and result.retries == 0
    assert "400" in result.errors[0]


def test_rate_limits_get_more_tries_than_errors(store, fake_openai):
    add_questions(store, 3)
    fake_openai.fail_next(8, 429, retry_after=0.001)
    result = label(store, teacher(max_attempts=2), concurrency=1)
    assert result.labelled == 3 and result.failed == 0 and result.retries == 8


def test_a_failed_request_leaves_its_example_for_the_next_run(store, fake_openai):
    add_questions(store, 6)
    fake_openai.fail_next(2, 500)
    result = label(store, teacher(max_attempts=2), concurrency=1)
    assert result.failed == 1 and result.labelled == 5 and result.remaining == 1
    assert store.job(result.job_id).error.startswith("1 requests failed")
    again = label(store, teacher())
    assert again.labelled == 1 and again.remaining == 0


def test_retry_after_header_is_read_from_a_real_response(fake_openai):
    fake_openai.fail_next(1, 429, retry_after=2.5)
    client = openai.OpenAI(api_key=fake_openai.api_key, base_url=fake_openai.base_url, max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    client.close()
    assert retry_after_seconds(info.value) == pytest.approx(2.5)
    policy = teacher().client.policy
    assert 2.5 <= policy.wait(1, info.value) <= 3.01


@pytest.mark.parametrize("setup, needle", [
    (lambda f: f.fail_next(50, 403), "403"),
    (lambda f: setattr(f, "quota_exhausted", True), "insufficient_quota"),
])
def test_fatal_errors_stop_at_once(store, fake_openai, setup, needle):
    add_questions(store, 40)
    setup(fake_openai)
    with pytest.raises(FatalProviderError, match=needle):
        label(store, teacher(), concurrency=4)
    chat = [r for r in fake_openai.requests if r["path"].endswith("/chat/completions")]
    assert len(chat) <= 8  # no retries: at most the requests already in flight
    job = store.jobs(kind="label")[0]
    assert job.status == "failed" and needle in job.error


def test_cli_401_exits_1_with_one_clear_line_and_no_key(store, fake_openai, db_path, run_cli, monkeypatch):
    add_questions(store, 20)
    # key-shaped, made at run time: nothing that looks like a key is committed
    wrong = "-".join(["sk", "proj", "ThisIsAWrong" + secrets.token_hex(16)])
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    r = run_cli("label", "--db", db_path)
    assert r.code == 1
    lines = [ln for ln in r.err.splitlines() if ln.startswith("routelab: error:")]
    assert len(lines) == 1 and "401" in lines[0] and "OPENAI_API_KEY" in lines[0]
    assert "Traceback" not in r.err
    assert wrong not in r.out + r.err and "ThisIsAWrong" not in r.out + r.err
    assert len([q for q in fake_openai.requests if q["path"].endswith("/chat/completions")]) <= 8
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not any(wrong.encode() in p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


def test_cli_label_never_writes_the_key(store, fake_openai, db_path, run_cli):
    add_questions(store, 15)
    fake_openai.fail_next(2, 429, retry_after=0.01)
    r = run_cli("label", "--db", db_path, "--concurrency", "3")
    assert r.code == 0, r
    assert "labelled 15" in r.out and "$" in r.out
    assert "label gpt-4.1: 15/15 100%" in r.err  # stderr is not a terminal: plain progress lines
    key = fake_openai.api_key
    assert key not in r.out + r.err
    for p in db_path.parent.glob(db_path.name + "*"):
        assert key.encode() not in p.read_bytes()
    r = run_cli("label", "--db", db_path, "--json")
    assert r.code == 0 and json.loads(r.out)["status"] == "nothing to do"


def test_cli_asks_before_spending_above_the_limit(store, fake_openai, db_path, run_cli, monkeypatch):
    add_questions(store, 10)
    monkeypatch.setenv("ROUTELAB_SPEND_LIMIT", "0.0001")
    r = run_cli("label", "--db", db_path)
    assert r.code == 2 and "spend limit" in r.err and "--yes" in r.err
    assert fake_openai.chat_requests() == []
    assert store.jobs(kind="label") == []
    r = run_cli("label", "--db", db_path, "--yes", "--json")
    assert r.code == 0 and json.loads(r.out)["labelled"] == 10


def test_service_refuses_above_limit_without_confirmation(store, fake_openai):
    add_questions(store, 10)
    seen = []
    with pytest.raises(SpendNotConfirmed):
        label(store, teacher(), spend_limit=0.0, confirm=lambda est: seen.append(est) or False)
    assert seen and seen[0].n == 10 and seen[0].cost > 0 and fake_openai.chat_requests() == []
    result = label(store, teacher(), spend_limit=0.0, confirm=lambda est: True)
    assert result.labelled == 10


def test_cli_usage_errors(store, db_path, run_cli, fake_openai, monkeypatch):
    assert run_cli("label", "--db", db_path, "--concurrency", "0").code == 2
    assert run_cli("label", "--db", db_path, "--provider", "local", "--batch").code == 2
    monkeypatch.delenv("OPENAI_API_KEY")
    r = run_cli("label", "--db", db_path, "--provider", "openai")
    assert r.code == 2 and "OPENAI_API_KEY" in r.err


def test_progress_callback_reports_counts_rate_and_cost(store, fake_openai):
    add_questions(store, 20)
    seen = []
    label(store, teacher(), progress=seen.append)
    last = seen[-1]
    assert last.done == 20 and last.total == 20 and last.cost > 0 and last.rate


def test_examples_are_objects_with_history():  # the prompt builder works without a store
    from random import Random

    from routelab.domain import Action
    from routelab.providers.openai.prompts import route_messages

    e = Example(id=1, text="q", source="user", split="train", hash="h", created_at="now")
    msgs = route_messages(e, [Action(name="a", description="A"), Action(name="b", description="")], Random(1))
    assert msgs[-1] == {"role": "user", "content": "q"} and "- b: b" in msgs[0]["content"]


def test_a_second_concurrent_run_of_the_same_model_is_refused(store, fake_openai):
    from routelab.domain import Job, JobStatus, RoutelabError

    add_questions(store, 5)
    other = store.create_job(Job(kind="label", provider="openai", model="gpt-4.1", status=JobStatus.RUNNING,
                                 params={"pid": os.getppid()}))  # a live process that is not us
    with pytest.raises(RoutelabError, match=f"job {other.id}"):
        label(store, teacher())
    assert fake_openai.chat_requests() == []
    assert label(store, teacher(model="gpt-4.1-mini")).labelled == 5  # another model is fine
    store.update_job(other.id, status=JobStatus.SUCCEEDED)
    assert label(store, teacher()).labelled == 5


def test_cancelling_the_job_stops_the_run_and_keeps_what_arrived(store, fake_openai):
    """`routelab jobs cancel` (or the Jobs pane) stops a label run; nothing already answered is lost."""
    from routelab.domain import JobStatus
    from routelab.services.jobs import JobService

    add_questions(store, 60)
    fake_openai.latency = 0.05
    cancelled = []

    def progress(p):
        if p.done >= 5 and not cancelled:
            job = store.jobs(kind="label")[0]
            JobService(store, Settings()).cancel(job.id)
            cancelled.append(job.id)

    result = label(store, teacher(), concurrency=2, progress=progress)
    assert cancelled and result.status == "cancelled"
    job = store.job(cancelled[0])
    assert job.status == JobStatus.CANCELLED
    stored = sum(per_example_counts(store, "gpt-4.1").values())
    assert stored == result.labelled and 5 <= stored < 60
    assert len(fake_openai.chat_requests()) == stored  # nothing answered was dropped
