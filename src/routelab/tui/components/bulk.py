"""Bulk accept dialog: one model, a confidence threshold, and how many that is — then confirm."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from routelab.domain import printable


class BulkAcceptScreen(ModalScreen[tuple[str, float] | None]):
    """Returns (model, min_confidence) once the operator confirmed a non-zero count, else None.

    `count(model, min_confidence)` runs in a worker thread (it may scan a large filter).
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
    ]

    def __init__(
        self, models: Sequence[str], count: Callable[[str, float], int], *, filter_text: str = "",
        min_confidence: float = 0.9, **kwargs,
    ):
        super().__init__(**kwargs)
        self.models = list(models)
        self.count_fn = count
        self.filter_text = filter_text
        self.initial_confidence = min_confidence
        self.counted: tuple[str, float, int] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="bulk-box"):
            yield Static(Text("Bulk accept", style="bold"), id="bulk-title")
            yield Static(Text(f"unreviewed questions of this filter: {self.filter_text}", style="dim"))
            yield OptionList(*[Option(Text(printable(m))) for m in self.models], id="bulk-models")
            yield Input(str(self.initial_confidence), placeholder="minimum confidence 0-1", id="bulk-confidence")
            yield Static(id="bulk-count")
            yield Static(Text("↑↓ model · type the minimum confidence · Enter accept · Esc cancel", style="dim"))

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        if self.models:
            ol.highlighted = 0
        self.query_one(Input).focus()
        self._recount()

    def _choice(self) -> tuple[str, float] | None:
        ol = self.query_one(OptionList)
        if ol.highlighted is None or not self.models:
            return None
        try:  # an emptied field is refused, never read as "confidence ≥ 0" (that would accept everything)
            conf = float(self.query_one(Input).value.strip())
        except ValueError:
            return None
        if not 0.0 <= conf <= 1.0:  # also refuses nan
            return None
        return self.models[ol.highlighted], conf

    def _recount(self) -> None:
        choice = self._choice()
        label = self.query_one("#bulk-count", Static)
        self.counted = None
        if choice is None:
            label.update(Text("enter a confidence between 0 and 1", style="red"))
            return
        label.update(Text("counting…", style="dim"))
        self._count(*choice)

    @work(thread=True, exclusive=True, group="bulk-count")
    def _count(self, model: str, conf: float) -> None:
        n = self.count_fn(model, conf)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_count, model, conf, n)

    def _show_count(self, model: str, conf: float, n: int) -> None:
        if self._choice() != (model, conf):
            return  # the operator changed the choice meanwhile
        self.counted = (model, conf, n)
        t = Text()
        t.append(f"Accept {n:,} proposals", style="bold")
        t.append(f" from {printable(model)} at confidence ≥ {conf:g}? Each is its own decision; u undoes them all.")
        self.query_one("#bulk-count", Static).update(t)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._recount()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._recount()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.counted is None or self.counted[2] == 0 or self._choice() != self.counted[:2]:
            self.app.bell()
            return
        self.dismiss(self.counted[:2])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one(Input).focus()

    def action_move(self, delta: int) -> None:
        ol = self.query_one(OptionList)
        if self.models:
            ol.highlighted = max(0, min(len(self.models) - 1, (ol.highlighted or 0) + delta))

    def action_cancel(self) -> None:
        self.dismiss(None)
