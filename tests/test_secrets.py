"""Secrets never reach the workspace, stdout or stderr (issue 11: "Secrets").

The worst cases, for real over HTTP: a captive portal that answers 200 with a page echoing
the request's Authorization header, and a base URL carrying user:password@. Keys are built
at run time (nothing key-shaped is committed) and looked for in every output and in the raw
bytes of the SQLite file and its WAL.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from pathlib import Path

import pytest

from routelab import redaction
from routelab.cli.output import SafeStream
from routelab.domain import Job, JobEvent, JobStatus
from tests.fake_openai import FakeOpenAI


def realistic_key() -> str:
    """Shaped like an OpenAI project key, random every run."""
    return "sk-proj-" + secrets.token_urlsafe(60)


def workspace_bytes(db: Path) -> bytes:
    return b"".join(Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal") if Path(f"{db}{suffix}").exists())


def assert_absent(fragments: list[str], texts: list[str], db: Path) -> None:
    raw = workspace_bytes(db)
    for fragment in fragments:
        for text in texts:
            assert fragment not in text, f"{fragment!r} shown: {text[:400]!r}"
        assert fragment.encode() not in raw, f"{fragment!r} stored in the workspace"


class BasicAuthFake(FakeOpenAI):
    """A server behind an auth proxy: accepts the Basic credentials of a user:password@ base URL
    (httpx sends them instead of the bearer key) as if they were the key."""

    def _respond(self, method, path, query, headers, raw, body):
        if headers.get("authorization", "").startswith("Basic "):
            headers = {**headers, "authorization": f"Bearer {self.api_key}"}
        return super()._respond(method, path, query, headers, raw, body)


@pytest.fixture
def portal(monkeypatch):
    """A fake endpoint with a realistic key that answers every request with a page echoing it."""
    key = realistic_key()
    server = FakeOpenAI(api_key=key).start()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    server.garbage_200 = True
    yield server
    server.stop()


def test_a_captive_portal_echoing_the_key_gets_it_neither_stored_nor_shown(demo_store, portal, run_cli):
    db, key = demo_store.path, portal.api_key
    label = run_cli("--db", db, "label", "--provider", "openai", "--limit", "3", "--yes")
    generate = run_cli("--db", db, "generate", "--per-action", "1", "--yes")
    listed = run_cli("--db", db, "jobs", "list", "--json")
    shown = run_cli("--db", db, "jobs", "show", "1", "--json")
    assert label.code == 1 and generate.code == 1 and listed.code == 0, (label, generate, listed)
    jobs = json.loads(listed.out)
    events = [e.message for j in jobs for e in demo_store.job_events(j["id"])]
    texts = [r.out + r.err for r in (label, generate, listed, shown)] + events
    assert_absent([key, key[8:20], "sk-proj-", "Bearer sk"], texts, Path(db))
    # the failure is still explained, naming the endpoint
    assert "not JSON" in label.err and f"127.0.0.1:{portal.port}" in label.err
    assert "not JSON" in generate.err
    ours = [j for j in jobs if j["provider"] == "openai"]
    assert sorted(j["kind"] for j in ours) == ["generate", "label"] and all(j["error"] for j in ours)
    assert any("not JSON" in m for m in events)


def test_a_password_in_the_base_url_is_neither_stored_nor_shown(demo_store, run_cli, monkeypatch):
    key, password = realistic_key(), "pw" + secrets.token_hex(10)
    fake = BasicAuthFake(api_key=key).start()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", key)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url.replace("http://", f"http://alice:{password}@"))
        db = demo_store.path
        refused = run_cli("--db", db, "finetune", "--provider", "openai", "--yes", "--base-model", "no-such-base")
        listed = run_cli("--db", db, "jobs", "list", "--json")
        # the portal again, this time echoing the Basic credentials the URL turned into
        fake.garbage_200 = True
        label = run_cli("--db", db, "label", "--provider", "openai", "--limit", "2", "--yes")
        basic = base64.b64encode(f"alice:{password}".encode()).decode()
        texts = [r.out + r.err for r in (refused, listed, label)]
        assert_absent([password, basic[:8], "alice:", key[8:20]], texts, Path(db))
        assert refused.code == 1 and "not available for fine-tuning" in refused.err, refused
        [job] = [j for j in json.loads(listed.out) if j["kind"] == "finetune"]
        assert job["status"] == "failed" and "not available for fine-tuning" in job["error"]
        assert label.code == 1 and f"http://127.0.0.1:{fake.port}/v1" in label.err, label
    finally:
        fake.stop()


# ---------------------------------------------------------------------------- the choke point


def test_the_store_redacts_what_jobs_record(store):
    secret = "routelab-test-" + secrets.token_hex(12)
    redaction.register_secret(secret)
    bearer = "Bearer tok-" + secrets.token_urlsafe(24)
    job = store.create_job(Job(kind="label", provider="openai", status=JobStatus.RUNNING,
                               error=f"first {secret}", result={"note": [f"x {bearer}"]}))
    store.update_job(job.id, error=f"said {secret} and {bearer} via http://bob:hunter22@example.com/v1",
                     result={"page": f"api-key: {secret}", "n": 3})
    store.add_job_events([JobEvent(job_id=job.id, message=f"echo {bearer} {secret}", data={"raw": secret})])
    stored = store.job(job.id)
    [event] = store.job_events(job.id)
    assert stored.error == "said *** and Bearer *** via http://example.com/v1"
    assert stored.result == {"page": "api-key: ***", "n": 3}
    assert event.message == "echo Bearer *** ***" and event.data == {"raw": "***"}
    assert_absent([secret, bearer.split()[1], "hunter22"], [], Path(store.path))


def test_the_cli_streams_redact_everything_printed(capsys):
    secret = "routelab-test-" + secrets.token_hex(12)
    redaction.register_secret(secret)
    stream = SafeStream(sys.stdout)
    stream.write(f"key {secret}; url https://u:p4ss@host.example/v1?x=1\n")
    stream.write("\r\x1b[K" + f"progress {secret}")
    assert capsys.readouterr().out == "key ***; url https://host.example/v1?x=1\n\r\x1b[Kprogress ***"


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def-ghi_123456", "Authorization: Bearer ***"),
    ("api-key: 0123456789abcdefXYZ", "api-key: ***"),
    ('{"api_key": "abc123def456ghi7"}', '{"api_key": "***"}'),
    ("x-api-key=QWERTY123456uiop&n=2", "x-api-key=***&n=2"),
    ("sk-" + "a1B2" * 6, "***"),
    ("use sk-proj-" + "Zz9_" * 5 + " now", "use *** now"),
    ("ghp_" + "a1B2c3D4" * 4, "***"),
    ("Basic YWxpY2U6c2VjcmV0MTIz", "Basic ***"),
    ("token " + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF", "token ***"),
    ("see http://user:pw@host:8000/v1 now", "see http://host:8000/v1 now"),
])
def test_key_like_text_is_redacted(text, expected):
    assert redaction.redact(text) == expected


@pytest.mark.parametrize("text", [
    "a basic question about bearer bonds and tokens 412k",
    "sha256 " + "0123456789abcdef" * 4,
    "ft:gpt-4.1-mini-2025-04-14:routelab:hr:AbC123xY",
    "ftjob-AbCdEfGhIjKlMnOpQrStUvWx and file-AbCdEfGhIjKlMnOpQrStUv",
    "/home/user/Exports/My_Project_Export_2025_version_final/train.jsonl",
    "I forgot my password: can you reset it?",
    "https://api.openai.com/v1",
])
def test_ordinary_text_is_kept(text):
    assert redaction.redact(text) == text
