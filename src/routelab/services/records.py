"""Every JSON shape we read, to one flat record: {"question"|"text", "action"|"label", ...},
OpenAI chat {"messages": [...]}, and CLINC150's {"train": [[text, intent], ...], ...}.

A record is a dict of text, label, conversation, split and source, with the names of the
fields they came from (for messages) under "_text_field" and "_label_field". Every
error is one line naming the file, the line (or item) and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from routelab.domain import BadInput, Message, clean_message
from routelab.providers.prompts import chat_record

CLINC_SPLITS = {
    "train": "train", "val": "validation", "test": "test",
    "oos_train": "train", "oos_val": "validation", "oos_test": "test",
}


class FileError(BadInput):
    def __init__(self, path: Path | str, where: str | None, message: str):
        super().__init__(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def loads(text: str, name: str, where: str | None) -> Any:
    """json.loads, its errors as one line naming the file and `where` (else the line it found)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FileError(name, where or f"line {e.lineno}", f"invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:  # the decoder recurses per level: [[[[... is an attack, not data
        raise FileError(name, where, "JSON nested too deeply") from None


def clinc_rows(path: str, doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, split in CLINC_SPLITS.items():
        items = doc.get(key, [])
        if not isinstance(items, list):
            raise FileError(path, f'key "{key}"', "expected a list of [text, intent]")
        for i, item in enumerate(items, start=1):
            where = f'key "{key}" item {i}'
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise FileError(path, where, "expected [text, intent]")
            yield where, {"text": item[0], "label": item[1], "split": split}


def flat_record(name: str, where: str, obj: Any) -> dict[str, Any]:
    """One JSON object in any of our shapes to a flat record."""
    if not isinstance(obj, dict):
        raise FileError(name, where, "expected a JSON object")
    if "messages" in obj:
        record = _chat_record(name, where, obj)
    else:
        key = "question" if "question" in obj else "text"
        if key not in obj:
            raise FileError(name, where, 'field "text": missing (expected "question" or "text")')
        record = {"text": obj[key], "_text_field": key}
        if "conversation" in obj:
            record["conversation"] = _conversation(name, where, obj["conversation"])
    label_key = "action" if "action" in obj else "label"
    if obj.get(label_key) not in (None, ""):
        _agree(name, where, label_key, obj[label_key], record.get("label"))
        record["label"], record["_label_field"] = obj[label_key], label_key
    for k in ("split", "source"):
        if k in obj:
            record[k] = obj[k]
    if "label" not in record and "_answer" in record:
        raise FileError(name, where, f'field "{record["_answer"]}": the assistant answer is not {{"action": ...}}')
    return record


def _chat_record(name: str, where: str, obj: dict[str, Any]) -> dict[str, Any]:
    """OpenAI chat JSONL: the last user message is the question, the assistant's {"action"} after it
    its label. An "action" (or "label") key beside "messages" is a label too: it labels a line
    whose answer is a reply rather than {"action"}, and must agree with an {"action"} answer."""
    try:
        chat = chat_record(obj["messages"])
    except ValueError as e:
        raise FileError(name, where, str(e)) from None
    for j, m in enumerate(obj["messages"]):
        no_surrogate(name, where, f"messages[{j}].content", m["content"])
    record: dict[str, Any] = {"text": chat.text, "conversation": chat.turns,
                              "_text_field": f"messages[{chat.question_index}].content"}
    if chat.answer_index is not None:
        record["_answer"] = f"messages[{chat.answer_index}].content"
    if chat.action is not None:  # else a reply, not a routing answer: only a label key can label this line
        record["label"], record["_label_field"] = chat.action, "action"
    return record


def _agree(name: str, where: str, key: str, given: Any, answered: Any) -> None:
    """A label key and an {"action"} answer on one chat line must say the same (we don't guess)."""
    if answered is not None and isinstance(given, str) and isinstance(answered, str) and given.strip() != answered.strip():
        raise FileError(name, where, f'field "{key}": {given.strip()!r}, but the assistant answer says {answered.strip()!r}')


def _conversation(name: str, where: str, raw: Any) -> list[Message] | None:
    """The "conversation" field: earlier turns, each {"role", "content"}."""
    if not raw:
        return None
    if not isinstance(raw, list):
        raise FileError(name, where, 'field "conversation": expected a list of {"role", "content"}')
    messages = []
    for j, m in enumerate(raw):
        try:
            messages.append(clean_message(m))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(map(str, err["loc"]))
            raise FileError(name, where, f'field "conversation[{j}]": {loc}: {err["msg"]}') from None
        except ValueError as e:
            raise FileError(name, where, f'field "conversation[{j}].content": {e}') from None
    return messages


def no_surrogate(name: str, where: str, field: str, value: str) -> None:
    """A JSON escape can make a lone surrogate (\\ud800), which no file or workspace can store."""
    if not value.isprintable():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise FileError(name, where, f'field "{field}": a lone surrogate ({value[e.start]!r}) is not text') from None
