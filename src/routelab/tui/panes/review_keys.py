"""The Review pane's keys: its bindings and, beside them so the two never drift apart, the help overlay's lines."""

from __future__ import annotations

from textual.binding import Binding

REVIEW_BINDINGS = [
    Binding("enter,a", "accept", "Accept"),
    *[Binding(str(n), f"label_number({n})", f"Action {n}", show=False) for n in range(1, 10)],
    Binding("o", "pick", "Pick"),
    Binding("s", "skip", "Skip"),
    Binding("f", "flag", "Flag"),
    Binding("u", "undo", "Undo"),
    Binding("j,down", "move(1)", "Next", show=False),
    Binding("k,up", "move(-1)", "Previous", show=False),
    Binding("pagedown", "page(1)", show=False),
    Binding("pageup", "page(-1)", show=False),
    Binding("g,home", "first", "First", show=False),
    Binding("G,end", "last", "Last", show=False),
    Binding("slash", "search", "Search"),
    Binding("v", "filter", "Filter"),
    Binding("A", "bulk", "Bulk accept"),
    Binding("escape", "escape", show=False),
    Binding("r", "reload", "Reload", show=False),
    Binding("J", "detail(3)", show=False),
    Binding("K", "detail(-3)", show=False),
]

# (keys, what) for the help overlay
REVIEW_KEYS: list[tuple[str, str]] = [
    ("Enter / a", "accept the shown proposal (marked ⏎: the teacher's, else the most confident valid one)"),
    ("1 … 9", "label with action N of the catalog (an override, or an accept if it agrees with ⏎)"),
    ("o", "pick any action with a fuzzy search (type a few letters, Enter)"),
    ("s", "skip"),
    ("f", "flag for a second look"),
    ("u", "undo the last decision, or a whole bulk accept (repeatable; appends undos, nothing is deleted)"),
    ("j / ↓   k / ↑", "next / previous question"),
    ("PgDn / PgUp", "a screen down / up"),
    ("J / K", "scroll the question's detail (long questions, conversations)"),
    ("g / Home   G / End", "first / last question"),
    ("/", "full-text search (Enter applies, Esc closes; Esc again clears)"),
    ("v", (
        "filter: unreviewed, reviewed, skipped, flagged, disagreement between models, label ≠ proposal, "
        "low confidence, source, action, split, model. Filters combine: the bar above the list shows them all, "
        "● marks them in the menu, choosing a marked one turns it off"
    )),
    ("v all", "every question: clears every other filter (the search stays)"),
    ("v clear", "back to the start: unreviewed, no other filter, no search"),
    ("A", "bulk accept one model's proposals at or above a confidence (asks first, says how many)"),
    ("r", "reload from the workspace"),
]
