"""The one-line app header: workspace, teacher, review progress and pace."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from routelab.domain import printable


class StatusHeader(Static):
    def __init__(self, workspace: str, teacher: str, **kwargs):
        super().__init__(**kwargs)
        self.workspace = workspace
        self.teacher = teacher
        self.reviewed: int | None = None
        self.total: int | None = None
        self.pace: float | None = None

    def on_mount(self) -> None:
        self._paint()

    def set_progress(self, reviewed: int, total: int, pace: float | None) -> None:
        if (reviewed, total, pace) != (self.reviewed, self.total, self.pace):
            self.reviewed, self.total, self.pace = reviewed, total, pace
            self._paint()

    def _paint(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" routelab", style="bold")
        t.append(" · " + printable(self.workspace))
        t.append(" · teacher " + printable(self.teacher))
        if self.total is not None:
            t.append(f" · {self.reviewed:,}/{self.total:,} reviewed")
            t.append(f" · {self.pace:.0f}/min" if self.pace is not None else " · —/min")
        self.update(t, layout=False)
