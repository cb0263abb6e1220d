"""A virtual list over the workspace: a Line-API ScrollView that never holds all rows.

`RowWindow` keeps one contiguous run of rows of the current filter (at most a few
hundred) around what is on screen. It grows by keyset pages (`page(after=,
before=)` of a RowSource, an index range scan whatever the offset) and jumps by offset only when
the user leaps far away (scrollbar drag, `G`). The total comes from one COUNT and is
then kept up to date locally as decisions move rows in and out of the filter, so a
decision never pays for a COUNT over a million rows.
"""

from __future__ import annotations

import textwrap
from bisect import bisect_left
from collections.abc import Callable
from typing import Protocol

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from routelab.domain import Example, ExampleFilter, Status, printable

BIG_ID = 2**62


class RowSource(Protocol):
    """Where a window's rows come from (the review session): pages in id order, by keyset or by offset."""

    def page(self, flt: ExampleFilter, *, after: int | None = None, before: int | None = None,
             limit: int = 50) -> list[Example]: ...

    def page_at(self, flt: ExampleFilter, *, offset: int, limit: int = 50) -> list[Example]: ...

    def count(self, flt: ExampleFilter) -> int: ...

    def position(self, flt: ExampleFilter, example_id: int) -> int: ...


class RowWindow:
    """A contiguous slice [start, start + len(rows)) of the filter's rows, in id order."""

    def __init__(self, source: RowSource, flt: ExampleFilter, *, page: int = 100, max_rows: int = 600):
        self.source = source
        self.flt = flt
        self.page = page
        self.max_rows = max_rows
        self.count = 0
        self.exact = True  # False while the count is provisional (see reset)
        self.start = 0
        self.rows: list[Example] = []
        self.fetches = 0  # for tests and the bench: how many queries the window made

    # ------------------------------------------------------------ loading

    def reset(self, flt: ExampleFilter | None = None, *, count: int | None = None, defer_count: bool = False) -> None:
        """The first rows of a (new) filter. With `defer_count` the COUNT is left to the caller
        (a worker thread: it can take a second on a million rows) and `count` is provisional,
        one past the rows known, growing as the rows are paged, until `set_count`."""
        if flt is not None:
            self.flt = flt
        self.start = 0
        self.rows = self._fetch(limit=self.page)
        if count is not None:
            self.set_count(count)
        elif len(self.rows) < self.page:
            self.set_count(len(self.rows))
        elif defer_count:
            self.count, self.exact = len(self.rows) + 1, False
        else:
            self.count_now()

    def set_count(self, count: int) -> None:
        self.count, self.exact = count, True

    def count_now(self) -> None:
        """The exact count, here and now (the COUNT a deferred reset left to a worker)."""
        self.set_count(self.source.count(self.flt))

    def reload_around(self, example_id: int | None, offset_hint: int = 0) -> int:
        """After outside changes: fresh count and rows, the cursor kept on `example_id` if it still matches.

        Returns the offset to put the cursor on."""
        count = self.source.count(self.flt)
        if example_id is not None:
            return self.reanchor(example_id, self.source.position(self.flt, example_id), count)
        self.set_count(count)
        self._load_at(max(0, min(offset_hint, self.count - 1) - self.page // 2))
        return max(0, min(offset_hint, self.count - 1))

    def reanchor(self, example_id: int, position: int, count: int) -> int:
        """Rows around `example_id` by keyset, given its position and the count (computed elsewhere,
        e.g. in a worker thread). If it left the filter, the cursor lands on the row after it."""
        self.set_count(count)
        before = self._fetch(before=example_id, limit=self.page // 2)
        after = self._fetch(after=example_id - 1, limit=self.page)
        self.rows = before + after
        self.start = max(0, position - len(before))
        return max(0, min(position, self.count - 1))

    def _fetch(self, **kw) -> list[Example]:
        self.fetches += 1
        return self.source.page(self.flt, **kw)

    def _load_at(self, offset: int) -> None:
        self.fetches += 1
        self.start = max(0, offset)
        self.rows = self.source.page_at(self.flt, offset=self.start, limit=self.page * 2)

    def _load_tail(self) -> None:
        self.rows = self._fetch(before=BIG_ID, limit=self.page * 2)
        self.start = max(0, self.count - len(self.rows))

    @property
    def end(self) -> int:
        return self.start + len(self.rows)

    def get(self, offset: int) -> Example | None:
        if offset < 0 or offset >= self.count:
            return None
        if not (self.start <= offset < self.end):
            self._ensure(offset)
        i = offset - self.start
        return self.rows[i] if 0 <= i < len(self.rows) else None

    def _ensure(self, offset: int) -> None:
        if self.rows and self.end <= offset < self.end + self.page:
            while self.end <= offset:  # step forward by keyset
                more = self._fetch(after=self.rows[-1].id, limit=self.page)
                if not more:
                    self.count = self.end  # the end (or the filter shrank under us: another process)
                    return
                self.rows += more
                if not self.exact:
                    self.count = max(self.count, self.end + (len(more) == self.page))
            self._trim(keep=offset)
        elif self.rows and self.start - self.page <= offset < self.start:
            while offset < self.start:  # step backward by keyset
                more = self._fetch(before=self.rows[0].id, limit=self.page)
                if not more:
                    self.start = 0
                    return
                self.rows[:0] = more
                self.start -= len(more)
            if self.start < 0:  # the filter changed under us; re-anchor
                self._load_at(max(0, offset - self.page // 2))
            self._trim(keep=offset)
        elif self.exact and offset >= self.count - self.page * 2:
            self._load_tail()
        else:
            self._load_at(max(0, offset - self.page // 2))

    def _trim(self, keep: int) -> None:
        excess = len(self.rows) - self.max_rows
        if excess <= 0:
            return
        if keep - self.start > len(self.rows) // 2:
            del self.rows[:excess]
            self.start += excess
        else:
            del self.rows[len(self.rows) - excess:]

    # ------------------------------------------------------------ local edits after a decision

    def offset_of(self, example_id: int) -> int | None:
        ids = [r.id for r in self.rows] if len(self.rows) < 64 else None
        if ids is not None:
            return self.start + ids.index(example_id) if example_id in ids else None
        i = bisect_left(self.rows, example_id, key=lambda r: r.id)
        if i < len(self.rows) and self.rows[i].id == example_id:
            return self.start + i
        return None

    def remove(self, offset: int) -> None:
        i = offset - self.start
        if 0 <= i < len(self.rows):
            del self.rows[i]
        elif offset < self.start:
            self.start -= 1
        self.count = max(0, self.count - 1)

    def replace(self, offset: int, example: Example) -> None:
        i = offset - self.start
        if 0 <= i < len(self.rows):
            self.rows[i] = example

    def insert(self, example: Example) -> int | None:
        """Put back a row that re-entered the filter (after an undo); its offset, or None if off-window."""
        rows = self.rows
        at_start = self.start == 0
        at_end = self.end >= self.count
        if not rows:
            if self.count == 0:
                self.rows, self.start, self.count = [example], 0, 1
                return 0
            return None
        if (rows[0].id < example.id or at_start) and (example.id < rows[-1].id or at_end):
            i = bisect_left(rows, example.id, key=lambda r: r.id)
            if i < len(rows) and rows[i].id == example.id:
                rows[i] = example
                return self.start + i
            rows.insert(i, example)
            self.count += 1
            return self.start + i
        return None


    def apply_decision(self, ex: Example, cursor: int, *, stays: Callable[[], bool], anchor: int | None) -> int:
        """`ex` was just decided: it stays (the cursor moves past it) or leaves the filter (the next
        row slides under the cursor). Returns the cursor. `anchor`: the row to re-read around when
        `ex` is no longer in the window."""
        offset = self.offset_of(ex.id)
        if offset is None:  # off the window (moved meanwhile): re-read around the cursor
            return self.reload_around(anchor, cursor)
        if stays():
            self.replace(offset, ex)
            return offset + 1 if offset == cursor else cursor
        self.remove(offset)
        return cursor - 1 if offset < cursor else cursor

    def apply_undo(self, ex: Example, *, belongs: bool) -> int | None:
        """`ex` came back from an undo: put it back in place (its offset, for the cursor), or drop it
        when it is outside the filter now (None)."""
        offset = self.offset_of(ex.id)
        if not belongs:
            if offset is not None:
                self.remove(offset)
            return None
        if offset is not None:
            self.replace(offset, ex)
            return offset
        offset = self.insert(ex)
        return offset if offset is not None else self.reload_around(ex.id)


STATUS_MARK = {
    Status.UNREVIEWED: ("·", "dim"),
    Status.REVIEWED: ("✓", "green"),
    Status.SKIPPED: ("»", "yellow"),
    Status.FLAGGED: ("⚑", "red"),
}


class ExampleList(ScrollView, can_focus=True):
    """The dataset pane. The owner moves the cursor; the list draws the visible lines only."""

    COMPONENT_CLASSES = {"example-list--cursor", "example-list--label"}
    on_rows_rendered: Callable[[], None] | None = None  # bench hook: called once, when rows first render
    BINDINGS = [Binding("pageup", "page_up", "Page up", show=False), Binding("pagedown", "page_down", "Page down", show=False)]

    class Clicked(Message):
        def __init__(self, offset: int) -> None:
            super().__init__()
            self.offset = offset

    def __init__(self, window: RowWindow | None = None, **kwargs):
        super().__init__(**kwargs)
        self.window = window
        self.cursor = 0
        self._line_cache: dict[tuple, Strip] = {}
        self._base_style: Style | None = None
        self._size_timer = None
        self._frame: tuple[int, int] | None = None
        self._empty_hint: str | None = None

    @property
    def empty_hint(self) -> str:
        """The line shown when the filter has no rows (the owner knows when the workspace is empty)."""
        return self._empty_hint or "nothing here: change the filter (v) or search (/)"

    @empty_hint.setter
    def empty_hint(self, hint: str | None) -> None:
        if hint != self._empty_hint:
            self._empty_hint = hint
            self.refresh()

    # ------------------------------------------------------------ data

    def set_window(self, window: RowWindow) -> None:
        self.window = window
        self.sync()

    def sync(self, *, lazy: bool = False) -> None:
        """Counts or rows changed: cursor clamped and visible, redraw.

        A new virtual size means a layout pass of the whole screen, so after a decision
        (`lazy`) a shrinking list updates its scrollbar a moment later, off the keypress path.
        """
        count = self.window.count if self.window else 0
        self.cursor = max(0, min(self.cursor, count - 1))
        if count > self.virtual_size.height or (count != self.virtual_size.height and not lazy):
            self._apply_virtual_size()
        elif count != self.virtual_size.height:
            if self._size_timer is not None:
                self._size_timer.stop()
            self._size_timer = self.set_timer(0.5, self._apply_virtual_size)
        self.scroll_to_cursor()
        self.refresh()

    def _apply_virtual_size(self) -> None:
        self._size_timer = None
        count = self.window.count if self.window else 0
        if count != self.virtual_size.height:
            self.virtual_size = Size(self.size.width or 1, count)

    def current(self) -> Example | None:
        return self.window.get(self.cursor) if self.window else None

    def move_to(self, offset: int) -> None:
        if self.window is None:
            return
        self.cursor = max(0, min(offset, self.window.count - 1))
        self.scroll_to_cursor()
        self.refresh()

    def scroll_to_cursor(self) -> None:
        height = self.scrollable_content_region.height or self.size.height
        if height <= 0:
            return
        y = round(self.scroll_offset.y)
        if self.cursor < y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= y + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_page_up(self) -> None:
        self.move_to(self.cursor - max(1, self.size.height - 1))

    def action_page_down(self) -> None:
        self.move_to(self.cursor + max(1, self.size.height - 1))

    def on_click(self, event) -> None:
        offset = round(self.scroll_offset.y) + event.y
        if self.window and 0 <= offset < self.window.count:
            self.post_message(self.Clicked(offset))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()
        self._base_style = None

    def on_resize(self) -> None:
        self._line_cache.clear()
        self.virtual_size = Size(self.size.width, self.window.count if self.window else 0)

    # ------------------------------------------------------------ drawing

    def render_lines(self, crop):
        # what every line needs, computed once per paint instead of once per line
        self._frame = (self.scrollable_content_region.width or self.size.width, round(self.scroll_offset.y))
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        frame = self._frame
        if frame is None:
            frame = (self.scrollable_content_region.width or self.size.width, round(self.scroll_offset.y))
        width, top = frame
        offset = top + y
        base = self._base_style
        if base is None:  # computing rich_style costs more than drawing a row: once per style change
            base = self._base_style = self.rich_style
        ex = self.window.get(offset) if self.window else None
        if ex is None:
            if self.window is not None and self.window.count == 0:
                lines = textwrap.wrap(self.empty_hint, max(10, width - 2))
                if y < len(lines):
                    return Strip([Segment("  " + lines[y], base + Style(dim=True))]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        is_cursor = offset == self.cursor
        key = (ex.id, ex.status, ex.label, is_cursor, width)
        strip = self._line_cache.get(key)
        if strip is None:
            strip = self._render_row(ex, is_cursor, width, base)
            if len(self._line_cache) > 2000:
                self._line_cache.clear()
            self._line_cache[key] = strip
        if self.on_rows_rendered is not None:
            hook, self.on_rows_rendered = self.on_rows_rendered, None
            hook()
        return strip

    def _render_row(self, ex: Example, is_cursor: bool, width: int, base: Style) -> Strip:
        mark, mark_style = STATUS_MARK.get(ex.status, ("?", ""))
        cursor_style = self.get_component_rich_style("example-list--cursor") if is_cursor else Style()
        label_style = self.get_component_rich_style("example-list--label")
        # One line per question: the text without control characters, newlines folded.
        text = printable(ex.text).replace("\n", " ").replace("\t", " ")
        if ex.conversation:
            text = f"[{len(ex.conversation)}↩] " + text
        label = f" {ex.label}" if ex.label else ""
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        line.append("▸" if is_cursor else " ")
        line.append(mark, style=mark_style)
        line.append(" ")
        room = max(1, width - 3 - len(label))
        body = Text(text[: room * 2 + 8], no_wrap=True, overflow="ellipsis", end="")
        body.truncate(room, overflow="ellipsis", pad=True)
        line.append_text(body)
        if label:
            line.append(label, style=label_style)
        under = base + cursor_style if is_cursor else base
        segments = list(line.render(self.app.console))
        return Strip(segments).apply_style(under).crop_extend(0, width, under)
