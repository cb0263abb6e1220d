"""Files of an export: assembled from the spool, hashed as written, and put in place as a whole.

An export directory is replaced whole or not at all. Everything is written into a hidden
sibling, `.NAME.routelab-tmp-PID[-N]`, and fsynced; then the two directories are swapped
in one atomic step (Linux's renameat2 RENAME_EXCHANGE) and the old one removed. Where that
is not available, the old directory is renamed aside (`.NAME.routelab-old-PID`) and the new
one renamed in. A kill -9 at any point leaves NAME holding the complete old export or the
complete new one; the next export removes what the dead process left (and, had it died
between the two renames, puts the old directory back first).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from routelab.domain import BadInput
from routelab.services.export_sink import ChunkWriter

EXPORT_FILES = ("train.jsonl", "validation.jsonl", "report.json")
# temporaries of one file inside an export directory: a reused export's new report, and what
# earlier versions (which replaced file by file) left there when killed
_FILE_TEMP = re.compile(r"^\.(train\.jsonl|validation\.jsonl|report\.json)\..+\.tmp$")
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.routelab-(?P<kind>tmp|old)-(?P<pid>\d+)(?:-\d+)?$")
_CHUNK = 4 << 20  # bytes assembled before each write (and hash update)
_counter = iter(range(1, 1 << 62))


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _alive(pid: int) -> bool:
    from routelab.services.jobrun import owner_alive  # the one process-liveness check

    return owner_alive({"pid": pid})


def remove_leftovers(parent: Path) -> None:
    """Clean up after exports that were killed: their hidden siblings in `parent` (dead owners only)."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    found = [(p, m) for p in entries if (m := _LEFTOVER.match(p.name)) and not _alive(int(m["pid"]))]
    for path, m in sorted(found, key=lambda f: f[1]["kind"] != "old"):  # restore before removing
        target = parent / m["name"]
        if m["kind"] == "old" and not target.exists():
            os.replace(path, target)  # died between the renames: the old export is the complete one
        else:
            shutil.rmtree(path, ignore_errors=True)


def staging_dir(parent: Path, name: str) -> tuple[Path, list[Path]]:
    """A new hidden sibling of `parent / name` that an interrupted export's successor will recognise,
    and the folders made for it (outermost first), so nothing is left if the export is not written."""
    made = [p for p in (parent, *parent.parents) if not p.exists()][::-1]
    parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(parent)
    path = parent / f".{name}.routelab-tmp-{os.getpid()}-{next(_counter)}"
    path.mkdir()
    return path, made


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders an export made, innermost first, where they are still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_lines(path: Path, head: bytes, lines: Iterable[tuple[int, int, int]], spools: list[int],
                hashes: list) -> tuple[int, int]:
    """Write head + spooled line for each (spool, offset, length), feeding every byte to `hashes`.

    Returns (lines, bytes). Lines are assembled here while threads write and hash the
    previous chunks (export_sink). The file is fsynced and made an ordinary file (0666 less
    the umask).
    """
    n = size = 0
    pread = os.pread
    with ChunkWriter(path, hashes) as writer:
        parts: list[bytes] = []
        pending = 0
        for s, offset, length in lines:
            parts += (head, pread(spools[s], length, offset))
            pending += len(head) + length
            n += 1
            if pending >= _CHUNK:
                writer.put(b"".join(parts))
                size += pending
                parts, pending = [], 0
        writer.put(b"".join(parts))
        size += pending
    os.chmod(path, 0o666 & ~_UMASK)
    return n, size


def write_file(path: Path, data: bytes) -> None:
    """One small file, fsynced, as an ordinary file."""
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o666 & ~_UMASK)


def replace_file(path: Path, data: bytes) -> None:
    """Atomically replace one file (the report of a reused export)."""
    tmp = path.parent / f".{path.name}.{os.getpid()}-{next(_counter)}.tmp"
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def same_files(a: Path, b: Path, names: Iterable[str]) -> bool:
    """Do both directories hold these files byte for byte (absent in both counts as the same)?"""
    for name in names:
        x, y = a / name, b / name
        if x.is_file() != y.is_file() or (x.is_file() and not _same_bytes(x, y)):
            return False
    return True


def _same_bytes(x: Path, y: Path) -> bool:
    if x.stat().st_size != y.stat().st_size:
        return False
    with x.open("rb") as fx, y.open("rb") as fy:
        while True:
            cx, cy = fx.read(1 << 20), fy.read(1 << 20)
            if cx != cy:
                return False
            if not cx:
                return True


def check_target(out: Path) -> None:
    """An export replaces its directory whole: refuse a directory that holds anything else."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a directory")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir()
                       if p.name not in EXPORT_FILES and not _FILE_TEMP.match(p.name))
        if other:
            shown = ", ".join(other[:3]) + (f" (+{len(other) - 3} more)" if len(other) > 3 else "")
            raise BadInput(f"{out}: holds files that are not part of an export ({shown}); "
                           "export into a new or empty directory")


def remove_file_temporaries(out: Path) -> None:
    """Temporaries of single files inside the export directory, left by a kill (see _FILE_TEMP)."""
    for p in out.iterdir():
        if _FILE_TEMP.match(p.name):
            p.unlink(missing_ok=True)


def move_beside(staged: Path, out: Path) -> Path:
    """The staged directory as a hidden sibling of `out` (renamed, or copied across file systems)."""
    if staged.parent == out.parent:
        return staged
    beside, _ = staging_dir(out.parent, out.name)
    try:
        os.rename(staged, beside)  # onto the new, empty directory
    except OSError:  # another file system: copy, then let the staged copy go
        for p in staged.iterdir():
            shutil.copyfile(p, beside / p.name)
            with (beside / p.name).open("rb") as f:
                os.fsync(f.fileno())
            os.chmod(beside / p.name, 0o666 & ~_UMASK)
        shutil.rmtree(staged, ignore_errors=True)
    return beside


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE); False where it is not
    available (another OS, an old C library, a file system without it): then two renames do it."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def swap_in(new: Path, out: Path) -> None:
    """Put the complete directory `new` at `out`, replacing whatever export is there, as a whole."""
    fsync_dir(new)
    if out.is_dir() and any(out.iterdir()):
        if _exchange(new, out):  # one atomic step: `out` is never missing, not even for a moment
            fsync_dir(out.parent)
            shutil.rmtree(new, ignore_errors=True)  # now the old export
            return
        old = out.parent / f".{out.name}.routelab-old-{os.getpid()}-{next(_counter)}"
        os.replace(out, old)
        os.replace(new, out)
        fsync_dir(out.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, out)  # an empty directory is replaced in one step
    fsync_dir(out.parent)
