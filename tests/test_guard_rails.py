"""Guard rails an operator relies on (issue 11: "Misleading answers"): a question made only of
separators is no question, a second paid fine-tune on the very same data is asked about
first, and skipping or flagging a human label says it leaves the training data."""

from __future__ import annotations

import io
import json
import sys

import pytest

from routelab.domain import DecisionKind, JobStatus

# ---------------------------------------------------------------------------- route ' | | '


@pytest.mark.parametrize("raw", ["", "   ", " | | ", "|", " | ", "| | |", " |  | "])
def test_route_refuses_a_question_of_nothing_but_separators(demo_store, run_cli, raw):
    r = run_cli("--db", demo_store.path, "route", raw, "--model", "local")
    assert r.code == 2 and "type a question" in r.err and r.out == "", r


def test_a_trailing_separator_leaves_the_question():
    from routelab.services.playground import parse_question

    assert parse_question("where is my payslip | | ") == ("where is my payslip", None)
    assert parse_question("a || b") == ("a || b", None)  # only ' | ' separates turns


# ---------------------------------------------------------------------------- finetune twice


def _finetunes(run_cli, db):
    r = run_cli("--db", db, "jobs", "list", "--json")
    return [j for j in json.loads(r.out) if j["kind"] == "finetune"]


class _Terminal(io.StringIO):
    """Standard input at a terminal, answering the question with what it was given."""

    def isatty(self) -> bool:
        return True


def test_a_second_paid_finetune_on_the_same_data_is_asked_about(demo_store, fake_openai, run_cli, monkeypatch):
    db = demo_store.path
    first = run_cli("--db", db, "finetune", "--provider", "openai")
    assert first.code == 0, first
    [job] = _finetunes(run_cli, db)
    uploads = len(fake_openai.files)

    # in a script without --yes: one line naming the job, exit 2, nothing started
    again = run_cli("--db", db, "finetune", "--provider", "openai")
    assert again.code == 2, again
    [line] = again.err.strip().splitlines()
    assert f"job {job['id']}" in line and "this exact data" in line and "--yes" in line
    assert len(_finetunes(run_cli, db)) == 1 and len(fake_openai.files) == uploads and len(fake_openai.jobs) == 1

    # at a terminal: asked, and "no" starts nothing
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    asked = run_cli("--db", db, "finetune", "--provider", "openai")
    assert asked.code == 2 and f"job {job['id']}" in asked.err and "this exact data" in asked.err, asked
    assert len(fake_openai.jobs) == 1

    # --yes: a second job, on purpose
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    yes = run_cli("--db", db, "finetune", "--provider", "openai", "--yes")
    assert yes.code == 0 and len(fake_openai.jobs) == 2, yes


def test_a_failed_finetune_does_not_count_as_trained(demo_store, fake_openai, run_cli):
    db = demo_store.path
    fake_openai.ft_fail_validation = True
    failed = run_cli("--db", db, "finetune", "--provider", "openai", "--wait", "--interval", "0.01")
    assert failed.code == 1 and _finetunes(run_cli, db)[0]["status"] == "failed", failed
    fake_openai.ft_fail_validation = False
    retry = run_cli("--db", db, "finetune", "--provider", "openai")
    assert retry.code == 0 and "exact data" not in retry.err, retry


def test_the_plan_names_the_earlier_job_on_the_same_data_and_base(demo_store, fake_openai):
    from routelab.config import settings
    from routelab.services.finetune import FinetuneOptions, duplicate_line, plan_finetune, start_finetune

    plan = plan_finetune(demo_store, FinetuneOptions(provider="openai"), settings())
    assert plan.earlier is None and duplicate_line(plan) is None
    job = start_finetune(demo_store, plan, settings())
    again = plan_finetune(demo_store, FinetuneOptions(provider="openai"), settings())
    assert again.earlier is not None and again.earlier.id == job.id
    assert f"job {job.id}" in duplicate_line(again)
    other_base = plan_finetune(demo_store, FinetuneOptions(provider="openai", base_model="gpt-4.1-nano-2025-04-14"),
                               settings())
    assert other_base.earlier is None  # another base model is another experiment
    demo_store.update_job(job.id, status=JobStatus.CANCELLED)
    assert plan_finetune(demo_store, FinetuneOptions(provider="openai"), settings()).earlier is None


# ---------------------------------------------------------------------------- s / f on a human label


@pytest.fixture
def imported(store, run_cli, tmp_path):
    csv = tmp_path / "labelled.csv"
    csv.write_text("text,label\nwhere is my payslip,get_payslip\nbook me a day off,book_holiday\n")
    r = run_cli("--db", store.path, "import", csv, "--source", "hr-tickets")
    assert r.code == 0, r
    return {e.text: e for e in store.page(limit=10)}


@pytest.mark.parametrize("kind", [DecisionKind.SKIP, DecisionKind.FLAG])
def test_skipping_or_flagging_an_imported_label_says_it_leaves_training(store, imported, kind):
    from routelab.services.review import decide

    ex = imported["where is my payslip"]
    assert ex.label == "get_payslip" and ex.status == "reviewed"
    done = decide(store, ex.id, kind)
    assert done.decision.kind == kind and done.decision.id is not None
    assert done.notice is not None
    assert "imported label get_payslip" in done.notice and "training" in done.notice and "u" in done.notice
    assert store.example(ex.id).status == ("skipped" if kind == DecisionKind.SKIP else "flagged")


def test_no_notice_where_nothing_is_lost(store, imported):
    from routelab.domain import NewExample
    from routelab.services.review import decide

    ex = imported["book me a day off"]
    assert decide(store, ex.id, DecisionKind.OVERRIDE, "get_policy").notice is None  # relabelled, still trained on
    done = decide(store, ex.id, DecisionKind.SKIP)  # the operator's own label, not the import's
    assert done.notice is not None and "label get_policy" in done.notice and "imported" not in done.notice
    new = NewExample(text="is the canteen open on sundays")
    store.add_examples([new])
    unlabelled = store.example_id_by_hash(new.hash)
    assert decide(store, unlabelled, DecisionKind.SKIP).notice is None  # no human label: nothing leaves training


async def test_the_review_pane_says_a_skip_leaves_an_imported_label_out(store, imported):
    """Where the key is pressed: the app shows the notice (a skipped import is not silently lost)."""
    from routelab.domain import ExampleFilter
    from routelab.tui.app import RoutelabApp
    from routelab.tui.panes.review import ReviewPane

    ex = imported["where is my payslip"]
    store.close()
    app = RoutelabApp(store.path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        pane = app.query_one(ReviewPane)
        for _ in range(100):
            if pane.session is not None:
                break
            await pilot.pause(0.02)
        pane.set_filter(ExampleFilter(ids=(ex.id,)))
        for _ in range(100):
            if pane.shown is not None and pane.shown.id == ex.id:
                break
            await pilot.pause(0.02)
        await pilot.press("s")
        await pilot.pause(0.1)
        said = [str(n.message) for n in app._notifications]
        assert any("imported label get_payslip is left out of training" in m for m in said), said
