"""A fuzzy picker: type a few letters, Enter. For catalogs too long for number keys
(BANKING77's 77 actions, CLINC150's 150) and for the filter menu."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from routelab.domain import printable


@dataclass(frozen=True)
class PickItem:
    value: str
    label: str
    hint: str = ""  # e.g. the action code, matched by digits
    description: str = ""


def _word_start(s: str, i: int) -> bool:
    return i == 0 or not s[i - 1].isalnum()


def fuzzy_score(query: str, text: str) -> float | None:
    """Higher is better; None when `query` is not a subsequence of `text`."""
    q, s = query.lower().replace(" ", ""), text.lower()
    if not q:
        return 0.0
    i = s.find(q)
    if i >= 0:
        return 1000.0 + (200 if i == 0 else 100 if _word_start(s, i) else 0) - i - len(s) * 0.1
    score, pos, prev = 0.0, -1, -2
    for ch in q:
        pos = s.find(ch, pos + 1)
        if pos < 0:
            return None
        if pos == prev + 1:
            score += 6
        if _word_start(s, pos):
            score += 10
        score -= 0.5 * (pos - prev - 1) if prev >= 0 else 0.2 * pos
        prev = pos
    return score - len(s) * 0.1


def fuzzy_rank(query: str, items: Sequence[PickItem]) -> list[PickItem]:
    """Items matching `query`, best first. Digits match an item's hint (an action code) exactly first."""
    query = query.strip()
    if not query:
        return list(items)
    scored: list[tuple[float, int, PickItem]] = []
    for n, item in enumerate(items):
        best = fuzzy_score(query, item.label)
        if query.isdigit() and item.hint == query:
            best = 5000.0
        if best is None and len(query) >= 3 and query.lower() in item.description.lower():
            best = -50.0
        if best is not None:
            scored.append((best, -n, item))
    scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
    return [t[2] for t in scored]


class PickerScreen(ModalScreen[str | None]):
    """Returns the chosen item's value, or None on Escape."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("pagedown", "move(10)", show=False),
        Binding("pageup", "move(-10)", show=False),
    ]

    def __init__(self, title: str, items: Sequence[PickItem], *, current: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.title_text = title
        self.items = list(items)
        self.current = current
        self.shown: list[PickItem] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box"):
            yield Static(Text(self.title_text), id="picker-title")
            yield Input(placeholder="type a few letters, Enter picks", id="picker-input")
            yield OptionList(id="picker-list")
            yield Static(Text("↑↓ move · Enter pick · Esc cancel", style="dim"), id="picker-help")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one(Input).focus()

    def _fill(self, query: str) -> None:
        self.shown = fuzzy_rank(query, self.items)
        ol = self.query_one(OptionList)
        ol.clear_options()
        width = max((len(i.hint) for i in self.items), default=0)
        options = []
        for item in self.shown:
            t = Text(no_wrap=True, overflow="ellipsis")
            if width:
                t.append(item.hint.rjust(width) + "  ", style="dim")
            t.append(printable(item.label), style="bold" if item.value == self.current else "")
            room = 72 - width - len(item.label)
            plain = item.label.replace("_", " ").lower()
            if item.description and item.description.lower() not in (item.label.lower(), plain) and room > 12:
                desc = " ".join(printable(item.description).split())
                t.append("  " + (desc if len(desc) <= room else desc[: room - 1] + "…"), style="dim")
            options.append(Option(t))
        ol.add_options(options)
        if options:
            ol.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._pick()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._pick(event.option_index)

    def _pick(self, index: int | None = None) -> None:
        ol = self.query_one(OptionList)
        i = ol.highlighted if index is None else index
        if i is None or not (0 <= i < len(self.shown)):
            self.app.bell()
            return
        self.dismiss(self.shown[i].value)

    def action_move(self, delta: int) -> None:
        ol = self.query_one(OptionList)
        if not self.shown:
            return
        i = ol.highlighted if ol.highlighted is not None else 0
        ol.highlighted = max(0, min(len(self.shown) - 1, i + delta))

    def action_cancel(self) -> None:
        self.dismiss(None)
