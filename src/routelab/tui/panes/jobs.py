"""The Jobs pane (placeholder until its issue lands)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class JobsPane(Vertical):
    def __init__(self, db_path, **kwargs):
        super().__init__(**kwargs)
        self.db_path = db_path

    def compose(self) -> ComposeResult:
        yield Static("Jobs: coming soon.", classes="placeholder")
