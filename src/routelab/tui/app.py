"""The routelab app: one workspace, four panes (Review, Jobs, Evaluate, Playground).

The shell owns the header (workspace, teacher, review progress), the footer, the F-keys,
the command palette commands and the `?` help overlay. Each pane is `XPane(workspace)`
and owns its own keys and stylesheet (styles/<pane>.tcss, loaded here). The workspace
(services/workspace.py: the file and the settings, read once here) is the panes' only way
to the data; panes ask each other for things through messages (tui/messages.py) the app routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from routelab.services.workspace import Workspace
from routelab.tui.components.header import StatusHeader
from routelab.tui.components.help import HelpScreen
from routelab.tui.messages import OpenInPlayground, ShowExamples
from routelab.tui.panes.evaluate import EvaluatePane
from routelab.tui.panes.jobs import JobsPane
from routelab.tui.panes.playground import PlaygroundPane
from routelab.tui.panes.review import ReviewPane

STYLES = Path(__file__).resolve().parent.parent / "styles"


def _stylesheets() -> list[Path]:
    """app.tcss first, then every pane's stylesheet (review.tcss, jobs.tcss, ...)."""
    rest = sorted(p for p in STYLES.glob("*.tcss") if p.name != "app.tcss")
    return [STYLES / "app.tcss", *rest]


APP_KEYS: list[tuple[str, str]] = [
    ("F1 … F4", "Review · Jobs · Evaluate · Playground"),
    ("?", "this help"),
    ("Ctrl+P", "command palette (every command by name)"),
    ("Ctrl+Q", "quit (every decision is already saved)"),
]


def pane_help(pane: type) -> list[tuple[str, list[tuple[str, str]]]]:
    """A pane's own help sections, or its bindings when it has none."""
    sections = getattr(pane, "help_sections", None)
    if sections is not None:
        return sections()
    title = pane.__name__.removesuffix("Pane")
    return [(title, [(b.key.replace("ctrl+", "Ctrl+"), b.description) for b in pane.BINDINGS])]


class RoutelabApp(App):
    CSS_PATH = _stylesheets()
    TITLE = "routelab"
    BINDINGS = [
        Binding("f1", "show_tab('review')", "Review", show=False),
        Binding("f2", "show_tab('jobs')", "Jobs", show=False),
        Binding("f3", "show_tab('evaluate')", "Evaluate", show=False),
        Binding("f4", "show_tab('playground')", "Playground", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, workspace: Workspace | str | Path, **kwargs):
        """`workspace`: a Workspace, or the path of one (its settings are then read from the environment, now)."""
        super().__init__(**kwargs)
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace.at(workspace)
        self.db_path = self.workspace.path
        self.sub_title = self.workspace.name

    def compose(self) -> ComposeResult:
        ws = self.workspace
        yield StatusHeader(ws.name, ws.teacher_label(), id="status-header")
        with TabbedContent(initial="review"):
            with TabPane("Review F1", id="review"):
                yield ReviewPane(ws)
            with TabPane("Jobs F2", id="jobs"):
                yield JobsPane(ws)
            with TabPane("Evaluate F3", id="evaluate"):
                yield EvaluatePane(ws)
            with TabPane("Playground F4", id="playground"):
                yield PlaygroundPane(ws)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ReviewPane).focus()

    def on_unmount(self) -> None:
        self.workspace.close()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "review":
            self._focus_review()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "review":
            self._focus_review()

    def _focus_review(self) -> None:
        """Keys go to the review pane, unless something inside it (the search box) has focus."""
        pane = self.query_one(ReviewPane)
        if self.focused is None or pane not in self.focused.ancestors_with_self:
            pane.focus()

    def on_review_pane_progress(self, event: ReviewPane.Progress) -> None:
        self.query_one(StatusHeader).set_progress(event.reviewed, event.total, event.pace)

    def on_show_examples(self, event: ShowExamples) -> None:
        """Another pane (e.g. a confusion-matrix cell in Evaluate) opens questions in Review."""
        self.action_show_tab("review")
        self.query_one(ReviewPane).show_examples(event.ids, event.title, event.split)

    def on_open_in_playground(self, event: OpenInPlayground) -> None:
        """The Jobs pane opens a trained model: listed, selected and loaded in the Playground."""
        self.action_show_tab("playground")
        self.query_one(PlaygroundPane).select_model(event.model_id)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        sections = [section for pane in (ReviewPane, JobsPane, EvaluatePane, PlaygroundPane)
                    for section in pane_help(pane)]
        self.push_screen(HelpScreen([*sections, ("App", APP_KEYS)]))

    def _review(self, action: str):
        def run() -> None:
            self.action_show_tab("review")
            getattr(self.query_one(ReviewPane), f"action_{action}")()

        return run

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Review", "Go to the Review pane (F1)", lambda: self.action_show_tab("review"))
        yield SystemCommand("Jobs", "Go to the Jobs pane (F2)", lambda: self.action_show_tab("jobs"))
        yield SystemCommand("Evaluate", "Go to the Evaluate pane (F3)", lambda: self.action_show_tab("evaluate"))
        yield SystemCommand("Playground", "Go to the Playground pane (F4)", lambda: self.action_show_tab("playground"))
        yield SystemCommand("Review: search", "Full-text search the questions (/)", self._review("search"))
        yield SystemCommand("Review: filter", "Unreviewed, reviewed, skipped, flagged, disagreement, ... (v)", self._review("filter"))
        yield SystemCommand("Review: bulk accept", "Accept one model's proposals at or above a confidence (A)", self._review("bulk"))
        yield SystemCommand("Review: undo", "Undo the last decision (u)", self._review("undo"))
        yield SystemCommand("Review: reload", "Re-read the workspace (r)", self._review("reload"))
        yield SystemCommand("Keys", "Every key binding (?)", self.action_help)
