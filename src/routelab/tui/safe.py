"""Untrusted text (questions, model output, file names) is never parsed as markup."""

from __future__ import annotations

from rich.text import Text

from routelab.domain import printable


def literal(text: str, style: str = "") -> Text:
    """A Text that shows `text` exactly, minus control characters; markup stays inert."""
    return Text(printable(text).replace("\n", " ").replace("\t", " "), style=style, no_wrap=False)
