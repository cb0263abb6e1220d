"""Trying routers: `routelab route`, the playground service, and the Playground pane (Pilot)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input, SelectionList

from routelab.config import Settings
from routelab.domain import BadInput
from routelab.services.evaluation import ZERO_SHOT
from routelab.services.formatting import fmt_route_cost
from routelab.services.playground import Playground, RouteResult, parse_question
from routelab.services.workspace import Workspace
from routelab.store import ExampleFilter
from routelab.tui.panes.playground import PlaygroundPane

STYLES = Path(__file__).resolve().parent.parent / "styles"
FT = "ft:gpt-4.1-mini-2025-04-14:routelab:abc"
INJECTION = "[@click=app.quit]x[/] [bold where is my payslip"


def test_parse_question_conversation():
    assert parse_question("  where is my payslip ") == ("where is my payslip", None)
    text, conv = parse_question("I need a day off | Sure, which day? | next Friday")
    assert text == "next Friday"
    assert [(m.role, m.content) for m in conv] == [("user", "I need a day off"), ("assistant", "Sure, which day?")]
    text, conv = parse_question("Which day? | Friday")
    assert [(m.role, m.content) for m in conv] == [("assistant", "Which day?")]
    assert parse_question("a|b") == ("a|b", None)  # only ' | ' separates turns
    with pytest.raises(BadInput):
        parse_question("  |  ")


def test_route_cli_local_models(demo_store, run_cli):
    r = run_cli("--db", demo_store.path, "route", "Can I get a copy of my payslip for May?", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert [x["model"] for x in doc["routes"]] == [ZERO_SHOT, "local"]
    for x in doc["routes"]:
        assert x["action"] == "get_payslip" and x["code"] == 3 and x["valid"]
        assert 0 < x["confidence"] <= 1 and x["latency_ms"] >= 0 and x["cost"] == 0
    r = run_cli("--db", demo_store.path, "route", "I need a day off | Which day? | next Friday", "--model", "local")
    assert r.code == 0, r.err
    assert "book_holiday" in r.out and "local" in r.out and "confidence" in r.out
    r = run_cli("--db", demo_store.path, "route", "  ")
    assert r.code == 2 and "type a question" in r.err
    r = run_cli("--db", demo_store.path, "route", "hello", "--model", "no-such-model")
    assert r.code == 1 and "no-such-model" in r.err


def test_route_cli_openai_side_by_side(demo_store, run_cli, fake_openai):
    r = run_cli("--db", demo_store.path, "route", "where is my payslip", "--model", f"gpt-4.1,{FT},local", "--json")
    assert r.code == 0, r.err
    routes = {x["model"]: x for x in json.loads(r.out)["routes"]}
    assert set(routes) == {"gpt-4.1", FT, "local"}
    assert routes["gpt-4.1"]["action"] == "get_payslip"  # the fake answers by word overlap
    assert routes["gpt-4.1"]["cost"] > routes[FT]["cost"] > 0
    assert routes["gpt-4.1"]["confidence"] == pytest.approx(0.9)
    assert fake_openai.api_key not in r.out + r.err


def test_playground_save_stores_question_and_routes(demo_store):
    pg = Playground(demo_store, Settings())
    attempt = pg.route("I need a day off | Which day? | next Friday", [ZERO_SHOT, "local"])
    assert all(r.error is None and r.action for r in attempt.results)
    example_id = pg.save(attempt)
    ex = demo_store.example(example_id)
    assert (ex.source, ex.split, ex.text, ex.status) == ("playground", "unassigned", "next Friday", "unreviewed")
    assert [m.role for m in ex.conversation] == ["user", "assistant"]
    assert {p.model for p in demo_store.proposals(example_id)} == {ZERO_SHOT, "local"}
    assert pg.save(pg.route("I need a day off | Which day? | next Friday", ["local"])) == example_id  # no duplicate
    assert demo_store.count(ExampleFilter(source="playground")) == 1


class PaneApp(App):
    CSS_PATH = [STYLES / "app.tcss", STYLES / "playground.tcss"]

    def __init__(self, db_path):
        super().__init__()
        self.db_path = db_path

    def compose(self) -> ComposeResult:
        yield PlaygroundPane(Workspace.at(self.db_path))


async def _settle(app, pilot):
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def test_playground_pane_routes_saves_and_stays_literal(demo_store):
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(PlaygroundPane)
        await _settle(app, pilot)
        assert pane.ready and pane.selected_models() == [ZERO_SHOT, "local"]
        app.query_one("#pg-input", Input).focus()
        await pilot.press(*"where is my payslip")
        await pilot.press("enter")
        await _settle(app, pilot)
        results = app.query_one("#pg-results", DataTable)
        assert results.row_count == 2
        rows = [[str(c) for c in results.get_row_at(i)] for i in range(2)]
        assert [r[0] for r in rows] == [ZERO_SHOT, "local"]
        assert all(r[1] == "get_payslip" for r in rows)

        # untrusted text is shown literally: no action link, no markup error, app still up
        app.query_one("#pg-input", Input).value = INJECTION
        await pilot.press("enter")
        await _settle(app, pilot)
        history = app.query_one("#pg-history", DataTable)
        assert history.row_count == 2
        assert str(history.get_row_at(1)[2]) == INJECTION

        # ctrl+s saves the question shown (the latest) for review
        await pilot.press("ctrl+s")
        await _settle(app, pilot)
        assert app.is_running
    saved = demo_store.page(ExampleFilter(source="playground"))
    assert [e.text for e in saved] == [INJECTION]
    assert {p.model for p in demo_store.proposals(saved[0].id)} == {ZERO_SHOT, "local"}


async def test_playground_pane_select_model_and_toggle(demo_store):
    from routelab.domain import TrainedModel
    from routelab.providers.local.model import LinearRouter, embed_examples

    train = [e for e in demo_store.page(ExampleFilter(split="train"), limit=1000) if e.label]
    model = LinearRouter.fit(embed_examples(train), [e.label for e in train])
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(PlaygroundPane)
        await _settle(app, pilot)
        # a model trained while the app is open: the Jobs pane opens it here
        demo_store.save_model(TrainedModel(id="local-ft-new", provider="local", artifact=model.to_bytes()))
        pane.select_model("local-ft-new")
        await _settle(app, pilot)
        assert "local-ft-new" in pane.selected_models()
        # only the new model selected
        sl = app.query_one("#pg-models", SelectionList)
        sl.deselect(ZERO_SHOT)
        sl.deselect("local")
        app.query_one("#pg-input", Input).value = "can I book next friday off"
        app.query_one("#pg-input", Input).focus()
        await pilot.press("enter")
        await _settle(app, pilot)
        results = app.query_one("#pg-results", DataTable)
        assert results.row_count == 1
        assert [str(c) for c in results.get_row_at(0)][:2] == ["local-ft-new", "book_holiday"]


async def test_playground_pane_reload_lists_a_new_model(demo_store):
    from routelab.domain import TrainedModel
    from routelab.providers.local.model import LinearRouter, embed_examples

    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(PlaygroundPane)
        await _settle(app, pilot)
        assert pane.models == [ZERO_SHOT, "local"]
        train = [e for e in demo_store.page(ExampleFilter(split="train"), limit=1000) if e.label]
        model = LinearRouter.fit(embed_examples(train), [e.label for e in train])
        demo_store.save_model(TrainedModel(id="local-ft-later", provider="local", artifact=model.to_bytes()))
        await pilot.press("ctrl+r")
        await _settle(app, pilot)
        assert pane.models == [ZERO_SHOT, "local", "local-ft-later"] and pane.ready


def _screen(app) -> list[str]:
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def fmt_cost(r: RouteResult) -> str:
    return fmt_route_cost(r.cost, r.tokens_in + r.tokens_out)


async def test_playground_pane_costs_are_readable_at_120_columns(demo_store, fake_openai):
    ft = "ft:gpt-4.1-mini-2025-04-14:routelab:IWFYZ3fh"
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(PlaygroundPane)
        await _settle(app, pilot)
        pane.select_model(ft)
        await _settle(app, pilot)
        assert pane.selected_models()[-1] == ft
        app.query_one("#pg-input", Input).value = "where is my payslip"
        app.query_one("#pg-input", Input).focus()
        await pilot.press("enter")
        await _settle(app, pilot)
        results = app.query_one("#pg-results", DataTable)
        rows = {r.model: r for r in pane.tries[-1].results}
        assert rows[ft].cost > 0 and rows["gpt-4.1"].cost > 0 and rows[ZERO_SHOT].cost == 0
        lines = _screen(app)
        box = results.region  # the table's rows on screen, inside its border
        shown = [line[box.x:box.right] for line in lines[box.y + 2:box.bottom - 1]]
        for i, model in enumerate(pane.selected_models()):
            cost = str(results.get_row_at(i)[4])
            assert cost == fmt_cost(rows[model])
            assert str(results.get_row_at(i)[0]) in shown[i] and f" {cost} " in shown[i], shown[i]
        assert str(results.get_row_at(pane.selected_models().index(ZERO_SHOT))[4]) == "free"
        ft_cost = str(results.get_row_at(pane.selected_models().index(ft))[4])
        assert ft_cost.startswith(("$0.0", "<$0.0")) and len(ft_cost) > 4 and "$0." != ft_cost
        # a fine-tune keeps its suffix and id on screen; the full id is in the tooltip
        assert any(":routelab:IWFYZ3fh" in line for line in lines)
        assert ft in str(results.tooltip)
        assert results.virtual_size.width <= results.scrollable_content_region.width


def test_fmt_cost():
    assert fmt_cost(RouteResult(model="local")) == "free"
    assert fmt_cost(RouteResult(model="x", tokens_in=10)) == "$0"
    assert fmt_cost(RouteResult(model="x", cost=0.000123, tokens_in=10)) == "$0.00012"
    assert fmt_cost(RouteResult(model="x", cost=0.00000123, tokens_in=10)) == "<$0.0001"
    assert fmt_cost(RouteResult(model="x", cost=0.0123, tokens_in=10)) == "$0.012"
    assert fmt_cost(RouteResult(model="x", cost=2.5, tokens_in=10)) == "$2.50"
