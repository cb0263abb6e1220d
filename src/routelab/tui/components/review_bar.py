"""The bar above the review list: the filter (or the search box while it is open) and the progress.

Updates repaint the bar alone (`layout=False`): it is redrawn after every decision.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Static

from routelab.tui.components.review_wait import WaitLine


class ReviewBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static(id="review-filter")
        yield Input(id="review-search", placeholder="search: words, Enter applies, Esc closes")
        yield WaitLine(id="review-wait")
        yield Static(id="review-progress")

    @property
    def wait_line(self) -> WaitLine:
        return self.query_one(WaitLine)

    def on_mount(self) -> None:
        self.search_box.display = False

    @property
    def search_box(self) -> Input:
        return self.query_one("#review-search", Input)

    def show_filter(self, description: str) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" ▾ ", style="bold")
        t.append(description, style="bold")
        self.query_one("#review-filter", Static).update(t, layout=False)

    def show_progress(self, position: int, count: int | None, reviewed: tuple[int, int] | None,
                      pace: float | None) -> None:
        """`12/300 here · 40/1,000 reviewed · 58/min`; `count` None while it is still being counted."""
        t = Text(no_wrap=True, overflow="ellipsis", justify="right")
        t.append(f"{position:,}/{count:,} here" if count is not None else f"{position:,}/counting… here")
        if reviewed is not None:
            t.append(f" · {reviewed[0]:,}/{reviewed[1]:,} reviewed", style="bold")
        t.append(f" · {pace:.0f}/min " if pace is not None else " · —/min ")
        self.query_one("#review-progress", Static).update(t, layout=False)

    def open_search(self, query: str) -> None:
        box = self.search_box
        box.value = query
        box.display = True
        box.focus()

    def close_search(self) -> bool:
        """Hide the search box; False when it was not open."""
        box = self.search_box
        if not box.display:
            return False
        box.display = False
        return True
