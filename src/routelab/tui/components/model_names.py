"""Model ids shortened to fit a column, keeping what tells them apart (the full id goes in a tooltip)."""

from __future__ import annotations


def cut_middle(model: str, width: int = 30) -> str:
    """`model` in at most `width` characters, cut in the middle (both ends stay readable)."""
    if len(model) <= width:
        return model
    if width <= 1:
        return "…"[:width]
    tail = (width - 1) // 2
    return model[: width - 1 - tail] + "…" + model[len(model) - tail:]


def short_model(model: str, width: int = 30) -> str:
    """A model id in at most `width` characters, keeping what tells models apart.

    A fine-tune id `ft:BASE:SUFFIX:ID` (or `ft:BASE:ORG:SUFFIX:ID`) keeps its suffix and id
    and shortens the base: `ft:gpt-4.1…:routelab:IWFYZ3fh`, then `ft:…:routelab:IWFYZ3fh`;
    anything else is cut in the middle. The full id belongs in a tooltip or a panel.
    """
    if len(model) <= width:
        return model
    parts = model.split(":")
    if len(parts) >= 3 and parts[0] == "ft":
        base, rest = parts[1], ":".join(parts[2:])
        room = width - len("ft:…:") - len(rest)
        if room >= 6:  # enough of the base to recognise it
            return f"ft:{base[:room]}…:{rest}"
        if room >= 0:
            return f"ft:…:{rest}"
        ident = parts[-1]
        if len("ft:…:") + len(ident) <= width:  # the id tells fine-tunes apart: keep it whole
            middle = ":".join(parts[2:-1])
            room = width - len("ft:…:") - len(ident) - 2
            return f"ft:…:{middle[:room]}…:{ident}" if room >= 3 else f"ft:…:{ident}"
    return cut_middle(model, width)
