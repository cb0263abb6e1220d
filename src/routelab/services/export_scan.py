"""One streaming pass over the workspace: label each example, render its line, count its tokens.

Nothing is held per example but a few fixed-size numbers (id, a 64-bit hash of its
near-duplicate key, action, origin, tokens, line length); the rendered line (everything
after the system message, which is the same on every line) goes to a spool file. A big
workspace is scanned in two id ranges at once, one of them in a worker process, because
building each row's Example and counting its tokens is what the time goes on.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from pathlib import Path

from routelab.domain import Example, Status
from routelab.services.export_checks import count_tokens
from routelab.services.offload import iterate_in_process
from routelab.store import ExampleFilter, Store

PAGE = 5000  # examples per keyset page (and per message from the worker)
PARALLEL_MIN = 150_000  # below this a worker process costs more (~1.3 s of CPU to start) than it saves
HUMAN, WAS_VALIDATION = 1, 2  # bits of ScanPage.flags
KEY_BYTES = 8  # a near-duplicate key is kept as 64 bits of its hash, little-endian
_NOT_WORD = re.compile(r"[\W_]+")
# What [\W_]+ removes from lowercased ASCII: everything but a-z and 0-9 (bytes.translate is ~10x faster)
_ASCII_NOT_WORD = bytes(c for c in range(128) if not (48 <= c <= 57 or 97 <= c <= 122))
_dumps = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(x, ensure_ascii=False), minus its set-up
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
    every process (a collision among a million keys has odds of about 1 in 30 million, and would
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
    tokens: array = field(default_factory=lambda: array("q"))
    lengths: array = field(default_factory=lambda: array("q"))  # bytes of the line in the spool
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
    """Label, key, render and count one page; the rendered lines are appended to `spool`."""
    out = ScanPage()
    index = {name: i for i, name in enumerate(spec.actions)}
    teacher = _teacher_answers(store, spec, page)
    fixed, answers, answer_tokens = spec.fixed_tokens - 3, spec.answers, spec.answer_tokens
    for e in page:
        if e.split == "test":
            out.test_keys += key_hash(e.text)
            continue
        labelled = _label(e, teacher, out.left_out)
        if labelled is None:
            continue
        a = index.get(labelled[0])
        if a is None:
            out.left_out["inactive_action"] += 1
            continue
        data, turns = _render(e, answers[a])
        spool.write(data)
        out.ids.append(e.id)
        out.keys += key_hash(e.text)
        out.actions.append(a)
        out.flags.append(labelled[1] | (WAS_VALIDATION if e.split == "validation" else 0))
        out.tokens.append(fixed + count_tokens(turns) + answer_tokens[a])  # the sum over messages
        out.lengths.append(len(data))
    return out


def scan_range(spec: ScanSpec, store: Store | None = None) -> Iterator[ScanPage]:
    """Keyset-page through one id range, yielding what each page came to (module level: a worker runs it)."""
    own = store is None
    store = store or Store.open(spec.db_path, create=False)
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
        if own:
            store.close()


def _ranges(store: Store) -> list[tuple[int, int | None]]:
    """One id range, or two halves when the workspace is big enough for a second process to pay."""
    first, last = store.page(ExampleFilter(), limit=1), store.page(ExampleFilter(), before=2**62, limit=1)
    if not first or store.count() < PARALLEL_MIN:
        return [(0, None)]
    mid = (first[0].id + last[0].id) // 2
    return [(0, mid), (mid, None)]


class _Started:
    """A worker's page stream whose first page (and the worker's start-up, ~0.5 s) is awaited in a
    thread, so this process scans its own range meanwhile. Later pages are taken here, in turn."""

    def __init__(self, pages: Iterator[ScanPage]):
        self.pages = pages
        self._first = ThreadPoolExecutor(1, thread_name_prefix="export-worker")
        self._future = self._first.submit(next, pages, None)

    def next(self) -> ScanPage | None:
        if self._future is not None:
            future, self._future = self._future, None
            self._first.shutdown()
            return future.result()
        return next(self.pages, None)

    def close(self) -> None:
        self._first.shutdown()  # the generator cannot be closed while the thread is inside it
        self.pages.close()


class _Here:
    def __init__(self, pages: Iterator[ScanPage]):
        self.pages = pages

    def next(self) -> ScanPage | None:
        return next(self.pages, None)

    def close(self) -> None:
        self.pages.close()


def scan_workspace(store: Store, base: ScanSpec, spool_dir: Path) -> tuple[list[ScanPage], list[Path]]:
    """Scan every example, in id ranges at once; returns each range's result and spool, in id order.

    The first range is scanned here, the other in a worker process, a page of each in turn so
    both cores stay busy; an error (or Ctrl-C) here stops the worker.
    """
    ranges = _ranges(store)
    spools = [spool_dir / f"spool-{i}.bin" for i in range(len(ranges))]
    specs = [replace(base, spool=str(p), after=a, last=b) for p, (a, b) in zip(spools, ranges)]
    parts: list[_Here | _Started] = [_Started(iterate_in_process(scan_range, s)) for s in specs[1:]]
    parts.insert(0, _Here(scan_range(specs[0], store)))
    results = [ScanPage() for _ in parts]
    try:
        active = list(range(len(parts)))
        while active:
            for i in list(active):
                page = parts[i].next()
                if page is None:
                    active.remove(i)
                else:
                    results[i].extend(page)
    finally:
        for p in parts:
            p.close()
    return results, spools
