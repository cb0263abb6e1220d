"""One streaming pass over the workspace: label each example, render its line, count its tokens.

Nothing is held per example but a few fixed-size numbers (id, a 64-bit hash of its
near-duplicate key, action, origin, tokens, line length); the rendered line (everything
after the system message, which is the same on every line) goes to a spool file. A big
workspace is scanned in two id ranges at once, one of them in a worker process, because
building each row's Example and counting its tokens is what the time goes on.
"""

from __future__ import annotations

import os
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from json.encoder import encode_basestring
from pathlib import Path

from routelab.domain import Example, Status
from routelab.services.export_checks import count_tokens
from routelab.services.offload import iterate_in_process
from routelab.store import ExampleFilter, Store

PAGE = 5000  # examples per keyset page
PARALLEL_MIN = 150_000  # below this a worker process costs more (~1.3 s of CPU to start) than it saves
STARTUP_ROWS = 30_000  # rows scanned in the time a worker takes to start (~1 s of CPU)
LEAN_CACHE_KIB = 16_384  # SQLite page cache of the export's own connections
HUMAN, WAS_VALIDATION, WAS_TRAIN = 1, 2, 4  # bits of ScanPage.flags (the last two: the workspace's split)
KEY_BYTES = 8  # a near-duplicate key is kept as 64 bits of its hash, little-endian
_NOT_WORD = re.compile(r"[\W_]+")
# What [\W_]+ removes from lowercased ASCII: everything but a-z and 0-9 (bytes.translate is ~10x faster)
_ASCII_NOT_WORD = bytes(c for c in range(128) if not (48 <= c <= 57 or 97 <= c <= 122))
_dumps = encode_basestring  # what json.dumps(s, ensure_ascii=False) does for a str, without the calls around it
_USER = '{"role": "user", "content": '


def near_key(text: str) -> str:
    """Near-identical texts share a key: lowercase, punctuation and whitespace removed."""
    key = _NOT_WORD.sub("", text.lower())
    return key or text.strip().lower()


def _near_key_bytes(text: str) -> bytes:
    """near_key(text) in UTF-8, faster for ASCII text."""
    if text.isascii():
        key = text.encode().lower().translate(None, _ASCII_NOT_WORD)
        return key or text.strip().lower().encode()
    return near_key(text).encode("utf-8", "surrogatepass")


def key_hash(text: str) -> bytes:
    """64 bits of the text's near-duplicate key: fixed size whatever the text's length, the same in
    every process (a collision among a million keys has odds of about 1 in 37 million, and would
    only keep two unrelated groups on one side of the split)."""
    return blake2b(_near_key_bytes(text), digest_size=KEY_BYTES).digest()


def message_json(role: str, content: str) -> str:
    """One message as json.dumps writes it inside the line's list."""
    return '{"role": ' + _dumps(role) + ', "content": ' + _dumps(content) + "}"


@dataclass(frozen=True)
class ScanSpec:
    """What one id range's scan needs (picklable: it travels to the worker)."""

    db_path: str
    spool: str  # where the rendered lines of this range go, in id order
    actions: tuple[str, ...]  # active action names, sorted; an example's action is an index into this
    answers: tuple[str, ...]  # the assistant message (JSON) of each action
    fixed_tokens: int  # the reply's priming and the system message
    answer_tokens: tuple[int, ...]  # the assistant message's tokens, per action
    teacher: str | None
    after: int = 0  # the range: ids after this one...
    last: int | None = None  # ...up to and including this one (None: to the end)


@dataclass
class ScanPage:
    """What a page of examples came to. Arrays, so a million rows cost ~30 MB and pickle fast."""

    ids: array = field(default_factory=lambda: array("q"))
    keys: bytearray = field(default_factory=bytearray)  # KEY_BYTES per example
    actions: array = field(default_factory=lambda: array("H"))
    flags: array = field(default_factory=lambda: array("B"))
    tokens: array = field(default_factory=lambda: array("i"))
    lengths: array = field(default_factory=lambda: array("i"))  # bytes of the line in the spool
    test_keys: bytearray = field(default_factory=bytearray)
    left_out: Counter[str] = field(default_factory=Counter)

    def extend(self, other: ScanPage) -> None:
        for name in ("ids", "keys", "actions", "flags", "tokens", "lengths", "test_keys"):
            getattr(self, name).extend(getattr(other, name))
        self.left_out.update(other.left_out)


def _teacher_answers(store: Store, spec: ScanSpec, page: list[Example]) -> dict[int, tuple[str | None, bool]]:
    """(action, valid) of the teacher's proposal for the examples of this page that need one."""
    if spec.teacher is None:
        return {}
    ids = [e.id for e in page if e.label is None and e.split != "test"
           and e.status not in (Status.SKIPPED, Status.FLAGGED)]
    if not ids:
        return {}
    return {i: (p.action, p.valid) for i, p in store.proposals_for(spec.teacher, ids).items()}


def _label(e: Example, answers: dict[int, tuple[str | None, bool]], left_out: Counter[str]) -> tuple[str, int] | None:
    """(action, HUMAN or 0): the human label first, else the teacher's valid answer; None: left out."""
    if e.status == Status.SKIPPED:
        left_out["skipped"] += 1
        return None
    if e.status == Status.FLAGGED:
        left_out["flagged"] += 1
        return None
    if e.label is not None:
        return e.label, HUMAN
    action, valid = answers.get(e.id, (None, False))
    if not valid or action is None:
        left_out["invalid_teacher_answer" if e.id in answers else "unlabelled"] += 1
        return None
    return action, 0


def _render(e: Example, answer: str) -> tuple[bytes, list[dict[str, str]]]:
    """The line after the system message (UTF-8), and the turns whose tokens it adds."""
    if not e.conversation:
        return (_USER + _dumps(e.text) + "}, " + answer + "]}\n").encode("utf-8"), [
            {"role": "user", "content": e.text}]
    turns = [{"role": m.role, "content": m.content} for m in e.conversation]
    turns.append({"role": "user", "content": e.text})
    return (", ".join([*(message_json(m["role"], m["content"]) for m in turns), answer]) + "]}\n").encode(
        "utf-8"), turns


def scan_page(store: Store, spec: ScanSpec, page: list[Example], spool) -> ScanPage:
    """Label, key, render and count one page; the rendered lines are appended to `spool`.

    The hot loop of an export (a million rows): methods are bound once, nothing is looked up twice.
    """
    out, lines = ScanPage(), []
    index = {name: i for i, name in enumerate(spec.actions)}
    teacher = _teacher_answers(store, spec, page)
    fixed, answers, answer_tokens, left_out = spec.fixed_tokens - 3, spec.answers, spec.answer_tokens, out.left_out
    add_id, add_action, add_flags = out.ids.append, out.actions.append, out.flags.append
    add_tokens, add_length, add_line = out.tokens.append, out.lengths.append, lines.append
    for e in page:
        text = e.text
        if e.split == "test":
            out.test_keys += key_hash(text)
            continue
        labelled = _label(e, teacher, left_out)
        if labelled is None:
            continue
        a = index.get(labelled[0])
        if a is None:
            left_out["inactive_action"] += 1
            continue
        data, turns = _render(e, answers[a])
        add_line(data)
        add_id(e.id)
        out.keys += key_hash(text)
        add_action(a)
        add_flags(labelled[1] | (WAS_VALIDATION if e.split == "validation" else WAS_TRAIN if e.split == "train" else 0))
        add_tokens(fixed + count_tokens(turns) + answer_tokens[a])  # the sum over messages
        add_length(len(data))
    spool.write(b"".join(lines))
    return out


def open_lean(path: str) -> Store:
    """A connection of the export's own, with a small page cache: the workspace's (256 MiB) would fill
    with the pages a scan reads once (or an update of the split touches), and stay in the caller's
    memory (the app's) afterwards."""
    store = Store.open(path, create=False)
    store.conn.execute(f"PRAGMA cache_size = -{LEAN_CACHE_KIB}")
    return store


def scan_range(spec: ScanSpec, reader: Store | None = None) -> Iterator[ScanPage]:
    """Keyset-page through one id range, yielding what each page came to (module level: a worker runs it)."""
    store = reader or open_lean(spec.db_path)
    try:
        with open(spec.spool, "wb", buffering=1 << 20) as spool:
            after = spec.after
            while True:
                page = store.page(ExampleFilter(), after=after, limit=PAGE)
                if spec.last is not None:
                    page = [e for e in page if e.id <= spec.last]
                if not page:
                    return
                yield scan_page(store, spec, page, spool)
                after = page[-1].id
    finally:
        if reader is None:
            store.close()


def _ranges(store: Store) -> list[tuple[int, int | None]]:
    """One id range, or two halves when the workspace is big enough for a second process to pay."""
    first, last = store.page(ExampleFilter(), limit=1), store.page(ExampleFilter(), before=2**62, limit=1)
    n = last[0].id - first[0].id + 1 if first else 0  # about the count (ids are dense), without counting
    if n < PARALLEL_MIN:
        return [(0, None)]
    # ids are about dense; the worker gets fewer rows, as its start-up costs about STARTUP_ROWS
    mid = first[0].id + (last[0].id - first[0].id) * (n + STARTUP_ROWS) // (2 * n)
    return [(0, mid), (mid, None)]


def scan_range_whole(spec: ScanSpec) -> Iterator[ScanPage | None]:
    """scan_range for a worker: None at once (it has started), then the whole range in one message,
    so the worker never waits for the caller to read a page."""
    yield None
    parent, whole = os.getppid(), ScanPage()
    for page in scan_range(spec):
        if os.getppid() != parent:
            return  # the caller was killed: nobody will read this
        whole.extend(page)
    yield whole


class _Worker:
    """A worker process scanning one range; its start-up (~1 s) is awaited in a thread, so this
    process scans its own range meanwhile."""

    def __init__(self, spec: ScanSpec):
        self.messages = iterate_in_process(scan_range_whole, spec)
        self._starting = ThreadPoolExecutor(1, thread_name_prefix="export-worker")
        self._started = self._starting.submit(next, self.messages, None)

    def result(self) -> ScanPage:
        self._started.result()
        self._starting.shutdown()
        whole = next(self.messages)
        assert whole is not None
        return whole

    def close(self) -> None:
        self._starting.shutdown()  # the generator cannot be closed while the thread is inside it
        self.messages.close()  # stops the worker if it is still running


def scan_workspace(reader: Store, base: ScanSpec, spool_dir: Path) -> tuple[list[ScanPage], list[Path]]:
    """Scan every example, in id ranges at once; returns each range's result and spool, in id order.

    The first range is scanned here (through `reader`, from open_lean), the other by a worker
    process at the same time; an error (or Ctrl-C) here stops the worker.
    """
    ranges = _ranges(reader)
    spools = [spool_dir / f"spool-{i}.bin" for i in range(len(ranges))]
    specs = [replace(base, spool=str(p), after=a, last=b) for p, (a, b) in zip(spools, ranges)]
    workers = [_Worker(s) for s in specs[1:]]
    try:
        here = ScanPage()
        for page in scan_range(specs[0], reader):
            here.extend(page)
        return [here, *(w.result() for w in workers)], spools
    finally:
        for w in workers:
            w.close()
