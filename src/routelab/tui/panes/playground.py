"""The Playground pane (placeholder until its issue lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class PlaygroundPane(Vertical):
    def __init__(self, db_path, **kwargs):
        super().__init__(**kwargs)
        self.db_path = db_path

    def compose(self) -> ComposeResult:
        yield Static("Playground: coming soon.", classes="placeholder")
