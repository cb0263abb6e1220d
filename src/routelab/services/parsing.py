"""Read question files and action catalogs into domain objects.

No workspace here: a big file is parsed in a worker process while the importer writes
(see services/importing.py), so this module imports nothing from the store. A stream
is copied once first (services/spool.py); JSON shapes are in services/records.py. Every
failure of the input, a hostile one included (too deep, too long, not text, too big for
memory), is a FileError: one line naming the file, the line (or item) and the field.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from routelab.domain import SPLITS, Action, BadInput, ExampleRow, NewExample, RowChunk
from routelab.services.records import CLINC_SPLITS, FileError, clinc_rows, flat_record, loads, no_surrogate
from routelab.services.spool import Spool, is_stream

FORMATS = ("csv", "json", "jsonl")
MAX_LINE_BYTES = 1 << 20  # 1 MiB: no routed question is longer; a longer line is a broken file
HEAD_BYTES = MAX_LINE_BYTES + 1  # what format detection reads
# One JSON document is parsed whole, in memory, at several times its size: past this
# (a few million questions) a file should be JSONL, which streams.
MAX_JSON_BYTES = 256 << 20
TEXT_COLUMNS = ("text", "question", "query", "utterance", "message", "prompt")
LABEL_COLUMNS = ("label", "action", "category", "intent", "route")
# CLINC150 marks out-of-scope queries with the intent "oos". We keep them as examples of
# an action of that name, so a router learns to send them to a fallback.
OOS_ACTION = "oos"


@dataclass(frozen=True)
class QuestionFile:
    """A question file that exists and whose format is known; `source`/`split` override the file's.

    `name` is what messages call it (the path given, `<stdin>` for `-`). A stream is read
    once into a temporary copy (`path`, services/spool.py) that `close()` removes: use it
    as a context manager.
    """

    path: Path
    fmt: str
    source: str | None = None
    split: str | None = None
    name: str = ""
    spooled: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", str(self.path))

    @classmethod
    def open(
        cls, path: str | Path, *, fmt: str | None = None, source: str | None = None, split: str | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> QuestionFile:
        """Check the arguments and sniff the format from the head of the file (cheap: the
        workspace is opened only after this passes). A stream (stdin as `-`, a pipe, a FIFO)
        is copied first; `notify(message)` hears that we wait for it and how far it got."""
        name = str(path)
        if fmt is not None and fmt not in FORMATS:
            raise BadInput(f"{name}: unknown format {fmt!r} (use csv, json or jsonl)")
        if split is not None and split not in SPLITS:
            raise BadInput(f"{name}: unknown split {split!r} (use {', '.join(SPLITS)})")
        if is_stream(name):
            with Spool(name, notify) as spool:
                fmt = _check_head(spool.name, spool.head(HEAD_BYTES), fmt)
                copy = spool.finish(max_bytes=MAX_JSON_BYTES) if fmt == "json" else spool.finish(max_line=MAX_LINE_BYTES)
            return cls(copy, fmt, source, split, spool.name, spooled=True)
        path = Path(path)
        _check_readable(path)
        try:
            with path.open("rb") as f:
                head = f.read(HEAD_BYTES)
        except OSError as e:
            raise FileError(name, None, f"cannot read ({e.strerror})") from None
        return cls(path, _check_head(name, head, fmt), source, split, name)

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        if self.spooled:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> QuestionFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_head(name: str, head: bytes, fmt: str | None) -> str:
    """The format, from the start of a file: empty and binary files are refused here."""
    if b"\0" in head:
        line = head[: head.index(b"\0")].count(b"\n") + 1
        raise FileError(name, f"line {line}", "not UTF-8 text (a NUL byte)")
    text = head.decode("utf-8-sig", errors="ignore")
    if not text.strip():
        raise FileError(name, None, "empty file")
    return fmt or detect_format(Path(name), text)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise FileError(path, None, "no such file")
    if path.is_dir():
        raise FileError(path, None, "is a directory")


def read_text(path: Path, name: str | None = None) -> str:
    """The file's text, strictly UTF-8 (a BOM is allowed); messages call it `name` (default: the path)."""
    name = name or str(path)
    _check_readable(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileError(name, None, f"cannot read ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise FileError(name, f"line {line}", f"not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def detect_format(path: Path, head: str) -> str:
    """csv, json or jsonl, from the first characters (`head` may be the start of the file)."""
    start = head.lstrip()[:1]
    if start == "[":
        return "json"
    if start == "{":
        first_line = head.lstrip().split("\n", 1)[0]
        try:
            json.loads(first_line)
        except json.JSONDecodeError:
            return "json"  # one document spread over lines (e.g. CLINC150's data_full.json)
        except RecursionError:
            pass  # a broken first line of JSONL: the parser names it
        return "jsonl"
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    first_line = head.split("\n", 1)[0]
    if "," in first_line or "\t" in first_line:
        if any(c.strip().strip('"').lower() in TEXT_COLUMNS for c in first_line.replace("\t", ",").split(",")):
            return "csv"
    raise FileError(path, None, "unknown format (expected CSV, JSON or JSONL; pass --format csv|json|jsonl)")


def row_chunks(qf: QuestionFile, size: int = 25_000) -> Iterator[RowChunk]:
    """The file's examples as store rows, `size` at a time (module level: it runs in a worker).

    The first chunk is small, so the writer starts early. Every failure of the input is a
    FileError (BadInput), here and in the worker alike.
    """
    try:
        yield from _row_chunks(qf, size)
    except MemoryError:
        raise FileError(qf.name, None, f"too big to read into memory ({qf.size >> 20:,} MiB)") from None


def _row_chunks(qf: QuestionFile, size: int) -> Iterator[RowChunk]:
    expected, examples, fallback = _parse(qf)
    rows: list[ExampleRow] = []
    done, limit = 0, min(size, 5_000)
    for e in examples:
        rows.append(e.row())
        if len(rows) >= limit:
            done += len(rows)
            yield RowChunk(rows, min(done / expected, 0.99), fallback)
            rows, limit = [], size
    if not done and not rows:
        raise FileError(qf.name, None, "no questions found")
    yield RowChunk(rows, 1.0, fallback)


def _parse(qf: QuestionFile) -> tuple[int, Iterator[NewExample], str | None]:
    """How many examples to expect (roughly: for progress), the examples, and the label the
    file calls out of scope (CLINC150's `oos`; None for every other format)."""
    if qf.fmt == "json" and qf.size > MAX_JSON_BYTES:
        raise FileError(qf.name, None, f"over {MAX_JSON_BYTES >> 20} MiB, too big for one JSON document "
                        "(write one question per line: JSONL)")
    text = read_text(qf.path, qf.name)
    if not text.strip():
        raise FileError(qf.name, None, "empty file")
    if qf.fmt == "csv":
        return max(1, text.count("\n")), _csv_examples(qf, text), None
    if qf.fmt == "jsonl":
        return max(1, text.count("\n")), _jsonl_examples(qf, text), None
    return _json_examples(qf, text)


def _csv_examples(qf: QuestionFile, text: str) -> Iterator[NewExample]:
    # The hot loop of a million-row import: plain lists, the error text built only on error.
    path = qf.name
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    csv.field_size_limit(MAX_LINE_BYTES)
    # strict: an unterminated quote is an error, not one field that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error) as e:
        raise FileError(path, "line 1", f"cannot read the CSV header ({e})") from None
    text_col = next((header.index(c) for c in TEXT_COLUMNS if c in header), None)
    if text_col is None:
        raise FileError(
            path, "line 1", f"no text column (expected one of {', '.join(TEXT_COLUMNS)}; found {', '.join(header)})"
        )
    absent = len(header) + 1  # a column index no row reaches
    intern = sys.intern
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), absent)
    split_col = header.index("split") if "split" in header else absent
    source_col = header.index("source") if "source" in header else absent
    while True:
        start = reader.line_num + 1  # where this record begins (a quoted field may span lines)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            reason = "unterminated quote" if "unexpected end of data" in str(e) else f"bad CSV ({e})"
            raise FileError(path, f"line {start}", reason) from None
        n = len(row)
        if n <= text_col:
            if not any(c.strip() for c in row):
                continue  # a blank line
            raise FileError(path, f"line {reader.line_num}", f'field "{header[text_col]}": missing')
        # Interned: a label or source repeats on many rows, and the pickle to the writer
        # then carries each value once.
        label = intern(row[label_col].strip()) if label_col < n else ""
        row_split = row[split_col].strip() if split_col < n else ""
        row_source = intern(row[source_col].strip()) if source_col < n else ""
        if not row[text_col].strip() and not any(c.strip() for c in row):
            continue  # a line of empty fields
        split = qf.split or (_split(row_split) if row_split else "unassigned")
        if split not in SPLITS:
            raise FileError(path, f"line {reader.line_num}", f'field "split": unknown split {split!r}')
        try:
            yield NewExample(row[text_col], None, qf.source or row_source or "user", split, label or None)
        except ValueError as e:
            raise FileError(path, f"line {reader.line_num}", f'field "{header[text_col]}": {e}') from None


def _split(value: str) -> str:
    return "validation" if value == "val" else value


def _jsonl_examples(qf: QuestionFile, text: str) -> Iterator[NewExample]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        if len(line) > MAX_LINE_BYTES:
            raise FileError(qf.name, where, f"line longer than {MAX_LINE_BYTES // 1024} KiB")
        yield _example(qf, where, flat_record(qf.name, where, loads(line, qf.name, where)))


def _json_examples(qf: QuestionFile, text: str) -> tuple[int, Iterator[NewExample], str | None]:
    name = qf.name
    doc = loads(text, name, None)
    if isinstance(doc, dict) and any(k in doc for k in CLINC_SPLITS):
        total = sum(len(v) for k, v in doc.items() if k in CLINC_SPLITS and isinstance(v, list))
        return max(1, total), (_example(qf, where, r) for where, r in clinc_rows(name, doc)), OOS_ACTION
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise FileError(name, None, "expected a list of questions")
    items = ((f"item {i}", obj) for i, obj in enumerate(doc, start=1))
    return max(1, len(doc)), (_example(qf, where, flat_record(name, where, obj)) for where, obj in items), None


def _example(qf: QuestionFile, where: str, r: dict[str, Any]) -> NewExample:
    name = qf.name
    text_field = r.pop("_text_field", "text")
    label_field = r.pop("_label_field", "label")
    if not isinstance(r.get("text"), str):
        raise FileError(name, where, f'field "{text_field}": expected a string')
    label = r.get("label")
    if label is not None and not isinstance(label, str):
        raise FileError(name, where, f'field "{label_field}": expected a string')
    if label:
        no_surrogate(name, where, label_field, label)
    source = qf.source or r.get("source") or "user"
    if not isinstance(source, str):
        raise FileError(name, where, 'field "source": expected a string')
    no_surrogate(name, where, "source", source)
    row_split = qf.split or _split(r.get("split") or "unassigned")
    if row_split not in SPLITS:
        raise FileError(name, where, f'field "split": unknown split {row_split!r}')
    try:
        return NewExample(
            text=r["text"],
            label=sys.intern(label.strip()) if label else None,  # interned: see _csv_examples
            conversation=r.get("conversation") or None,
            source=source,
            split=row_split,
        )
    except ValueError as e:
        raise FileError(name, where, f'field "{text_field}": {e}') from None


def read_actions(path: str | Path) -> list[Action]:
    """An action catalog: a JSON list of {"name", "description", "code"?, "fallback"?} (or of plain names).

    `"fallback": true` marks the catalog's fallback (out of scope) action: one at most.
    """
    path = Path(path)
    doc = loads(read_text(path), str(path), None)
    if not isinstance(doc, list) or not doc:
        raise FileError(path, None, 'expected a non-empty JSON list of {"name", "description"}')
    actions: list[Action] = []
    seen: set[str] = set()
    for i, item in enumerate(doc, start=1):
        where = f"item {i}"
        if isinstance(item, str):
            item = {"name": item, "description": item.replace("_", " ")}
        if not isinstance(item, dict) or "name" not in item:
            raise FileError(path, where, 'field "name": missing')
        for field in ("name", "description"):
            if isinstance(item.get(field), str):
                no_surrogate(str(path), where, field, item[field])
        if not isinstance(item.get("fallback", False), bool):
            raise FileError(path, where, 'field "fallback": expected true or false')
        if item.get("fallback") and any(a.fallback for a in actions):
            raise FileError(path, where, 'field "fallback": only one action can be the fallback')
        try:
            action = Action(**{k: item[k] for k in ("name", "description", "code", "fallback") if k in item})
        except ValidationError as e:
            err = e.errors()[0]
            raise FileError(path, where, f'field "{err["loc"][0]}": {err["msg"].removeprefix("Value error, ")}') from None
        if action.name in seen:
            raise FileError(path, where, f'field "name": duplicate action {action.name!r}')
        seen.add(action.name)
        actions.append(action)
    return actions
