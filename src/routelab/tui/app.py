"""The routelab app: one workspace, four panes (Review, Jobs, Evaluate, Playground)."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, TabbedContent, TabPane

from routelab.tui.panes.evaluate import EvaluatePane
from routelab.tui.panes.jobs import JobsPane
from routelab.tui.panes.playground import PlaygroundPane
from routelab.tui.panes.review import ReviewPane

STYLES = Path(__file__).resolve().parent.parent / "styles"


class RoutelabApp(App):
    CSS_PATH = [STYLES / "app.tcss"]
    TITLE = "routelab"
    BINDINGS = [
        Binding("f1", "show_tab('review')", "Review"),
        Binding("f2", "show_tab('jobs')", "Jobs"),
        Binding("f3", "show_tab('evaluate')", "Evaluate"),
        Binding("f4", "show_tab('playground')", "Playground"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, db_path: str | Path, **kwargs):
        super().__init__(**kwargs)
        self.db_path = Path(db_path)
        self.sub_title = self.db_path.name

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="review"):
            with TabPane("Review", id="review"):
                yield ReviewPane(self.db_path)
            with TabPane("Jobs", id="jobs"):
                yield JobsPane(self.db_path)
            with TabPane("Evaluate", id="evaluate"):
                yield EvaluatePane(self.db_path)
            with TabPane("Playground", id="playground"):
                yield PlaygroundPane(self.db_path)
        yield Footer()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
