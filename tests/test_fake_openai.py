"""Tests for the fake OpenAI server, driven through the real ``openai`` SDK over HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import math

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

try:
    from fake_openai import FakeOpenAI
except ImportError:  # pragma: no cover - if tests/ becomes a package
    from tests.fake_openai import FakeOpenAI

ACTIONS = ["billing_issue", "cancel_subscription", "reset_password", "track_order"]


def action_format(actions=ACTIONS):
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "route",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"action": {"type": "string", "enum": list(actions)}},
                "required": ["action"],
                "additionalProperties": False,
            },
        },
    }


def ask(client, text, **kw):
    return client.chat.completions.create(
        model=kw.pop("model", "gpt-4.1"),
        messages=[{"role": "system", "content": "Route the request."}, {"role": "user", "content": text}],
        response_format=kw.pop("response_format", action_format()),
        **kw,
    )


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def client(fake):
    c = OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    yield c
    c.close()


def jsonl(rows):
    return io.BytesIO("".join(json.dumps(r) + "\n" for r in rows).encode())


# ---------------------------------------------------------------------------- chat


def test_structured_chat_with_logprobs(fake, client):
    fake.confidence = 0.8
    r = ask(client, "I forgot my password, please reset it", logprobs=True, top_logprobs=3)
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == "gpt-4.1"
    assert choice.finish_reason == "stop"
    assert choice.message.content == '{"action":"reset_password"}'
    assert json.loads(choice.message.content) == {"action": "reset_password"}
    assert choice.message.refusal is None
    toks = choice.logprobs.content
    assert [t.token for t in toks] == ['{"action":"', "reset_password", '"}']
    assert "".join(t.token for t in toks) == choice.message.content
    assert math.isclose(math.exp(toks[1].logprob), 0.8)
    assert toks[0].logprob == 0.0 and toks[2].logprob == 0.0
    assert bytes(toks[1].bytes) == b"reset_password"
    top = toks[1].top_logprobs
    assert len(top) == 3 and top[0].token == "reset_password"
    assert {t.token for t in top[1:]} <= set(ACTIONS) - {"reset_password"}
    assert math.isclose(sum(math.exp(t.logprob) for t in top), 1.0)
    assert r.usage.completion_tokens == 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + 3
    assert r.usage.prompt_tokens == (len("Route the request.") + len("I forgot my password, please reset it")) // 4 + 1
    # observation
    assert fake.chat_requests()[0]["logprobs"] is True
    req = fake.requests[-1]
    assert req["method"] == "POST" and req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {fake.api_key}"


def test_default_answer_ties_and_n(client):
    r = ask(client, "nothing relevant here", n=3)
    assert len(r.choices) == 3
    # no word matches -> alphabetical first
    assert all(c.message.content == '{"action":"billing_issue"}' for c in r.choices)
    assert r.choices[0].logprobs is None


def test_parse_with_pydantic_enum(client):
    import enum

    from pydantic import BaseModel

    class Action(str, enum.Enum):
        billing_issue = "billing_issue"
        track_order = "track_order"

    class Route(BaseModel):
        action: Action

    r = client.chat.completions.parse(
        model="gpt-4.1",
        messages=[{"role": "user", "content": [{"type": "text", "text": "where is my order? track it"}]}],
        response_format=Route,
    )
    assert r.choices[0].message.parsed.action is Action.track_order


def test_answer_override_and_special_values(fake, client):
    seen = {}

    def answer(messages, enum):
        seen["enum"] = enum
        return "cancel_subscription"

    fake.answer = answer
    assert ask(client, "anything").choices[0].message.content == '{"action":"cancel_subscription"}'
    assert seen["enum"] == ACTIONS

    fake.answer = lambda m, e: "__refuse__"
    msg = ask(client, "anything", logprobs=True).choices[0].message
    assert msg.content is None and msg.refusal

    fake.answer = lambda m, e: "__malformed__"
    content = ask(client, "anything").choices[0].message.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)

    fake.answer = lambda m, e: "__unknown__"
    r = ask(client, "anything", logprobs=True)
    action = json.loads(r.choices[0].message.content)["action"]
    assert action not in ACTIONS
    assert "".join(t.token for t in r.choices[0].logprobs.content) == r.choices[0].message.content


def test_generate_path(fake, client):
    r = client.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "Write questions a customer might ask about refunds and invoices"}],
    )
    qs = json.loads(r.choices[0].message.content)["questions"]
    assert len(qs) == 5 and len(set(qs)) == 5
    assert all(q.endswith("?") for q in qs)
    assert any("refunds" in q or "invoices" in q for q in qs)

    # json_schema without an "action" property also takes the generate path
    fake.generate = lambda messages: json.dumps({"questions": ["a?", "b?"]})
    fmt = {"type": "json_schema", "json_schema": {"name": "q", "schema": {
        "type": "object", "properties": {"questions": {"type": "array", "items": {"type": "string"}}}}}}
    r = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x"}],
                                       response_format=fmt)
    assert json.loads(r.choices[0].message.content) == {"questions": ["a?", "b?"]}


def test_logprobs_unsupported(fake, client):
    fake.logprobs_supported = False
    with pytest.raises(openai.BadRequestError) as ei:
        ask(client, "reset password", logprobs=True)
    assert ei.value.param == "logprobs"
    assert "logprobs are not supported" in ei.value.message
    ask(client, "reset password")  # without logprobs still fine
    assert len(fake.chat_requests()) == 1


def test_wrong_key_401(fake):
    with OpenAI(base_url=fake.base_url, api_key="sk-wrong-secret-123", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as ei:
            ask(bad, "hello")
    assert ei.value.status_code == 401
    assert ei.value.code == "invalid_api_key"
    assert "sk-wrong-secret-123" not in ei.value.response.text
    assert fake.chat_requests() == []
    assert len(fake.requests) == 1


def test_fail_next_429_retry_after(fake, client):
    fake.fail_next(2, 429, code="rate_limit_exceeded", retry_after=2)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as ei:
            ask(client, "track my order")
        assert ei.value.response.headers["retry-after"] == "2"
        assert ei.value.response.headers["retry-after-ms"] == "2000"
        assert ei.value.code == "rate_limit_exceeded"
        assert ei.value.body["param"] is None
    assert ask(client, "track my order").choices[0].message.content == '{"action":"track_order"}'
    assert len(fake.chat_requests()) == 1
    assert len(fake.requests) == 3


def test_fail_next_is_path_scoped(fake, client):
    fake.fail_next(1, 500, path_contains="/files")
    ask(client, "hello")  # not affected
    with pytest.raises(openai.InternalServerError):
        client.files.list()
    client.files.list()


def test_sdk_retries_honour_retry_after(fake):
    fake.fail_next(2, 503, retry_after=0.01)
    with OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=2) as c:
        answer = ask(c, "reset password")
    assert answer.choices[0].message.content == '{"action":"reset_password"}'
    assert len(fake.requests) == 3


def test_connection_close(fake, client):
    fake.fail_next(1, 0)
    with pytest.raises(openai.APIConnectionError):
        ask(client, "hello")
    ask(client, "hello")


def test_timeout_via_delay(fake, client):
    fake.fail_next(1, 500, delay=0.5)
    with pytest.raises(openai.APITimeoutError):
        ask(client.with_options(timeout=0.1), "hello")


def test_quota_and_fault_rate(fake, client):
    fake.quota_exhausted = True
    with pytest.raises(openai.RateLimitError) as ei:
        ask(client, "hello")
    assert ei.value.code == "insufficient_quota" and ei.value.type == "insufficient_quota"
    client.models.list()  # only chat is affected
    fake.quota_exhausted = False

    fake.fault_rate = 1.0
    with pytest.raises(openai.RateLimitError) as ei:
        ask(client, "hello")
    assert ei.value.response.headers["retry-after"] == "0.01"
    fake.fault_rate = 0.5
    outcomes = []
    for _ in range(20):
        try:
            ask(client, "hello")
            outcomes.append(True)
        except openai.RateLimitError:
            outcomes.append(False)
    assert any(outcomes) and not all(outcomes)
    # deterministic for a given seed
    with FakeOpenAI(seed=0) as other, OpenAI(base_url=other.base_url, api_key=other.api_key, max_retries=0) as c2:
        other.fault_rate = 1.0
        with pytest.raises(openai.RateLimitError):
            ask(c2, "hello")
        other.fault_rate = 0.5
        outcomes2 = []
        for _ in range(20):
            try:
                ask(c2, "hello")
                outcomes2.append(True)
            except openai.RateLimitError:
                outcomes2.append(False)
    assert outcomes2 == outcomes


async def test_async_client_concurrency(fake):
    fake.latency = 0.1
    async with AsyncOpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0) as ac:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        results = await asyncio.gather(*[
            ac.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "reset password"}],
                                       response_format=action_format())
            for _ in range(8)
        ])
        elapsed = loop.time() - t0
    assert all(r.choices[0].message.content == '{"action":"reset_password"}' for r in results)
    assert elapsed < 0.6  # served concurrently
    assert len(fake.chat_requests()) == 8


def test_models_and_404(client):
    ids = [m.id for m in client.models.list()]
    assert "gpt-4.1" in ids and "gpt-4.1-mini-2025-04-14" in ids
    with pytest.raises(openai.NotFoundError) as ei:
        client.get("/nope", cast_to=object)
    assert ei.value.body["type"] == "invalid_request_error"


# ---------------------------------------------------------------------------- files


def test_files_upload_download_list_delete(fake, client):
    data = b'{"a": 1}\r\n{"b": "\xc3\xa9"}\n'
    f = client.files.create(file=("train.jsonl", data), purpose="fine-tune")
    assert f.bytes == len(data) and f.filename == "train.jsonl" and f.purpose == "fine-tune"
    assert f.status == "processed"
    assert client.files.content(f.id).content == data
    assert client.files.retrieve(f.id).id == f.id
    assert [x.id for x in client.files.list()] == [f.id]
    assert client.files.delete(f.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    assert fake.requests[0]["body"] is None  # multipart bodies are not JSON

    fake.reject_files = True
    with pytest.raises(openai.BadRequestError) as ei:
        client.files.create(file=("x.jsonl", b"nope"), purpose="batch")
    assert ei.value.code == "invalid_file_format"


# ---------------------------------------------------------------------------- batches


def test_batch_to_completion(fake, client):
    texts = {
        "r1": "please reset my password",
        "r2": "where is my order, track it",
        "r3": "cancel my subscription now",
        "r4": "billing issue with my invoice",
        "r5": "track the order again",
    }
    rows = [{"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4.1-mini-2025-04-14", "messages": [{"role": "user", "content": t}],
                      "response_format": action_format(), "logprobs": True}}
            for cid, t in texts.items()]
    inp = client.files.create(file=("batch.jsonl", jsonl(rows)), purpose="batch")
    b = client.batches.create(input_file_id=inp.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert b.status == "validating"
    statuses = []
    for _ in range(10):
        b = client.batches.retrieve(b.id)
        statuses.append(b.status)
        if b.status in ("completed", "failed"):
            break
    assert statuses == ["in_progress", "finalizing", "completed"]
    assert b.request_counts.total == 5 and b.request_counts.completed == 5 and b.request_counts.failed == 0
    out = client.files.content(b.output_file_id).text.splitlines()
    assert client.files.retrieve(b.output_file_id).purpose == "batch_output"
    lines = [json.loads(x) for x in out]
    assert sorted(x["custom_id"] for x in lines) == sorted(texts)
    assert [x["custom_id"] for x in lines] != list(texts)  # shuffled (deterministic for seed 0)
    by_id = {x["custom_id"]: x for x in lines}
    got = {cid: json.loads(by_id[cid]["response"]["body"]["choices"][0]["message"]["content"])["action"]
           for cid in texts}
    assert got == {"r1": "reset_password", "r2": "track_order", "r3": "cancel_subscription",
                   "r4": "billing_issue", "r5": "track_order"}
    assert all(x["response"]["status_code"] == 200 and x["error"] is None for x in lines)
    assert by_id["r1"]["response"]["body"]["choices"][0]["logprobs"]["content"][1]["token"] == "reset_password"
    assert fake.chat_requests() == []  # batch lines are not HTTP chat requests
    assert [x.id for x in client.batches.list()] == [b.id]


def test_batch_invalid_input_fails_and_cancel(client):
    inp = client.files.create(file=("bad.jsonl", b"not json\n"), purpose="batch")
    b = client.batches.create(input_file_id=inp.id, endpoint="/v1/chat/completions", completion_window="24h")
    b = client.batches.retrieve(b.id)
    assert b.status == "failed" and b.errors.data[0].code == "invalid_json_line"

    rows = [{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}}]
    inp = client.files.create(file=("ok.jsonl", jsonl(rows)), purpose="batch")
    b = client.batches.create(input_file_id=inp.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert client.batches.cancel(b.id).status == "cancelling"
    assert client.batches.retrieve(b.id).status == "cancelled"


# ---------------------------------------------------------------------------- fine-tuning


def training_file(client, n=10):
    rows = [{"messages": [{"role": "user", "content": f"reset password {i}"},
                          {"role": "assistant", "content": '{"action":"reset_password"}'}]} for i in range(n)]
    return client.files.create(file=("train.jsonl", jsonl(rows)), purpose="fine-tune")


def test_fine_tune_to_success(fake, client):
    tf = training_file(client)
    vf = training_file(client, 3)
    job = client.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file=tf.id,
                                         validation_file=vf.id, suffix="router", seed=7,
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 3}}})
    assert job.status == "validating_files" and job.seed == 7
    statuses = []
    for _ in range(20):
        job = client.fine_tuning.jobs.retrieve(job.id)
        statuses.append(job.status)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
    assert statuses == ["queued"] + ["running"] * 7 + ["succeeded"]
    assert job.fine_tuned_model.startswith("ft:gpt-4.1-mini-2025-04-14:router:")
    assert job.trained_tokens and job.result_files and job.finished_at
    assert job.hyperparameters.n_epochs == 3
    assert b"step,train_loss" in client.files.content(job.result_files[0]).content

    # events, newest first, paginated with after/limit
    first = client.fine_tuning.jobs.list_events(job.id, limit=4)
    assert len(first.data) == 4 and first.has_more
    assert first.data[0].message == "The job has successfully completed"
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=4))  # auto-paginates
    assert len({e.id for e in events}) == len(events)
    assert events[-1].message.startswith("Created fine-tuning job")
    messages = [e.message for e in events]
    assert "Fine-tuning job started" in messages
    assert any(m.startswith("Validating training file") for m in messages)
    metrics = [e.data for e in reversed(events) if e.type == "metrics"]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    losses = [m["train_loss"] for m in metrics]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == 6
    assert all(m["total_steps"] == 6 and m["valid_loss"] is not None for m in metrics)
    assert "Step 6/6: training loss=" in " ".join(messages)

    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in ckpts.data] == [6, 4, 2]
    assert ckpts.data[0].fine_tuned_model_checkpoint.startswith(job.fine_tuned_model)

    # the fine-tuned model is served and listed
    assert job.fine_tuned_model in [m.id for m in client.models.list()]
    r = ask(client, "reset my password", model=job.fine_tuned_model)
    assert r.model == job.fine_tuned_model and r.choices[0].message.content == '{"action":"reset_password"}'


def test_fine_tune_list_cancel_and_failures(fake, client):
    tf = training_file(client)
    j1 = client.fine_tuning.jobs.create(model="gpt-4.1-nano-2025-04-14", training_file=tf.id)
    j2 = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=tf.id)
    j3 = client.fine_tuning.jobs.create(model="gpt-4.1-2025-04-14", training_file=tf.id)
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == [j3.id, j2.id] and page.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == [j3.id, j2.id, j1.id]

    # cancel
    client.fine_tuning.jobs.retrieve(j1.id)
    c = client.fine_tuning.jobs.cancel(j1.id)
    assert c.status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(j1.id).status == "cancelled"
    assert client.fine_tuning.jobs.list_events(j1.id).data[0].message == "Fine-tuning job cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(j1.id)

    # simulated validation failure
    fake.ft_fail_validation = True
    j = client.fine_tuning.jobs.retrieve(j2.id)
    assert j.status == "failed"
    assert j.error.code == "invalid_training_file" and j.error.param == "training_file"
    ev = client.fine_tuning.jobs.list_events(j2.id).data[0]
    assert ev.level == "error"
    fake.ft_fail_validation = False

    # a training file with bad lines is accepted at upload/create but fails in the job
    bad = client.files.create(file=("bad.jsonl", b'{"prompt": "x"}\n'), purpose="fine-tune")
    jb = client.fine_tuning.jobs.create(model="gpt-4.1-2025-04-14", training_file=bad.id)
    assert client.fine_tuning.jobs.retrieve(jb.id).status == "failed"

    # unknown base model
    with pytest.raises(openai.BadRequestError) as ei:
        client.fine_tuning.jobs.create(model="gpt-5-turbo-imaginary", training_file=tf.id)
    assert ei.value.code == "model_not_available" and ei.value.param == "model"

    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")
    assert fake.errors == []


# ---------------------------------------------------------------- server profiles (other servers' quirks)

ROUTER_SYSTEM = ("You are an intent router. Read the conversation and choose the one action that should handle "
                 "the user's last message.\n\nActions:\n" + "\n".join(f"- {a}: about {a}" for a in ACTIONS))


def _route(client, text, response_format=None, **kw):
    extra = {"response_format": response_format} if response_format is not None else {}
    return client.chat.completions.create(
        model="local-model", messages=[{"role": "system", "content": ROUTER_SYSTEM}, {"role": "user", "content": text}],
        **extra, **kw)


def test_llama_cpp_profile_refuses_json_schema_with_500_and_takes_json_object(fake):
    fake.use_profile("llama.cpp")
    client = OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        _route(client, "reset my password", action_format())
    schema = action_format()["json_schema"]["schema"]
    answer = _route(client, "reset my password please", {"type": "json_object", "schema": schema})
    assert json.loads(answer.choices[0].message.content) == {"action": "reset_password"}
    with pytest.raises(openai.NotFoundError):
        client.files.list()


def test_bare_profile_answers_in_prose_from_the_prompt_catalog(fake):
    fake.use_profile("bare")
    client = OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError):
        _route(client, "track my order", {"type": "json_object"})
    with pytest.raises(openai.BadRequestError):
        _route(client, "track my order", seed=1)
    content = _route(client, "where is my order, track it").choices[0].message.content
    assert '{"action":"track_order"}' in content and not content.startswith("{")


def test_garbage_200_echoes_the_request_headers(fake):
    import urllib.request

    fake.garbage_200 = True
    req = urllib.request.Request(f"{fake.base_url}/chat/completions", data=b"{}", method="POST",
                                 headers={"Authorization": f"Bearer {fake.api_key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200 and r.headers["content-type"] == "text/html"
        assert fake.api_key in r.read().decode()  # what a key-echoing portal does: routelab must scrub it
