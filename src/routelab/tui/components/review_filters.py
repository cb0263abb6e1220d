"""The Review pane's filters: the `v` menu, what each choice does to the filter, and the
one-line description shown above the list. Pure functions of an ExampleFilter.

Filters combine: a choice turns its facet on (● marks it in the menu) or, chosen again,
off; `all` keeps only the search; `clear` goes back to the start (unreviewed).

The test split is held out of every choice but one: `split test`, chosen by name
(`ExampleFilter.guarded`; the review session guards every filter it is given too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from routelab.domain import SPLITS, Action, ExampleFilter, Status, printable
from routelab.tui.components.picker import PickItem

LOW_CONFIDENCE = 0.6
UNREVIEWED = ExampleFilter(status=Status.UNREVIEWED).guarded()
EVERYTHING = ExampleFilter().guarded()  # every question outside the test split
ON = "● "
HELD_OUT = " (held out: eval counts the labels changed here)"


def filter_menu(f: ExampleFilter, *, sources: Sequence[str], models: Sequence[str],
                actions: Sequence[Action]) -> list[PickItem]:
    """The menu's items; the facets now on are marked."""

    def mark(on: bool) -> str:
        return ON if on else ""

    everything = replace(f, query=None) == EVERYTHING
    items = [PickItem(f"status:{s}", f"{mark(f.status == s)}{s}", "status") for s in Status]
    items += [
        PickItem("all", f"{mark(everything)}all questions but test, no other filter (the search stays)", "status"),
        PickItem("disagreement", f"{mark(f.disagreement)}disagreement between models", "proposals"),
        PickItem("conflict", f"{mark(f.conflict)}label ≠ proposal (a model disagrees with the label)", "proposals"),
        PickItem("low", f"{mark(f.max_confidence is not None)}low confidence (< {LOW_CONFIDENCE:g})", "proposals"),
    ]
    items += [PickItem(f"source:{s}", f"{mark(f.source == s)}source {s}", "source") for s in sources]
    items += [PickItem(f"split:{s}", f"{mark(f.split == s)}split {s}{HELD_OUT if s == 'test' else ''}", "split")
              for s in SPLITS]
    items += [PickItem(f"model:{m}", f"{mark(f.model == m)}model {m}", "model") for m in models]
    items += [PickItem(f"action:{a.name}", f"{mark(f.action == a.name)}action {a.name}", "action") for a in actions]
    items.append(PickItem("clear", "clear every filter (back to unreviewed)", ""))
    return items


def apply_choice(f: ExampleFilter, value: str) -> ExampleFilter:
    """The filter after choosing a menu item (its `value`)."""
    kind, _, arg = value.partition(":")
    if kind == "status":
        return replace(f, status=Status(arg) if arg else None)
    if kind == "all":  # every question: the other filters go too, the search stays
        return replace(EVERYTHING, query=f.query)
    if kind == "disagreement":
        return replace(f, disagreement=not f.disagreement)
    if kind == "conflict":
        return replace(f, conflict=not f.conflict)
    if kind == "low":
        return replace(f, max_confidence=None if f.max_confidence is not None else LOW_CONFIDENCE)
    if kind in ("source", "split", "model", "action"):
        return replace(f, **{kind: None if getattr(f, kind) == arg else arg})
    if kind == "clear":
        return UNREVIEWED
    return f


def describe(f: ExampleFilter, ids_title: str = "") -> str:
    """`unreviewed · disagreement · source synthetic · /payslip`; `ids_title` names an explicit set."""
    parts = [str(f.status) if f.status else "all"]
    if f.disagreement:
        parts.append("disagreement")
    if f.conflict:
        parts.append("label ≠ proposal")
    if f.max_confidence is not None:
        parts.append(f"confidence < {f.max_confidence:g}")
    for name in ("source", "split", "action", "model"):
        value = getattr(f, name)
        if value is not None:
            parts.append(f"{name} {printable(value)}" + (" (held out)" if name == "split" and value == "test" else ""))
    if f.ids is not None:
        parts.append(ids_title or f"{len(f.ids)} chosen")
    if f.query:
        parts.append(f"/{printable(f.query)}")
    return " · ".join(parts)
