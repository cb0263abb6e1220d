"""Import question files into the workspace.

The file is parsed while the store writes, in one transaction: a bad line anywhere rolls
everything back, so the workspace is left exactly as it was. A big file is parsed in a
worker process, so parsing and writing use two cores.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from routelab.services.offload import iterate_in_process
from routelab.services.parsing import OOS_ACTION, QuestionFile, row_chunks
from routelab.store import ImportResult, Store

# Below this a file parses in less time than a worker process takes to start (~0.3 s).
WORKER_MIN_BYTES = 4 << 20
OOS_DESCRIPTION = "Out of scope: the query matches none of the other intents (CLINC150's out-of-scope set)."


def import_file(
    store: Store, file: str | Path | QuestionFile, *, fmt: str | None = None, source: str | None = None,
    split: str | None = None, create_actions: bool = False,
    progress: Callable[[float, int], None] | None = None,
) -> ImportResult:
    """Parse and store a question file (a path, `-` for stdin, or an opened QuestionFile, which
    the caller closes); a file label becomes a decision of kind import.

    `progress(fraction, rows read)` is called as the import goes.
    """
    if not isinstance(file, QuestionFile):
        with QuestionFile.open(file, fmt=fmt, source=source, split=split) as qf:
            return import_file(store, qf, create_actions=create_actions, progress=progress)
    chunks = iterate_in_process(row_chunks, file) if file.size >= WORKER_MIN_BYTES else row_chunks(file)
    with closing(chunks):  # on any error (or Ctrl-C) the worker stops now, not when garbage-collected
        return store.import_rows(
            chunks, create_actions=create_actions, describe=describe_new_action, progress=progress,
            origin=file.name,
        )


def describe_new_action(name: str) -> str:
    """A readable description for an action created from a label, so a zero-shot teacher has words to match."""
    return OOS_DESCRIPTION if name == OOS_ACTION else name.replace("_", " ")
