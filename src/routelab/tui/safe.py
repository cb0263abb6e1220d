"""Untrusted text (questions, action names, model output, error text, file names) is shown as
given: never parsed as markup, control characters stripped.

Textual parses markup in a toast's message and in `Static`/`DataTable` strings: an action
named `[/boom]` raises MarkupError and `[@click=app.quit]x[/]` becomes a live link. So the
app renders such strings with `literal` and notifies with `say`, never with `notify` itself.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from routelab.domain import printable


def literal(text: str, style: str = "") -> Text:
    """A Text that shows `text` exactly, minus control characters; markup stays inert."""
    return Text(printable(text).replace("\n", " ").replace("\t", " "), style=style, no_wrap=False)


def say(widget: Any, message: str, *, title: str = "", **kwargs: Any) -> None:
    """A toast that shows `message` (and `title`) literally; `kwargs` as for `notify` (severity, timeout)."""
    widget.notify(printable(message), title=printable(title), markup=False, **kwargs)
