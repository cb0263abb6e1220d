"""The line that says decisions are waiting for another process's write (an import holds the
lock): "3 decisions pending, saved: waiting for an import in another process (pid 12: …)".
While it shows, it takes the filter's place in the bar.

It reads the review session's journal state (memory, no I/O) four times a second and right
after each decision; hidden while nothing waits. When the wait ends it posts `Applied`, so
the pane re-reads what the other process wrote.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.message import Message
from textual.widgets import Static

from routelab.services.review_session import JournalState

WATCH_SECONDS = 0.25


class WaitLine(Static):
    class Applied(Message):
        """Every pending decision is in the workspace now."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._state: Callable[[], JournalState] | None = None
        self._shown: str | None = None

    def on_mount(self) -> None:
        self.display = False
        self.set_interval(WATCH_SECONDS, self.show_state)

    def watch_session(self, state: Callable[[], JournalState]) -> None:
        self._state = state

    def show_state(self) -> None:
        if self._state is None:
            return
        said = self._state().describe()
        if said == self._shown:
            return
        was_waiting, self._shown = self._shown is not None, said
        self.display = said is not None
        for beside in self.parent.query("#review-filter") if self.parent else ():
            beside.display = said is None
        if said is not None:
            self.update(Text(" " + said, no_wrap=True, overflow="ellipsis", style="bold yellow"))
        elif was_waiting:
            self.post_message(self.Applied())
