"""The Evaluate pane (Pilot): the stored table, a run from the pane, confusions to review."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from routelab.domain import NewExample
from routelab.services import evaluation as ev
from routelab.tui.messages import ShowExamples
from routelab.tui.panes.evaluate import EvaluatePane

STYLES = Path(__file__).resolve().parent.parent / "styles"


class PaneApp(App):
    CSS_PATH = [STYLES / "app.tcss", STYLES / "evaluate.tcss"]

    def __init__(self, db_path, auto_run: bool = True):
        super().__init__()
        self.db_path = db_path
        self.auto_run = auto_run
        self.shown: list[ShowExamples] = []

    def compose(self) -> ComposeResult:
        yield EvaluatePane(self.db_path, auto_run=self.auto_run)

    def on_show_examples(self, message: ShowExamples) -> None:
        self.shown.append(message)


async def _settle(app, pilot):
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


def _text(renderable) -> str:
    import io

    from rich.console import Console

    console = Console(width=100, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def _cells(table: DataTable, row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


async def test_pane_shows_stored_table_and_opens_a_confusion(demo_store):
    run = ev.evaluate(demo_store)  # zero-shot baseline and the local teacher
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        table = app.query_one("#eval-table", DataTable)
        assert table.row_count == 2
        first, second = _cells(table, 0), _cells(table, 1)
        assert first[0] == ev.ZERO_SHOT and first[4] == "base"
        assert second[0] == "local"
        assert second[2] == ev.fmt_acc(run.evaluations[1].details["slices"]["user"])  # "0.83 [0.72–0.91]"
        assert first[1] == "—"  # the demo's test split has no synthetic questions
        status = str(app.query_one("#eval-status", Static).render())
        assert "test split" in status and "user n=60" in status

        # the per-action view and the confusions follow the highlighted model
        per = app.query_one("#eval-per-action", DataTable)
        assert per.row_count == 4
        table.focus()
        await pilot.press("down")
        await pilot.pause()
        pane = app.query_one(EvaluatePane)
        assert pane.selected == "local"
        local = run.evaluations[1]
        conf = app.query_one("#eval-confusions", DataTable)
        top = local.details["confusions"][0]
        assert _cells(conf, 0) == [str(top["count"]), top["gold"], top["pred"]]
        matrix = _text(app.query_one("#eval-matrix", Static).content)
        assert "1 book_holiday" in matrix and "4 get_policy" in matrix

        # Enter on a confusion asks for those examples in the review pane
        conf.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert len(app.shown) == 1
        assert app.shown[0].ids == top["ids"]
        assert top["gold"] in app.shown[0].title and "local" in app.shown[0].title


async def test_pane_runs_an_evaluation_in_a_worker(demo_store):
    app = PaneApp(demo_store.path, auto_run=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        assert app.query_one("#eval-table", DataTable).row_count == 0
        assert "60 questions" in str(app.query_one("#eval-status", Static).render())
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("r")
        await _settle(app, pilot)
        await _settle(app, pilot)
        assert app.query_one("#eval-table", DataTable).row_count == 2
    job = demo_store.jobs(kind="eval")[0]
    assert job.status == "succeeded" and job.progress_done == 120


async def test_pane_evaluates_a_fresh_offline_workspace_by_itself(demo_store):
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(3):
            await _settle(app, pilot)
        assert app.query_one("#eval-table", DataTable).row_count == 2
    assert len(demo_store.jobs(kind="eval")) == 1


async def test_pane_never_spends_by_itself(demo_store, fake_openai):
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        assert app.query_one("#eval-table", DataTable).row_count == 0
    assert demo_store.jobs(kind="eval") == [] and fake_openai.chat_requests() == []


async def test_pane_without_a_test_split_explains(store):
    store.add_examples([NewExample(text="where is my payslip", label="get_payslip", split="train")])
    app = PaneApp(store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        assert "no questions in the test split" in str(app.query_one("#eval-status", Static).render())
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("r")
        await _settle(app, pilot)
        assert app.is_running
        assert app.query_one("#eval-table", DataTable).row_count == 0


async def test_pane_asks_before_spending_and_evaluates_the_openai_teacher(demo_store, fake_openai, monkeypatch):
    from routelab.tui.components.confirm import ConfirmScreen

    monkeypatch.setenv("ROUTELAB_SPEND_LIMIT", "0.000001")
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        app.query_one("#eval-table", DataTable).focus()
        await pilot.press("r")
        for _ in range(50):  # the worker routes the local models, then asks
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmScreen):
                break
        assert isinstance(app.screen, ConfirmScreen)
        assert fake_openai.chat_requests() == []
        await pilot.press("y")
        await _settle(app, pilot)
        await _settle(app, pilot)
        table = app.query_one("#eval-table", DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == [ev.ZERO_SHOT, "local", "gpt-4.1"]
    assert len(fake_openai.chat_requests()) == 60


async def test_pane_shows_hostile_action_names_literally(store):
    from routelab.domain import Action

    bad = ["[@click=app.quit]x[/]", "[bold"]
    store.upsert_actions([Action(name=n, description="odd") for n in bad])
    store.add_examples([
        NewExample(text=f"question {i} about {'payslips' if i % 2 else 'holidays'}", split="test",
                   label=bad[i % 2] if i < 4 else "get_payslip")
        for i in range(8)
    ])
    ev.evaluate(store, [ev.ZERO_SHOT])
    app = PaneApp(store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        per = app.query_one("#eval-per-action", DataTable)
        shown = {str(per.get_row_at(i)[4]) for i in range(per.row_count)}
        assert set(bad) <= shown
        assert "[@click=app.quit]x[/]" in _text(app.query_one("#eval-matrix", Static).content)
        conf = app.query_one("#eval-confusions", DataTable)
        conf.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and len(app.shown) == 1
