"""Who holds a workspace's write lock, and how long a writer waits for it.

SQLite in WAL mode takes its write lock as a POSIX lock on one byte of the `-shm` file
(offset 120, WAL_WRITE_LOCK); /proc/locks lists such locks with the owner's pid, so the
process that holds the lock can be named, not guessed. Where /proc/locks says nothing
(another OS, another pid namespace), the processes that have the workspace open (from
/proc/*/fd) are named instead. Reading them costs a few milliseconds: only ever done
when a write has already failed or is already waiting.
"""

from __future__ import annotations

import os
from pathlib import Path

from routelab.domain import BadInput, RoutelabError

DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write to finish
WAL_WRITE_LOCK = 120


def busy_timeout() -> float:
    """Seconds a writer waits for the lock: $ROUTELAB_BUSY_TIMEOUT, else 30."""
    raw = os.environ.get("ROUTELAB_BUSY_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_BUSY_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:
        raise BadInput(f"bad setting ROUTELAB_BUSY_TIMEOUT={raw!r}: seconds between 0 and 86400")
    return value


class WorkspaceLocked(RoutelabError):
    """Another process holds the workspace's write lock (past the busy timeout, or without waiting)."""

    exit_code = 1

    def __init__(self, path: Path, waited: float):
        self.path, self.waited = Path(path), waited
        super().__init__(str(path))

    def holders(self) -> list[tuple[int, str]]:
        return lock_holders(self.path)

    def __str__(self) -> str:
        who = describe_holders(self.holders())
        waited = f"waited {self.waited:g} s; " if self.waited else ""
        return (f"{self.path}: busy: {who} is writing to this workspace; try again when it has finished "
                f"({waited}ROUTELAB_BUSY_TIMEOUT sets how long to wait)")


WHAT_RUNS = {"import": "an import", "label": "a labeling run", "export": "an export", "accept": "a bulk accept",
             "generate": "a generation run", "finetune": "a fine-tune", "eval": "an evaluation"}


def describe_holders(holders: list[tuple[int, str]]) -> str:
    """`an import in another process (pid 12: routelab import big.csv)`, or `another process`."""
    if not holders:
        return "another process"
    pid, command = holders[0]
    words = command.split()
    command_word = next((w for w in words[1:] if not w.startswith("-")), "") if words[:1] == ["routelab"] else ""
    what = WHAT_RUNS[command_word] + " in " if command_word in WHAT_RUNS else ""
    more = f" and {len(holders) - 1} more" if len(holders) > 1 else ""
    shown = command if len(command) <= 60 else command[:59] + "…"
    return f"{what}another process (pid {pid}: {shown}){more}"


def lock_holders(path: Path) -> list[tuple[int, str]]:
    """(pid, command line) of the process holding the write lock, else of those with the file open."""
    me = os.getpid()
    pids = [p for p in _write_lockers(Path(f"{path}-shm")) if p != me] or [p for p in _openers(path) if p != me]
    return [(pid, _command(pid)) for pid in sorted(set(pids))]


def _write_lockers(shm: Path) -> list[int]:
    try:
        st = shm.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        parts = line.split()
        # "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 120 120"
        if len(parts) < 8 or parts[1] != "POSIX" or parts[3] != "WRITE":
            continue
        try:
            inode = int(parts[5].rsplit(":", 1)[1])
            start, pid = int(parts[6]), int(parts[4])
        except (ValueError, IndexError):
            continue
        if inode == st.st_ino and start == WAL_WRITE_LOCK:
            pids.append(pid)
    return pids


def _openers(path: Path) -> list[int]:
    try:
        target = os.path.realpath(path)
        procs = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    found = []
    for pid in procs:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in fds):
                found.append(int(pid))
        except OSError:
            continue  # gone, or not ours to look at
    return found


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if len(words) > 2 and Path(words[0]).name.startswith("python") and words[1:3] == ["-m", "routelab"]:
        words = ["routelab", *words[3:]]
    elif len(words) > 1 and Path(words[0]).name.startswith("python") and words[1].endswith("routelab"):
        words = words[1:]
    if words:
        words[0] = Path(words[0]).name
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(words))
