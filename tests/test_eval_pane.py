"""The Evaluate pane (Pilot): the stored table, a run from the pane, confusions to review."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from routelab.config import Settings
from routelab.domain import NewExample
from routelab.services import evaluation as ev
from routelab.services.workspace import Workspace
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
        yield EvaluatePane(Workspace.at(self.db_path), auto_run=self.auto_run)

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
    run = ev.evaluate(demo_store, settings=Settings())  # zero-shot baseline and the local teacher
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        table = app.query_one("#eval-table", DataTable)
        assert table.row_count == 2
        first, second = _cells(table, 0), _cells(table, 1)
        assert first[0] == ev.ZERO_SHOT and first[4] == "base"
        assert second[0] == "local"
        user = run.evaluations[1].details["slices"]["user"]
        low, high = (f"{user[k]:.2f}".removeprefix("0") for k in ("ci_low", "ci_high"))
        assert second[2] == f"{user['accuracy']:.2f} [{low}–{high}]"  # compact: "0.83 [.72–.91]"
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
        assert app.shown[0].split == "test"  # named: review shows test questions only when asked by name


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
    ev.evaluate(store, [ev.ZERO_SHOT], settings=Settings())
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


FT = "ft:gpt-4.1-mini-2025-04-14:routelab:IWFYZ3fh"
FIVE = ["gpt-4.1-mini-2025-04-14", ev.ZERO_SHOT, "local", "gpt-4.1", FT]


def _evaluate_five(path) -> None:
    """Evaluate five models (three through the fake OpenAI) outside the test's event loop."""
    import threading

    from routelab.store import Store

    runs: list = []

    def run() -> None:
        with Store.open(path) as store:
            runs.append(ev.evaluate(store, FIVE, settings=Settings()))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert runs and not runs[0].errors and len(runs[0].evaluations) == 5


def _screen(app) -> list[str]:
    """The screen as text, one line per row of cells."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def _per_action_title(app) -> str:
    per = app.query_one("#eval-per-action", DataTable)
    return _screen(app)[per.region.y][per.region.x:per.region.right]


async def test_pane_fits_five_models_in_120_columns(demo_store, fake_openai):
    from routelab.tui.components.model_names import short_model

    _evaluate_five(demo_store.path)
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        table = app.query_one("#eval-table", DataTable)
        assert [k.value for k in table.rows] == FIVE
        # the whole headline is on screen: no horizontal scrolling, the cost column visible
        assert table.virtual_size.width <= table.scrollable_content_region.width
        lines = _screen(app)
        header = next(line for line in lines if "synthetic" in line)
        assert "$/1k routes" in header and "vs base" in header
        ft = next(line for line in lines if "IWFYZ3fh" in line)
        assert "ft:" in ft and ":routelab:IWFYZ3fh" in ft and "…utelab" not in ft  # suffix and id kept whole
        assert "$0." in ft.split("IWFYZ3fh", 1)[1]  # its cost per 1k routes
        assert FT in str(table.tooltip)  # the full id
        # compact intervals
        local = next(line for line in lines if line.startswith("│ local "))
        assert "[." in local and "[+." in local
        # the per-action panel follows the cursor; its title is whole; the full id at its bottom
        table.focus()
        for i, model in enumerate(FIVE):
            if i:
                await pilot.press("down")
                await pilot.pause()
            pane = app.query_one(EvaluatePane)
            assert pane.selected == model
            title = _per_action_title(app)
            assert "macro-F1" in title and "invalid" in title and "%" in title and "…─" not in title
            assert short_model(model, 20).split("…")[-1] in title
        per = app.query_one("#eval-per-action", DataTable)
        assert FT in _screen(app)[per.region.bottom - 1]


async def test_pane_rerun_selects_the_first_row(demo_store, fake_openai):
    from routelab.tui.components.confirm import ConfirmScreen

    _evaluate_five(demo_store.path)
    app = PaneApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        pane = app.query_one(EvaluatePane)
        table = app.query_one("#eval-table", DataTable)
        table.focus()
        await pilot.press("down", "down")
        await pilot.pause()
        assert pane.selected == "local"
        await pilot.press("r")  # the pane's run: the zero-shot baseline first now
        for _ in range(200):
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmScreen):
                await pilot.press("y")
            if not pane.running:
                break
        await _settle(app, pilot)
        await _settle(app, pilot)
        first = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        assert table.cursor_row == 0 and first == ev.ZERO_SHOT == pane.selected
        assert _per_action_title(app).lstrip("╭─ ").startswith(ev.ZERO_SHOT)
        # and it keeps following the cursor
        await pilot.press("down")
        await pilot.pause()
        assert pane.selected == "local" and _per_action_title(app).lstrip("╭─ ").startswith("local ")


def test_short_model_keeps_the_suffix_and_id():
    from routelab.tui.components.model_names import short_model

    assert short_model("gpt-4.1", 24) == "gpt-4.1"
    assert short_model(FT, 22) == "ft:…:routelab:IWFYZ3fh"
    assert short_model(FT, 29) == "ft:gpt-4.1…:routelab:IWFYZ3fh"
    assert short_model("ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9x8y7z", 24) == "ft:…:my-org:cust…:9x8y7z"
    for width in range(8, 60):
        assert len(short_model(FT, width)) <= width
        assert len(short_model("a-very-long-model-name-that-goes-on-2025-01-01", width)) <= width


async def test_pane_evaluates_by_itself_only_once_its_tab_is_shown(demo_store):
    """In the app the Evaluate tab starts hidden: nothing runs until it is opened (it raced the tabs before)."""
    from routelab.tui.app import RoutelabApp

    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(3):
            await _settle(app, pilot)
        assert demo_store.jobs(kind="eval") == []
        await pilot.press("f3")
        for _ in range(3):
            await _settle(app, pilot)
        assert app.query_one("#eval-table", DataTable).row_count == 2
    assert len(demo_store.jobs(kind="eval")) == 1
