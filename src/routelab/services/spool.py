"""Copy an input that can be read only once (stdin, a pipe, a FIFO, a device) to a temporary file.

Format detection reads the head of a file and parsing reads it again, maybe in a worker
process: from a pipe the second reader would get only what the first left. So a stream
is read once, into a file in TMPDIR that the import removes when it ends (one left by a
killed import is removed by a later one, once it is an hour old). The copy applies the
parser's bounds as it goes, so an endless line (`yes | tr -d '\\n'`) stops at the line
bound and an endless JSON document at its size bound, instead of filling the disk; an
endless run of good lines is a big file, copied until the disk says no (exit 1).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from routelab.domain import BadInput, RoutelabError

STDIN = "-"
STDIN_NAME = "<stdin>"
PREFIX = "routelab-import-"
SUFFIX = ".spool"
BLOCK = 1 << 20
REPORT_EVERY = 16 << 20  # bytes between "reading ..." messages
STALE_AFTER_S = 3600


def is_stream(path: str) -> bool:
    """Whether `path` can be read only once: stdin, a pipe, a FIFO, a device, or anything
    named through /dev/fd or /proc (a worker process opening it would get its own stdin)."""
    if path == STDIN or path.startswith(("/dev/fd/", "/dev/std", "/proc/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # the caller reports a missing file
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class Spool:
    """The copy of one stream: `head()` first, then `finish()` copies the rest and returns the file.

    Used as a context manager: on any error (or Ctrl-C) before `finish()` the copy is removed.
    """

    def __init__(self, path: str, notify: Callable[[str], None] | None = None):
        self.name = STDIN_NAME if path == STDIN else path
        self._notify = notify or (lambda message: None)
        typing = path in (STDIN, "/dev/stdin") and sys.stdin is not None and sys.stdin.isatty()
        self._notify("type or paste the questions, then Ctrl-D:\n" if typing else f"waiting for input on {self.name} ...")
        try:
            # Opening a FIFO blocks until a writer opens it: the message above says why we wait.
            self._in: BinaryIO = sys.stdin.buffer if path == STDIN else open(path, "rb")
        except OSError as e:
            raise BadInput(f"{self.name}: cannot read ({e.strerror})") from None
        directory = Path(tempfile.gettempdir())
        remove_stale(directory)
        try:
            fd, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=SUFFIX, dir=directory)
        except OSError as e:
            self._close_input()
            raise self._cannot_copy(directory, e) from None
        self.path = Path(name)
        self._out = os.fdopen(fd, "wb")
        self._head = b""
        self._eof = False
        self.size = 0
        self._finished = False

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_input()
        with contextlib.suppress(OSError):  # reported already, by finish()
            self._out.close()
        if not self._finished:
            self.path.unlink(missing_ok=True)

    def _close_input(self) -> None:
        if self._in is not sys.stdin.buffer:
            self._in.close()

    def head(self, n: int) -> bytes:
        """The first `n` bytes (fewer at the end of the input), kept in the copy."""
        self._head = self._read(n)
        self._write(self._head)
        return self._head

    def finish(self, *, max_line: int | None = None, max_bytes: int | None = None) -> Path:
        """Copy the rest: BadInput at the first line over `max_line` bytes or past `max_bytes` in all."""
        line, run = 1, 0  # the line being copied, and its length so far
        block = min(BLOCK, max_line or BLOCK)
        data = self._head
        while data:
            if max_line is not None:
                line, run = self._count_lines(data, line, run, max_line)
            if max_bytes is not None and self.size > max_bytes:
                raise BadInput(f"{self.name}: over {max_bytes >> 20} MiB, too big for one JSON document "
                               "(write one question per line: JSONL)")
            data = b"" if self._eof else self._read(block)
            self._write(data)
        try:
            self._out.close()
        except OSError as e:
            raise self._cannot_copy(self.path.parent, e) from None
        self._finished = True
        return self.path

    def _count_lines(self, data: bytes, line: int, run: int, max_line: int) -> tuple[int, int]:
        """The line and run after `data`. Only lines that cross a block boundary need
        measuring: one between two newlines of a block is shorter than the block, and a
        block is at most `max_line` + 1 bytes (the head)."""
        first = data.find(b"\n")
        if first < 0:
            run += len(data)
        else:
            if run + first > max_line:
                raise self._too_long(line, max_line)
            line += data.count(b"\n")
            run = len(data) - data.rfind(b"\n") - 1
        if run > max_line:
            raise self._too_long(line, max_line)
        return line, run

    def _too_long(self, line: int, max_line: int) -> BadInput:
        limit = f"{max_line // 1024} KiB" if max_line >= 1024 else f"{max_line} bytes"
        return BadInput(f"{self.name}: line {line}: line longer than {limit}")

    def _cannot_copy(self, directory: Path, e: OSError) -> RoutelabError:
        return RoutelabError(f"{self.name}: cannot copy the input to {directory} ({e.strerror}; "
                             "set TMPDIR to a folder with room)")

    def _read(self, n: int) -> bytes:
        try:
            data = self._in.read(n)
        except OSError as e:
            raise BadInput(f"{self.name}: cannot read ({e.strerror})") from None
        # A buffered read is short only at the end; a terminal's Ctrl-D is not sticky, so
        # reading on would wait for a second one.
        self._eof = len(data) < n
        return data

    def _write(self, data: bytes) -> None:
        if not data:
            return
        before = self.size
        try:
            self._out.write(data)
        except OSError as e:
            raise self._cannot_copy(self.path.parent, e) from None
        self.size += len(data)
        if not before or self.size // REPORT_EVERY > before // REPORT_EVERY:
            self._notify(f"reading {self.name}: {self.size / (1 << 20):,.1f} MiB")


def remove_stale(directory: Path) -> None:
    """Remove copies left by imports that were killed: their process is gone, and they are
    an hour old (a TMPDIR shared between containers sees other pid namespaces' copies)."""
    for leftover in directory.glob(f"{PREFIX}*{SUFFIX}"):
        pid = leftover.name.removeprefix(PREFIX).split("-", 1)[0]
        with contextlib.suppress(OSError):  # another user's, or already gone
            if pid.isdigit() and not _alive(int(pid)) and time.time() - leftover.stat().st_mtime > STALE_AFTER_S:
                leftover.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
