"""A yes/no dialog. `ConfirmScreen(message)` returns True (y / Enter) or False (n / Esc).

Reusable by any pane: `self.app.push_screen(ConfirmScreen(Text("Cancel job 3?")), callback)`.
A `str` message is shown literally (never parsed as markup).
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from routelab.domain import printable


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, message: RenderableType | str, *, yes: str = "Yes", no: str = "No", **kwargs):
        super().__init__(**kwargs)
        self.message = Text(printable(message)) if isinstance(message, str) else message
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.message, id="confirm-message")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", id="confirm-yes", variant="primary")
                yield Button(f"{self.no} (n)", id="confirm-no")

    def on_mount(self) -> None:
        # keys, not the buttons, own Enter: focus stays on the screen itself
        self.set_focus(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
