"""Named endpoints and servers that are not OpenAI: structured-output fallback probed once per
endpoint, parameter refusals remembered, capabilities said before anything is sent, Azure.
Real HTTP to fake servers imitating each server's quirks (tests/fake_openai.py PROFILES)."""

from __future__ import annotations

import json

import pytest

from routelab.config import Settings
from routelab.domain import NewExample
from routelab.providers import registry
from routelab.services.generation import generate
from routelab.services.labeling import label
from routelab.services.playground import Playground
from tests.fake_openai import FakeOpenAI

TOPICS = ["payslip", "holiday", "policy", "escalate"]


def add_questions(store, n: int, prefix: str = "question") -> None:
    store.add_examples([NewExample(text=f"{prefix} {i}: something about my {TOPICS[i % 4]}") for i in range(n)])


def chats(fake) -> list[dict]:
    return [r for r in fake.requests if r["path"].endswith("/chat/completions")]


def form_of(request: dict) -> str:
    rf = (request["body"] or {}).get("response_format")
    if rf is None:
        return "prompt"
    return "json_object_schema" if rf["type"] == "json_object" and "schema" in rf else rf["type"]


@pytest.fixture
def server(monkeypatch):
    """A factory of fake servers, each with its own key in its own variable."""
    started = []

    def start(profile: str = "openai", key_env: str = "EP_KEY", key: str | None = None) -> FakeOpenAI:
        fake = FakeOpenAI(api_key=key or f"{key_env.lower()}-value-not-secret").use_profile(profile).start()
        monkeypatch.setenv(key_env, fake.api_key)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


def add_endpoint(run_cli, db_path, name: str, fake: FakeOpenAI, key_env: str = "EP_KEY", *extra: str):
    r = run_cli("endpoints", "add", name, "--db", db_path, "--base-url", fake.base_url, "--api-key-env", key_env,
                *extra)
    assert r.code == 0, r
    return r


# ---------------------------------------------------------------------------- the done-when run


def test_label_against_a_server_refusing_json_schema_probes_once_per_endpoint(store, db_path, server, run_cli):
    fake = server("llama.cpp")
    add_endpoint(run_cli, db_path, "local-llama", fake)
    add_questions(store, 30)
    r = run_cli("label", "--db", db_path, "--model", "local-llama/gemma-3-270m", "--concurrency", "8")
    assert r.code == 0, r
    requests = chats(fake)
    # one refused json_schema request (500, never retried), then every question once in json_object+schema
    assert [form_of(q) for q in requests].count("json_schema") == 1
    assert len(requests) == 30 + 1
    assert {form_of(q) for q in requests[1:]} == {"json_object_schema"}
    assert {q["body"]["model"] for q in requests} == {"gemma-3-270m"}
    proposals = store.proposals_for("local-llama/gemma-3-270m")
    assert len(proposals) == 30 and all(p.valid for p in proposals.values())
    assert "labelled 30 (30 valid" in r.out and "json_object+schema, confidence: logprobs" in r.out
    # a second run (another process, the same workspace) does not probe again
    add_questions(store, 5, prefix="later")
    before = len(fake.requests)
    assert run_cli("label", "--db", db_path, "--model", "local-llama/gemma-3-270m").code == 0
    assert [form_of(q) for q in chats(fake)[before:]] == ["json_object_schema"] * 5
    listed = run_cli("endpoints", "list", "--db", db_path)
    row = next(line for line in listed.out.splitlines() if line.startswith("local-llama"))
    assert "json_object+schema" in row and "logprobs" in listed.out


@pytest.mark.parametrize("profile, probes, confidence", [
    ("llama.cpp", ["json_schema"], "logprobs"),
    ("bare", ["json_schema", "json_object_schema", "json_object"], "none"),
    ("ollama", [], "none"),
    ("vllm", [], "logprobs"),
])
def test_each_server_kind_is_labelled_in_the_form_it_takes(store, server, profile, probes, confidence):
    from routelab.providers.openai.endpoints import new_endpoint

    fake = server(profile)
    store.save_endpoint(new_endpoint("ep", fake.base_url, api_key_env="EP_KEY"))
    add_questions(store, 12)
    router = registry.router(store, "ep/some-model", Settings(), backoff=0.01, seed=7)
    result = label(store, router, concurrency=4)
    assert result.labelled == 12 and result.valid == 12 and result.failed == 0 and result.retries == 0
    if profile in ("bare", "ollama"):  # logprobs, then seed, refused once each (400) before the format is read
        probes = ["json_schema"] * (1 + (profile == "bare")) + probes
    assert [form_of(q) for q in chats(fake)[:len(probes)]] == probes and len(chats(fake)) == 12 + len(probes)
    assert result.mode.endswith(f"confidence: {confidence}")
    job = store.job(result.job_id)
    assert job.result["confidence"] == confidence and job.params["endpoint"] == "ep"
    if profile == "bare":  # seed refused once (400), then never sent again, in this run or the next
        assert not any("seed" in q["body"] for q in chats(fake)[2:])
        add_questions(store, 2, prefix="again")
        before = len(fake.requests)
        label(store, registry.router(store, "ep/some-model", Settings(), seed=7))
        assert all("seed" not in q["body"] and form_of(q) == "prompt" for q in chats(fake)[before:])


def test_prose_answers_are_read_tolerantly(store, server):
    from routelab.providers.openai.endpoints import new_endpoint

    fake = server("bare")  # answers in prose with a fenced JSON block
    store.save_endpoint(new_endpoint("ep", fake.base_url, api_key_env="EP_KEY", declared={"structured": "prompt"}))
    add_questions(store, 5)
    from routelab.providers.openai.answers import parse_action

    names = set(store.action_names())
    got = [parse_action(text, None, names)[0] for text in
           ["get_payslip", "`book_holiday`.", 'I think {"action": "escalate"} fits.',
            "```json\n{\"action\": \"get_policy\"}\n```", "payslip or holiday, hard to say",
            '{"action": "not_listed"} or {"action": "get_policy"}']]
    assert got == ["get_payslip", "book_holiday", "escalate", "get_policy", None, None]
    # a declared form is used from the first request: no other form is tried (logprobs are refused once)
    result = label(store, registry.router(store, "ep/m", Settings()))
    assert result.valid == 5 and {form_of(q) for q in chats(fake)} == {"prompt"} and len(chats(fake)) == 5 + 1


def test_samples_where_the_server_ignores_n(store, server):
    from routelab.providers.openai.endpoints import new_endpoint

    fake = server("ollama")
    store.save_endpoint(new_endpoint("ep", fake.base_url, api_key_env="EP_KEY"))
    add_questions(store, 4)
    result = label(store, registry.router(store, "ep/m", Settings(), samples=3), concurrency=1)
    assert result.valid == 4 and result.mode.endswith("confidence: sampling agreement")
    assert all(p.confidence == 1.0 for p in store.proposals_for("ep/m").values())
    bodies = [q["body"] for q in chats(fake)]
    assert len(bodies) == 1 + 2 + 3 * 3  # asked n=3 once, got one answer: from then on 3 requests each
    assert sum("n" in b for b in bodies) == 1


# ---------------------------------------------------------------------------- ids, keys, commands


def test_model_ids_split_at_the_first_slash_and_unknown_prefixes_go_to_the_default(store, server, fake_openai):
    from routelab.providers.openai.endpoints import new_endpoint

    fake = server("vllm")
    store.save_endpoint(new_endpoint("vllm", fake.base_url, api_key_env="EP_KEY"))
    add_questions(store, 2)
    label(store, registry.router(store, "vllm/Qwen/Qwen3-8B", Settings()))
    assert {q["body"]["model"] for q in chats(fake)} == {"Qwen/Qwen3-8B"}
    label(store, registry.router(store, "Qwen/Qwen3-8B", Settings()))  # no endpoint "Qwen": the default one
    assert {q["body"]["model"] for q in chats(fake_openai)} == {"Qwen/Qwen3-8B"} and len(chats(fake)) == 2
    assert set(store.proposal_models()) == {"vllm/Qwen/Qwen3-8B", "Qwen/Qwen3-8B"}


def test_a_named_endpoint_never_gets_the_openai_key(store, db_path, server, run_cli, fake_openai):
    local = server("ollama", key_env="UNUSED_KEY")
    r = run_cli("endpoints", "add", "ollama", "--db", db_path, "--base-url", local.base_url)
    assert r.code == 0 and "no key sent" in r.out
    local.api_key = "no-key"  # what a keyless endpoint sends (the SDK insists on one)
    add_questions(store, 2)
    assert run_cli("label", "--db", db_path, "--model", "ollama/llama3.2").code == 0
    sent = {q["headers"].get("authorization") for q in local.requests}
    assert sent == {"Bearer no-key"} and fake_openai.api_key not in json.dumps(local.requests)


def test_an_unset_key_variable_is_one_line_before_anything_is_sent(store, db_path, server, run_cli, monkeypatch):
    fake = server("vllm", key_env="VLLM_KEY")
    add_endpoint(run_cli, db_path, "vllm", fake, "VLLM_KEY")
    monkeypatch.delenv("VLLM_KEY")
    add_questions(store, 2)
    r = run_cli("label", "--db", db_path, "--model", "vllm/m")
    assert r.code == 2 and r.err == "routelab: error: endpoint vllm needs its key in $VLLM_KEY, which is not set\n"
    assert fake.requests == []


@pytest.mark.parametrize("declare", [False, True])
def test_batch_on_an_endpoint_without_a_batch_api_says_so_before_sending(store, db_path, server, run_cli, declare):
    fake = server("vllm")
    add_endpoint(run_cli, db_path, "local-llama", fake, "EP_KEY", *(["--no-batch"] if declare else []))
    add_questions(store, 3)
    r = run_cli("label", "--db", db_path, "--model", "local-llama/m", "--batch")
    assert r.code == 2 and r.out == ""
    assert r.err == "routelab: error: endpoint local-llama has no Batch API; run `label` without --batch\n"
    # declared: nothing at all was sent; detected: one free listing request, no upload, no chat
    assert [(q["method"], q["path"]) for q in fake.requests] == ([] if declare else [("GET", "/v1/batches")])
    again = run_cli("label", "--db", db_path, "--model", "local-llama/m", "--batch")
    assert again.code == 2 and len(fake.requests) == (0 if declare else 1)  # remembered: not asked twice
    listed = json.loads(run_cli("endpoints", "list", "--db", db_path, "--json").out)
    batch = next(e for e in listed if e["name"] == "local-llama")["capabilities"]["batch"]
    assert batch == {"value": False, "source": "declared" if declare else "detected"}


@pytest.mark.parametrize("url, needle", [
    ("https://user:sk-secret1234567890@example.com/v1", "carries credentials"),
    ("https://example.com/v1?api-key=sk-secret1234567890", "query string"),
    ("ftp://example.com", "http(s) URL"),
])
def test_credentials_in_a_url_are_refused_and_nothing_is_stored(tmp_path, run_cli, url, needle):
    db = tmp_path / "new.db"
    r = run_cli("endpoints", "add", "x", "--db", db, "--base-url", url, "--api-key-env", "X_KEY")
    assert r.code == 2 and needle in r.err and "sk-secret" not in r.err + r.out
    assert not db.exists()


def test_a_key_passed_as_the_variable_name_is_refused(store, db_path, run_cli):
    r = run_cli("endpoints", "add", "x", "--db", db_path, "--base-url", "http://127.0.0.1:1/v1",
                "--api-key-env", "sk-proj-abcdefghijklmnop")
    assert r.code == 2 and "NAME of an environment variable" in r.err and "sk-proj" not in r.err
    assert store.endpoints() == []


def test_endpoints_remove(store, db_path, server, run_cli):
    fake = server("vllm")
    add_endpoint(run_cli, db_path, "vllm", fake)
    assert run_cli("endpoints", "remove", "vllm", "--db", db_path).code == 0
    assert store.endpoints() == []
    r = run_cli("endpoints", "remove", "vllm", "--db", db_path)
    assert r.code == 2 and "no endpoint 'vllm'" in r.err


# ---------------------------------------------------------------------------- Azure, generate, playground


def test_azure_endpoint_uses_deployments_api_version_and_the_api_key_header(store, db_path, server, run_cli):
    fake = server("azure", key_env="AZURE_OPENAI_KEY")
    r = run_cli("endpoints", "add", "az", "--db", db_path, "--kind", "azure", "--base-url", fake.azure_endpoint,
                "--api-key-env", "AZURE_OPENAI_KEY", "--api-version", "2024-10-21")
    assert r.code == 0, r
    add_questions(store, 4)
    r = run_cli("label", "--db", db_path, "--model", "az/my-gpt41-deployment")
    assert r.code == 0 and "labelled 4 (4 valid" in r.out, r
    paths = {q["path"] for q in chats(fake)}
    assert paths == {"/openai/deployments/my-gpt41-deployment/chat/completions"}
    assert set(fake.azure_api_versions) == {"2024-10-21"}
    assert all(q["headers"].get("api-key") == fake.api_key and "authorization" not in q["headers"]
               for q in chats(fake))


def test_generate_on_a_bare_server_probes_once_and_reads_the_questions(store, server):
    from routelab.providers.openai.endpoints import new_endpoint

    fake = server("bare")
    store.save_endpoint(new_endpoint("ep", fake.base_url, api_key_env="EP_KEY"))
    fake.generate = lambda messages: "Here you go:\n1. Where is my payslip?\n2. Can I see May's payslip?\n" \
                                     "3. Payslip missing overtime"
    result = generate(store, registry.generator(store, "ep/m", Settings()), per_action=3, actions=["get_payslip"])
    assert result.added == 3 and result.failed_requests == 0
    forms = [form_of(q) for q in chats(fake)]
    assert forms == ["json_schema", "json_object_schema", "json_object", "prompt"]


def test_the_playground_routes_a_named_endpoints_model_beside_the_default(store, server, fake_openai):
    from routelab.providers.openai.endpoints import new_endpoint

    fake = server("llama.cpp")
    store.save_endpoint(new_endpoint("local-llama", fake.base_url, api_key_env="EP_KEY"))
    attempt = Playground(store).route("where is my payslip", ["local-llama/gemma", "gpt-4.1"])
    by_model = {r.model: r for r in attempt.results}
    assert by_model["local-llama/gemma"].action == "get_payslip" and by_model["gpt-4.1"].action == "get_payslip"
    assert {q["body"]["model"] for q in chats(fake)} == {"gemma"}
    assert {q["body"]["model"] for q in chats(fake_openai)} == {"gpt-4.1"}


# ---------------------------------------------------------------------------- fine-tuning on an endpoint


def test_finetune_on_an_endpoint_without_the_api_says_so_before_uploading(demo_store, server, run_cli):
    fake = server("vllm")
    db = demo_store.path
    add_endpoint(run_cli, db, "vllm", fake)
    r = run_cli("finetune", "--db", db, "--provider", "openai", "--base-model", "vllm/Qwen/Qwen3-0.6B", "--yes")
    assert r.code == 2
    assert r.err.endswith("endpoint vllm has no Files API; fine-tune with --provider local, or on an endpoint "
                          "that has it\n") and len(r.err.splitlines()) == 1
    assert [(q["method"], q["path"]) for q in fake.requests] == [("GET", "/v1/files")]  # nothing uploaded
    assert demo_store.jobs(kind="finetune") == []  # refused before any job (or export) was made


def test_finetune_on_azure_then_route_with_the_model_it_made(demo_store, server, run_cli):
    fake = server("azure", key_env="AZURE_OPENAI_KEY")
    db = demo_store.path
    r = run_cli("endpoints", "add", "az", "--db", db, "--kind", "azure", "--base-url", fake.azure_endpoint,
                "--api-key-env", "AZURE_OPENAI_KEY")
    assert r.code == 0, r
    r = run_cli("finetune", "--db", db, "--provider", "openai", "--base-model", "az/gpt-4.1-mini-2025-04-14",
                "--suffix", "hr", "--yes", "--wait", "--interval", "0.01")
    assert r.code == 0, r
    assert "succeeded: model az/ft:gpt-4.1-mini-2025-04-14:hr:" in r.out
    [job] = demo_store.jobs(kind="finetune")
    assert job.params["endpoint"]["name"] == "az" and "key" not in json.dumps(job.params["endpoint"]).replace(
        "api_key_env", "")
    assert fake.jobs[job.remote_id]["model"] == "gpt-4.1-mini-2025-04-14"
    assert {q["path"] for q in fake.requests} >= {"/openai/files", "/openai/fine_tuning/jobs"}
    model = job.result["fine_tuned_model"]
    assert demo_store.trained_model(model).base == "az/gpt-4.1-mini-2025-04-14"
    before = len(fake.requests)
    r = run_cli("route", "--db", db, "I need my payslip", "--model", model)
    assert r.code == 0, r
    assert [q["path"] for q in fake.requests[before:]] == [f"/openai/deployments/{model[3:]}/chat/completions"]


def test_the_jobs_service_follows_an_endpoint_job_and_its_model_opens_in_the_playground(demo_store, server, run_cli):
    """What the Jobs pane does (through the services): poll the job where it runs, open its model."""
    from routelab.services.jobs import JobService

    fake = server("azure", key_env="AZURE_OPENAI_KEY")
    db = demo_store.path
    assert run_cli("endpoints", "add", "az", "--db", db, "--kind", "azure", "--base-url", fake.azure_endpoint,
                   "--api-key-env", "AZURE_OPENAI_KEY").code == 0
    assert run_cli("finetune", "--db", db, "--provider", "openai", "--base-model", "az/gpt-4.1-mini-2025-04-14",
                   "--yes").code == 0
    [job] = demo_store.jobs(kind="finetune")
    service = JobService(demo_store, Settings())
    for _ in range(20):
        job = service.poll(job)
        if job.status.terminal:
            break
    assert job.status == "succeeded" and job.result["fine_tuned_model"].startswith("az/ft:")
    assert all(q["path"].startswith("/openai/") for q in fake.requests)
    attempt = Playground(demo_store).route("can I book Friday off", [job.result["fine_tuned_model"]])
    assert attempt.results[0].error is None and attempt.results[0].valid


def test_the_default_endpoint_falls_back_too(store, fake_openai):
    """OPENAI_BASE_URL pointing at llama.cpp's server (the issue's report): labelled, one probe, no retries."""
    fake_openai.use_profile("llama.cpp")
    add_questions(store, 10)
    result = label(store, registry.router(store, "gemma", Settings()), concurrency=8)
    assert result.valid == 10 and result.retries == 0 and len(chats(fake_openai)) == 11
    assert store.job(result.job_id).result["refused_forms"] == ["json_schema"]


def test_a_wrong_key_names_the_variable_not_the_key(store, db_path, server, run_cli, monkeypatch):
    fake = server("vllm", key_env="VLLM_KEY")
    add_endpoint(run_cli, db_path, "vllm", fake, "VLLM_KEY")
    monkeypatch.setenv("VLLM_KEY", "sk-wrong-0123456789abcdefghij")
    add_questions(store, 3)
    r = run_cli("label", "--db", db_path, "--model", "vllm/m")
    assert r.code == 1 and "check $VLLM_KEY (endpoint vllm)" in r.err and "sk-wrong" not in r.err + r.out
