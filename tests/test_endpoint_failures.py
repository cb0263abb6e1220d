"""A failed request is an error naming the endpoint, never an invalid answer (issue 11: "Misleading answers").

Real HTTP throughout: a port nothing listens on, the fake server with a bogus key, a fake
that hangs (`latency`), and a captive portal answering the fine-tuning API with a page.
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from routelab.services.playground import Playground
from tests.fake_openai import FakeOpenAI

QUESTION = "where is my payslip"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nowhere(monkeypatch) -> str:
    """OPENAI_BASE_URL pointing at a port nothing listens on; returns its host:port."""
    port = closed_port()
    monkeypatch.setenv("OPENAI_API_KEY", "routelab-test-key-0001")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    return f"127.0.0.1:{port}"


def test_route_to_an_unreachable_endpoint_is_an_error_naming_it(demo_store, run_cli, nowhere):
    r = run_cli("--db", demo_store.path, "route", QUESTION, "--model", "gpt-4.1", "--json")
    assert r.code == 1, r
    [route] = json.loads(r.out)["routes"]
    assert route["action"] is None and not route["valid"] and route["cost"] == 0
    assert route["error"] and f"http://{nowhere}/v1" in route["error"] and "refused" in route["error"].lower()
    assert "gave up after 3 tries" in route["error"]  # nothing listens there: said soon, not after six tries
    assert r.err.splitlines() == [f"routelab: error: gpt-4.1: {route['error']}"]  # one line: where and why
    r = run_cli("--db", demo_store.path, "route", QUESTION, "--model", "gpt-4.1,local")
    assert r.code == 1 and "(invalid)" not in r.out, r
    [line] = [ln for ln in r.err.splitlines() if ln.startswith("routelab: error: gpt-4.1:")]
    assert f"cannot connect to http://{nowhere}/v1" in line
    assert "get_payslip" in r.out  # the local router still answered


def test_route_with_a_bogus_key_is_an_error_naming_the_endpoint(demo_store, run_cli, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "routelab-bogus-key-0002")
    r = run_cli("--db", demo_store.path, "route", QUESTION, "--model", "gpt-4.1", "--json")
    assert r.code == 1, r
    [route] = json.loads(r.out)["routes"]
    assert route["action"] is None and "401" in route["error"] and f"127.0.0.1:{fake_openai.port}" in route["error"]


def test_the_playground_reports_a_failed_request_as_an_error(demo_store, nowhere):
    attempt = Playground(demo_store).route(QUESTION, ["gpt-4.1", "local"])
    failed, local = attempt.results
    assert failed.error and nowhere in failed.error and failed.action is None and not failed.valid
    assert local.error is None and local.action == "get_payslip"


def test_a_hung_server_fails_a_request_after_two_timeouts(demo_store, run_cli, fake_openai):
    fake_openai.latency = 1.5
    r = run_cli("--db", demo_store.path, "label", "--provider", "openai", "--limit", "1", "--timeout", "0.3", "--yes")
    assert r.code == 1, r
    chats = [q for q in fake_openai.requests if q["path"] == "/v1/chat/completions"]
    assert len(chats) == 2
    assert "timed out" in r.err and f"http://127.0.0.1:{fake_openai.port}/v1" in r.err


class PortalOnFineTuning(FakeOpenAI):
    """Files go up; creating or reading a fine-tuning job is answered by a captive portal's page."""

    portal_on = ("POST", "/v1/fine_tuning/jobs")

    def _respond(self, method, path, query, headers, raw, body):
        if (method, path) == self.portal_on or (self.garbage_200 and path.startswith("/v1/fine_tuning")):
            return self._portal_page(method, path, headers)
        return super()._respond(method, path, query, headers, raw, body)

    def _portal_page(self, method, path, headers):
        from tests.fake_openai import _Resp

        echoed = "".join(f"<li>{k}: {v}</li>" for k, v in headers.items())
        return _Resp(200, f"<html><p>{method} {path}</p><ul>{echoed}</ul></html>".encode(), content_type="text/html")


@pytest.fixture
def ft_portal(monkeypatch):
    server = PortalOnFineTuning(api_key="routelab-test-key-0003").start()
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    yield server
    server.stop()


def _finetunes(run_cli, db):
    return [j for j in json.loads(run_cli("--db", db, "jobs", "list", "--json").out) if j["kind"] == "finetune"]


def test_a_portal_answering_the_job_creation_fails_the_job_in_one_line(demo_store, run_cli, ft_portal):
    db = demo_store.path
    r = run_cli("--db", db, "finetune", "--provider", "openai", "--yes")
    assert r.code == 1, r
    errors = [ln for ln in r.err.splitlines() if ln.startswith("routelab: error:")]
    assert len(errors) == 1 and not re.search(r"\w+Error\b", errors[0]), r.err  # no AttributeError, TypeError...
    assert "not JSON" in errors[0] and f"http://127.0.0.1:{ft_portal.port}/v1" in errors[0]
    [job] = _finetunes(run_cli, db)
    assert job["status"] == "failed" and job["remote_id"] is None and "not JSON" in job["error"]
    watch = run_cli("--db", db, "jobs", "watch", str(job["id"]), "--interval", "0.01")
    assert watch.code == 1 and "internal error" not in watch.err and "failed" in watch.err, watch


def test_watching_a_job_through_a_portal_says_so_and_leaves_the_job(demo_store, run_cli, ft_portal):
    db = demo_store.path
    ft_portal.portal_on = ()
    r = run_cli("--db", db, "finetune", "--provider", "openai", "--yes")
    assert r.code == 0, r
    [job] = _finetunes(run_cli, db)
    ft_portal.garbage_200 = True
    watch = run_cli("--db", db, "jobs", "watch", str(job["id"]), "--interval", "0.01")
    assert watch.code == 1 and "internal error" not in watch.err, watch
    last = watch.err.strip().splitlines()[-1]
    assert last.startswith("routelab: error:") and "not JSON" in last and f"127.0.0.1:{ft_portal.port}" in last
    assert f"job {job['id']} is still" in last
    [after] = _finetunes(run_cli, db)
    assert after["status"] == job["status"]  # it runs at the provider: a view's trouble does not end it


async def test_the_playground_pane_shows_the_failed_request_not_an_invalid_free_answer(demo_store, nowhere):
    from textual.widgets import DataTable, Input

    from tests.test_playground import PaneApp, _settle

    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        app.query_one("#pg-input", Input).value = QUESTION
        app.query_one("#pg-input", Input).focus()
        await pilot.press("enter")
        await _settle(app, pilot)
        results = app.query_one("#pg-results", DataTable)
        rows = {str(r[0]): [str(c) for c in r] for r in (results.get_row_at(i) for i in range(results.row_count))}
    model, action, *_, cost, error = rows["gpt-4.1"]
    assert action == "error" and cost not in ("free", "$0") and nowhere in error
