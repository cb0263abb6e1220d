"""A fuzzy picker: type a few letters, Enter. For catalogs too long for number keys
(BANKING77's 77 actions, CLINC150's 150) and for the filter menu."""

from __future__ import annotations

import re
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

DESCRIPTION_CHARS = 300  # more than any picker is wide; the rest is never drawn


@dataclass(frozen=True)
class PickItem:
    value: str
    label: str
    hint: str = ""  # e.g. the action code, matched by digits
    description: str = ""


def _norm(s: str) -> str:
    """Lower case, every run of separators (`_`, `-`, spaces, punctuation) one space."""
    return " ".join(re.sub(r"[\W_]+", " ", s.lower()).split())


def _span(q: str, s: str) -> int | None:
    """Length of the shortest stretch of `s` holding `q` as a subsequence; None if none does."""
    best = None
    start = s.find(q[0]) if q else -1
    while start >= 0:
        pos = start
        for ch in q[1:]:
            pos = s.find(ch, pos + 1)
            if pos < 0:
                return best  # no later start can do better: it would run out too
        if best is None or pos - start + 1 < best:
            best = pos - start + 1
        start = s.find(q[0], start + 1)
    return best


def fuzzy_key(query: str, text: str) -> tuple[int, int] | None:
    """How well `query` matches `text` (lower is better), None when it does not.

    Tier 0: the whole text; 1: a prefix of the text or of a word in it; 2: a substring
    anywhere; 3: a subsequence, ranked by compactness (the shortest stretch holding it).
    Separators are alike: `lost or` finds `lost_or_stolen_card`.
    """
    q, s = _norm(query), _norm(text)
    if not q:
        raw = query.strip().lower()
        return (2, 0) if raw and raw in text.lower() else None
    if q == s:
        return (0, 0)
    if s.startswith(q) or f" {q}" in s:
        return (1, 0)
    if q in s:
        return (2, 0)
    span = _span(q.replace(" ", ""), s)
    return None if span is None else (3, span)


def fuzzy_rank(query: str, items: Sequence[PickItem]) -> list[PickItem]:
    """Items matching `query`, best first (see `fuzzy_key`), ties in catalog order (by code).

    Digits matching an item's hint (an action code) exactly come first; a query of three
    letters or more found only in a description comes last."""
    query = query.strip()
    if not query:
        return list(items)
    desc_q = _norm(query)
    scored: list[tuple[tuple[int, int], int, PickItem]] = []
    for n, item in enumerate(items):
        key = fuzzy_key(query, item.label)
        if query.isdigit() and item.hint == query:
            key = (-1, 0)
        if key is None and len(desc_q) >= 3 and desc_q in _norm(item.description):
            key = (4, 0)
        if key is not None:
            scored.append((key, n, item))
    scored.sort(key=lambda t: (t[0], t[1]))
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
            # one line per option: the list is `text-wrap: nowrap; text-overflow: ellipsis`
            # (review.tcss), so a long description ends in "…" on its own line, at any width
            if item.description and _norm(item.description) != _norm(item.label):
                desc = " ".join(printable(item.description[:DESCRIPTION_CHARS]).split())
                t.append("  " + desc, style="dim")
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
