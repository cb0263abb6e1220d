"""The review session service the Review pane calls (real workspaces on disk, no app)."""

from __future__ import annotations

from routelab.config import settings as load_settings
from routelab.domain import DecisionKind, ExampleFilter, NewExample, Status
from routelab.services.formatting import fmt_acc, fmt_improvement, fmt_latency, fmt_route_cost
from routelab.services.review_session import ReviewSession
from routelab.services.workspace import Workspace
from routelab.store import Store
from tests.test_tui_review import seed

UNREVIEWED = ExampleFilter(status=Status.UNREVIEWED)


def test_decide_undo_and_the_newest_decision_elsewhere(store, db_path):
    ids = seed(store)
    session = ReviewSession.open(db_path, load_settings())
    try:
        assert session.teacher == "gpt-4.1"
        assert session.detail(session.example(ids[0])).best.model == "gpt-4.1"
        decided = session.decide(ids[0], DecisionKind.ACCEPT, "get_payslip", "gpt-4.1")
        assert decided.example.status == Status.REVIEWED and decided.example.label == "get_payslip"
        assert not session.belongs(UNREVIEWED, decided.example, was_member=True)
        session.decide(ids[1], DecisionKind.SKIP)
        assert session.newest_step_size() == 1
        undone = session.undo()
        assert undone.example.id == ids[1] and undone.before == Status.SKIPPED
        assert undone.example.status == Status.UNREVIEWED
        undone = session.undo()
        assert undone.example.id == ids[0] and undone.example.label is None
        # nothing of this session left: the newest decision in the workspace (made elsewhere)
        with Store.open(db_path) as other:
            other.decide(ids[2], DecisionKind.FLAG)
        undone = session.undo()
        assert undone.example.id == ids[2] and undone.before is None
        assert session.undo() is None
    finally:
        session.close()


def test_bulk_accept_is_one_step(store, db_path):
    ids = seed(store)
    session = ReviewSession.open(db_path, load_settings())
    try:
        assert session.bulk_models() == ["gpt-4.1", "local"]
        assert session.fresh_count_bulk(UNREVIEWED, "gpt-4.1", 0.9) == 4
        result = session.bulk_accept(UNREVIEWED, "gpt-4.1", 0.9)
        assert result.accepted == 4 and session.newest_step_size() == 4
        assert session.fresh_status_counts() == {"unreviewed": 4, "reviewed": 4}
        undone = session.undo_bulk()
        assert undone.decisions == 4 and undone.example.id == ids[0]
        assert session.fresh_status_counts() == {"unreviewed": 8}
        assert session.newest_step_size() == 0
    finally:
        session.close()


def test_outside_changes_and_the_opening_filter(store, db_path):
    ids = seed(store, held_out=True)
    session = ReviewSession.open(db_path, load_settings())
    try:
        assert session.opening_filter() == (UNREVIEWED.guarded(), None)
        assert not session.changed_outside()
        with Store.open(db_path) as other:  # another process labels everything
            for i in ids:
                other.decide(i, DecisionKind.OVERRIDE, "escalate")
        assert session.changed_outside() and not session.changed_outside()
        overview = session.fresh_overview(ExampleFilter(), ids[3])  # the two test questions held out
        assert overview.count == 6 and overview.position == 2 and overview.counts == {"reviewed": 8}
        overview = session.fresh_overview(ExampleFilter(split="test"), ids[6])  # unless named
        assert overview.count == 2 and overview.position == 1
        # nothing unreviewed: the labels the teacher disagrees with
        flt, why = session.opening_filter()
        assert flt == ExampleFilter(conflict=True, model="gpt-4.1").guarded() and "teacher" in why
        session.look_again()
        assert session.changed_outside()
    finally:
        session.close()


def test_workspace_reads_settings_once_and_opens_a_connection_per_call(demo_store, monkeypatch):
    ws = Workspace.at(demo_store.path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-set-after-the-workspace-was-opened")
    assert ws.teacher_label() == "local" and ws.default_trainer() == "local"  # read once, at open
    overview = ws.evaluation_overview()
    assert overview.rows == [] and overview.labelled == 60 and overview.offline
    monitor = ws.job_monitor()
    assert monitor.poll(None, 0).jobs[0].kind == "label"  # the demo's labelling run
    monitor.close()
    ws.close()


def test_bad_setting_is_bad_input(db_path, monkeypatch):
    import pytest

    from routelab.domain import BadInput

    monkeypatch.setenv("ROUTELAB_SPEND_LIMIT", "lots")
    with pytest.raises(BadInput, match="spend_limit"):
        Workspace.at(db_path)


def test_one_format_for_cli_and_app():
    cell = {"n": 10, "accuracy": 0.8, "ci_low": 0.4902, "ci_high": 0.9433}
    assert fmt_acc(cell) == "0.80 [0.49–0.94]"
    assert fmt_acc(cell, compact=True) == "0.80 [.49–.94]"  # the app fits five models in 120 columns
    imp = {"delta": 0.35, "ci_low": -0.05, "ci_high": 0.49}
    assert fmt_improvement(imp, False) == "+0.35 [-0.05–+0.49]"
    assert fmt_improvement(imp, False, compact=True) == "+0.35 [-.05–+.49]"
    assert fmt_improvement(None, True) == "base"
    assert fmt_latency(0.12, 31.4) == "0.12 / 31 ms" and fmt_latency(0.12, 31.4, compact=True) == "0.12/31"
    assert fmt_route_cost(0.0) == "free" and fmt_route_cost(0.0, tokens=10) == "$0"


def test_workspace_hands_out_a_review_session(db_path):
    with Store.open(db_path) as s:
        s.add_examples([NewExample(text="only one")])
    session = Workspace.at(db_path).review_session()
    assert session.page(UNREVIEWED, limit=5)[0].text == "only one"
    session.close()
