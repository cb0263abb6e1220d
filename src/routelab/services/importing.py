"""Read question files into examples, and action catalogs into actions.

Files are parsed and validated completely before anything is written, so a bad line
anywhere leaves the workspace exactly as it was. Every error is one line naming the
file, the line (or item) and the field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from routelab.domain import SPLITS, Action, BadInput, NewExample
from routelab.store import ImportResult, Store

Format = Literal["csv", "json", "jsonl"]
FORMATS = ("csv", "json", "jsonl")
MAX_LINE_BYTES = 1 << 20  # 1 MiB: no routed question is longer; a longer line is a broken file
TEXT_COLUMNS = ("text", "question", "query", "utterance", "message", "prompt")
LABEL_COLUMNS = ("label", "action", "category", "intent", "route")
CLINC_SPLITS = {
    "train": "train", "val": "validation", "test": "test",
    "oos_train": "train", "oos_val": "validation", "oos_test": "test",
}
# CLINC150 marks out-of-scope queries with the intent "oos". We keep them as examples of
# an action of that name, so a router learns to send them to a fallback.
OOS_ACTION = "oos"
OOS_DESCRIPTION = "Out of scope: the query matches none of the other intents (CLINC150's out-of-scope set)."


class FileError(BadInput):
    def __init__(self, path: Path, where: str | None, message: str):
        super().__init__(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def read_text(path: Path) -> str:
    """The file's text, strictly UTF-8 (a BOM is allowed)."""
    if not path.exists():
        raise FileError(path, None, "no such file")
    if path.is_dir():
        raise FileError(path, None, "is a directory")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileError(path, None, f"cannot read ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise FileError(path, f"line {line}", f"not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def detect_format(path: Path, text: str) -> Format | Literal["clinc"]:
    head = text.lstrip()[:1]
    if head == "[":
        return "json"
    if head == "{":
        first_line = text.lstrip().split("\n", 1)[0]
        try:
            json.loads(first_line)
            return "jsonl"
        except json.JSONDecodeError:
            return "json"  # one document spread over lines (e.g. CLINC150's data_full.json)
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    first_line = text.split("\n", 1)[0]
    if "," in first_line or "\t" in first_line:
        if any(c.strip().strip('"').lower() in TEXT_COLUMNS for c in first_line.replace("\t", ",").split(",")):
            return "csv"
    raise FileError(path, None, "unknown format (expected CSV, JSON or JSONL; pass --format csv|json|jsonl)")


def read_examples(
    path: str | Path, *, fmt: str | None = None, source: str | None = None, split: str | None = None
) -> list[NewExample]:
    """Parse a question file. `source`/`split` override what the file says."""
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise BadInput(f"{path}: unknown format {fmt!r} (use csv, json or jsonl)")
    if split is not None and split not in SPLITS:
        raise BadInput(f"{path}: unknown split {split!r} (use {', '.join(SPLITS)})")
    text = read_text(path)
    if not text.strip():
        raise FileError(path, None, "empty file")
    kind = fmt or detect_format(path, text)
    if kind == "csv":
        rows = _csv_rows(path, text)
    elif kind == "jsonl":
        rows = _jsonl_rows(path, text)
    else:
        rows = _json_rows(path, text)
    out: list[NewExample] = []
    for where, row in rows:
        out.append(_example(path, where, row, source, split))
    if not out:
        raise FileError(path, None, "no questions found")
    return out


def _csv_rows(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
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
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    split_col = header.index("split") if "split" in header else None
    source_col = header.index("source") if "source" in header else None
    while True:
        start = reader.line_num + 1  # where this record begins (a quoted field may span lines)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            reason = "unterminated quote" if "unexpected end of data" in str(e) else f"bad CSV ({e})"
            raise FileError(path, f"line {start}", reason) from None
        if not row or (not row[0].strip() and not any(c.strip() for c in row)):
            continue  # a blank line
        where = f"line {reader.line_num}"
        if len(row) <= text_col:
            raise FileError(path, where, f'field "{header[text_col]}": missing')
        record: dict[str, Any] = {"text": row[text_col]}
        for key, col in (("label", label_col), ("split", split_col), ("source", source_col)):
            if col is not None and col < len(row) and row[col].strip():
                record[key] = row[col].strip()
        yield where, record


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        if len(line) > MAX_LINE_BYTES:
            raise FileError(path, where, f"line longer than {MAX_LINE_BYTES // 1024} KiB")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise FileError(path, where, f"invalid JSON ({e.msg} at column {e.colno})") from None
        yield where, _record(path, where, obj)


def _json_rows(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileError(path, f"line {e.lineno}", f"invalid JSON ({e.msg} at column {e.colno})") from None
    if isinstance(doc, dict) and any(k in doc for k in CLINC_SPLITS):
        yield from _clinc_rows(path, doc)
        return
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise FileError(path, None, "expected a list of questions")
    for i, obj in enumerate(doc, start=1):
        where = f"item {i}"
        yield where, _record(path, where, obj)


def _clinc_rows(path: Path, doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, split in CLINC_SPLITS.items():
        items = doc.get(key, [])
        if not isinstance(items, list):
            raise FileError(path, f'key "{key}"', "expected a list of [text, intent]")
        for i, item in enumerate(items, start=1):
            where = f'key "{key}" item {i}'
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise FileError(path, where, "expected [text, intent]")
            yield where, {"text": item[0], "label": item[1], "split": split}


def _record(path: Path, where: str, obj: Any) -> dict[str, Any]:
    """One JSON object in any of our shapes to a flat record."""
    if not isinstance(obj, dict):
        raise FileError(path, where, "expected a JSON object")
    if "messages" in obj:
        return _chat_record(path, where, obj["messages"])
    key = "question" if "question" in obj else "text"
    if key not in obj:
        raise FileError(path, where, 'field "text": missing (expected "question" or "text")')
    record: dict[str, Any] = {"text": obj[key], "_text_field": key}
    label_key = "action" if "action" in obj else "label"
    if obj.get(label_key) not in (None, ""):
        record["label"] = obj[label_key]
        record["_label_field"] = label_key
    for k in ("split", "source", "conversation"):
        if k in obj:
            record[k] = obj[k]
    return record


def _chat_record(path: Path, where: str, messages: Any) -> dict[str, Any]:
    """OpenAI chat JSONL: the last user message is the question, the assistant's {"action"} its label."""
    if not isinstance(messages, list) or not messages:
        raise FileError(path, where, 'field "messages": expected a non-empty list')
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in (
            "system", "user", "assistant", "tool", "function"
        ):
            raise FileError(path, where, f'field "messages[{j}]": expected {{"role", "content"}}')
    last_user = max((j for j, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise FileError(path, where, 'field "messages": no user message')
    record: dict[str, Any] = {
        "text": messages[last_user]["content"],
        "conversation": [m for m in messages[:last_user] if m["role"] in ("user", "assistant")],
        "_text_field": f"messages[{last_user}].content",
    }
    answers = [m for m in messages[last_user + 1:] if m["role"] == "assistant"]
    if answers:
        content = answers[-1]["content"]
        try:
            label = json.loads(content)["action"]
        except (json.JSONDecodeError, TypeError, KeyError):
            raise FileError(path, where, 'field "messages": the assistant answer is not {"action": ...}') from None
        record["label"] = label
        record["_label_field"] = "action"
    return record


def _example(path: Path, where: str, r: dict[str, Any], source: str | None, split: str | None) -> NewExample:
    text_field = r.pop("_text_field", "text")
    label_field = r.pop("_label_field", "label")
    if not isinstance(r.get("text"), str):
        raise FileError(path, where, f'field "{text_field}": expected a string')
    label = r.get("label")
    if label is not None and not isinstance(label, str):
        raise FileError(path, where, f'field "{label_field}": expected a string')
    row_split = split or r.get("split") or "unassigned"
    if row_split == "val":
        row_split = "validation"
    if row_split not in SPLITS:
        raise FileError(path, where, f'field "split": unknown split {row_split!r}')
    try:
        return NewExample(
            text=r["text"],
            label=label.strip() if label else None,
            conversation=r.get("conversation") or None,
            source=source or r.get("source") or "user",
            split=row_split,
        )
    except ValidationError as e:  # a malformed conversation message
        err = e.errors()[0]
        raise FileError(path, where, f'field "conversation": {".".join(map(str, err["loc"]))}: {err["msg"]}') from None
    except ValueError as e:
        raise FileError(path, where, f'field "{text_field}": {e}') from None


def import_file(
    store: Store, path: str | Path, *, fmt: str | None = None, source: str | None = None,
    split: str | None = None, create_actions: bool = False,
) -> ImportResult:
    """Parse and store a question file; a file label becomes a decision of kind import."""
    examples = read_examples(path, fmt=fmt, source=source, split=split)
    return import_examples(store, Path(path), examples, create_actions=create_actions)


def import_examples(
    store: Store, path: Path, examples: list[NewExample], *, create_actions: bool = False
) -> ImportResult:
    """Store parsed examples in one transaction (all or nothing)."""
    if create_actions:
        for e in examples:
            if e.label is not None:
                try:
                    Action(name=e.label)
                except ValidationError:
                    raise BadInput(f"{path}: label {e.label!r} cannot be an action name") from None
    try:
        return store.add_examples(examples, create_actions=create_actions, describe=describe_new_action)
    except BadInput as e:
        raise BadInput(f"{path}: {e}") from None


def describe_new_action(name: str) -> str:
    """A readable description for an action created from a label, so a zero-shot teacher has words to match."""
    return OOS_DESCRIPTION if name == OOS_ACTION else name.replace("_", " ")


def read_actions(path: str | Path) -> list[Action]:
    """An action catalog: a JSON list of {"name", "description", "code"?} (or of plain names)."""
    path = Path(path)
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileError(path, f"line {e.lineno}", f"invalid JSON ({e.msg} at column {e.colno})") from None
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
        try:
            action = Action(**{k: item[k] for k in ("name", "description", "code") if k in item})
        except ValidationError as e:
            err = e.errors()[0]
            raise FileError(path, where, f'field "{err["loc"][0]}": {err["msg"].removeprefix("Value error, ")}') from None
        if action.name in seen:
            raise FileError(path, where, f'field "name": duplicate action {action.name!r}')
        seen.add(action.name)
        actions.append(action)
    return actions
