"""The Review pane (minimal until the review issue lands): counts and the first questions."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static

from routelab.store import ExampleFilter, Store
from routelab.tui.safe import literal


class ReviewPane(Vertical):
    def __init__(self, db_path, **kwargs):
        super().__init__(**kwargs)
        self.db_path = db_path

    def compose(self) -> ComposeResult:
        yield Static(id="review-summary")
        yield OptionList(id="review-list")

    def on_mount(self) -> None:
        with Store.open(self.db_path) as store:
            counts = store.counts_by("status")
            rows = store.page(ExampleFilter(), limit=200)
        summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no questions yet"
        self.query_one("#review-summary", Static).update(literal(summary))
        self.query_one("#review-list", OptionList).add_options([literal(e.text) for e in rows])
