"""The detail pane's content: one question (or conversation), its proposals, label and history.

Pure rendering from domain objects to a Rich renderable; every untrusted string goes
through `printable` and into `Text`, never into markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from routelab.domain import Action, Decision, Example, Proposal, Status, printable

KIND_STYLE = {"accept": "green", "override": "cyan", "skip": "yellow", "flag": "red", "undo": "magenta", "import": "blue"}
STATUS_STYLE = {Status.UNREVIEWED: "dim", Status.REVIEWED: "green", Status.SKIPPED: "yellow", Status.FLAGGED: "red"}


def _clean(s: str | None) -> str:
    return printable(s or "")


def _cell(s: str, width: int) -> str:
    s = _clean(s)
    return s[: width - 1] + "…" if len(s) > width else s.ljust(width)


def _local_time(at: str) -> str:
    """A decision's time as the operator's clock shows it."""
    try:
        return datetime.fromisoformat(at).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return at[:19]


def render_detail(
    ex: Example | None, proposals: Sequence[Proposal], history: Sequence[Decision],
    best: Proposal | None, *, empty_hint: str = "",
) -> Group:
    """The question (or conversation), each model's proposal (⏎ marks what Enter accepts), the label, the history."""
    if ex is None:
        return Group(Text(empty_hint or "Nothing to review in this filter.", style="dim"))
    label = Text("label   ", style="bold")
    label.append(_clean(ex.label) if ex.label else "—", style="green" if ex.label else "dim")
    return Group(*_question_lines(ex), Text(), *_proposal_lines(proposals, best), Text(), label,
                 *_history_lines(history))


def _question_lines(ex: Example) -> list[Text]:
    head = Text()
    head.append(f"#{ex.id}", style="bold")
    head.append(f" · {_clean(ex.source)} · {ex.split} · ")
    head.append(str(ex.status), style=STATUS_STYLE.get(ex.status, ""))
    lines = [head, Text()]
    for m in ex.messages():
        line = Text()
        line.append(f"{m.role}: ", style="bold" if m.role == "user" else "dim bold")
        line.append(_clean(m.content).replace("\t", " "), style="" if m.role == "user" else "dim")
        lines.append(line)
    return lines


def _proposal_line(p: Proposal, best: Proposal | None) -> Text:
    """`⏎ 0.93  gpt-4.1  book_holiday`, `  ✗   local  invalid  <what it said>`."""
    line = Text(no_wrap=True, overflow="ellipsis")
    chosen = best is not None and p.id == best.id
    valid = p.valid and p.action
    line.append("⏎ " if chosen else "  ", style="bold green")
    if valid:
        line.append(f"{p.confidence:.2f}  " if p.confidence is not None else "  —   ")
    else:
        line.append("  ✗   ", style="red")
    line.append(_cell(p.model, 18) + " ", style="bold" if chosen else "")
    if valid:
        line.append(_clean(p.action), style="bold" if chosen else "")
        if best is not None and p.action != best.action:
            line.append("  ≠ disagrees", style="yellow")
    else:
        line.append("invalid", style="red")
        if p.raw:
            line.append("  " + _clean(p.raw).replace("\n", " ")[:60], style="dim")
    return line


def _proposal_lines(proposals: Sequence[Proposal], best: Proposal | None) -> list[Text]:
    if not proposals:
        return [Text("no proposals yet (routelab label)", style="dim")]
    lines = [_proposal_line(p, best) for p in proposals]
    if best is not None:
        t = Text("Enter accepts ", style="dim")
        t.append(_clean(best.model), style="dim bold")
        t.append("'s ", style="dim")
        t.append(_clean(best.action), style="bold")
        valid_actions = {p.action for p in proposals if p.valid and p.action}
        if len(valid_actions) > 1:
            t.append(f"  ({len(valid_actions)} models disagree)", style="yellow")
        lines.append(t)
    return lines


def _history_lines(history: Sequence[Decision], shown: int = 8) -> list[Text]:
    """The newest `shown` decisions, oldest first, and how many came before."""
    if not history:
        return []
    lines = [Text("history", style="bold")]
    for d in list(history)[-shown:]:
        line = Text("  ")
        line.append(_local_time(d.at), style="dim")
        line.append(f"  {d.kind}", style=KIND_STYLE.get(str(d.kind), ""))
        if d.action:
            line.append(f" {_clean(d.action)}")
        if d.model:
            line.append(f" ({_clean(d.model)})", style="dim")
        if d.undoes:
            line.append(f" #{d.undoes}", style="dim")
        lines.append(line)
    if len(history) > shown:
        lines.append(Text(f"  … {len(history) - shown} earlier", style="dim"))
    return lines


def render_catalog(actions: Sequence[Action], width: int = 200) -> Text:
    """`1 get_policy  2 book_holiday …` and, past nine actions, the picker hint."""
    t = Text(no_wrap=True, overflow="ellipsis")
    for n, a in enumerate(actions[:9], start=1):
        t.append(f"{n}", style="bold reverse")
        t.append(f" {_clean(a.name)}  ")
    if len(actions) > 9:
        t.append("o", style="bold reverse")
        t.append(f" pick from all {len(actions)}")
    elif not actions:
        t.append("no actions yet: routelab actions add NAME", style="dim")
    return t


# ---------------------------------------------------------------- the widget


class DetailView(Widget):
    """Shows a renderable, scrolled by its own offset (J/K, mouse wheel).

    A Line-API widget of fixed size: showing the next question repaints it without a
    layout pass of the whole screen (which a Static in a scroll container would need).
    """

    can_focus = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.renderable: RenderableType = Text("")
        self.offset_y = 0
        self._lines: list[Strip] | None = None
        self._width = 0
        self._base_style: Style | None = None
        self._painted = False

    def show(self, renderable: RenderableType) -> None:
        """Show new content, repainting only the lines that differ (most of a detail is alike)."""
        # diff against what is on screen: lines shown by an earlier show() not yet painted do not count
        old = self._lines if (self.offset_y == 0 and self._painted) else None
        self._painted = False
        self.renderable = renderable
        self.offset_y = 0
        self._lines = None
        height, width = self.size.height, self.outer_size.width
        if old is None or height <= 0 or not self.is_mounted:
            self.refresh()
            return
        new = self._render_all()
        changed = [
            y for y in range(min(height, max(len(old), len(new))))
            if y == height - 1 or y >= len(old) or y >= len(new) or old[y]._segments != new[y]._segments
        ]
        if len(changed) > height // 2:
            self.refresh()
        else:
            self.refresh(*[Region(0, y, width, 1) for y in changed])

    def scroll_lines(self, delta: int) -> None:
        lines = self._render_all()
        room = max(0, len(lines) - self.size.height)
        new = max(0, min(room, self.offset_y + delta))
        if new != self.offset_y:
            self.offset_y = new
            self.refresh()

    def on_mouse_scroll_down(self, event) -> None:
        event.stop()
        self.scroll_lines(3)

    def on_mouse_scroll_up(self, event) -> None:
        event.stop()
        self.scroll_lines(-3)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None
        self._lines = None

    def on_resize(self) -> None:
        self._lines = None

    def _render_all(self) -> list[Strip]:
        width = self.size.width
        if self._lines is None or width != self._width:
            self._width = width
            if width <= 0:
                self._lines = []
            else:
                console = self.app.console
                options = console.options.update_width(width)
                self._lines = [Strip(line, width) for line in console.render_lines(self.renderable, options, pad=True)]
        return self._lines

    def render_line(self, y: int) -> Strip:
        self._painted = True
        base = self._base_style
        if base is None:
            base = self._base_style = self.rich_style
        lines = self._render_all()
        width = self.size.width
        i = self.offset_y + y
        if y == self.size.height - 1 and len(lines) - self.offset_y > self.size.height:
            more = len(lines) - self.offset_y - self.size.height + 1
            return Strip([Segment(f"… {more} more lines (J/K or wheel to scroll)", base + Style(dim=True, italic=True))]).crop_extend(0, width, base)
        if i >= len(lines):
            return Strip.blank(width, base)
        return lines[i].apply_style(base).crop_extend(0, width, base)
