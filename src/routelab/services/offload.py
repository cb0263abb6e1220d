"""Run a generator in a worker process and iterate its items here.

A big import parses in the worker while this process writes, so the two use two cores
(threads would not: parsing holds the GIL and the writer needs it between rows). The
worker is a fresh `python -m routelab.services.offload`, not multiprocessing: a fork
would copy our open SQLite connection, and multiprocessing's spawn re-imports the
caller's main script, which breaks scripts without a `__main__` guard.
Protocol: the job (function, arguments) is pickled to the worker's stdin; the worker
pickles ("item", x) messages to its stdout, then ("done", None), ("bad", message) or
("error", message).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from routelab.domain import BadInput, RoutelabError


def iterate_in_process(func: Callable[..., Iterator[Any]], *args: Any) -> Iterator[Any]:
    """Yield what `func(*args)` yields, computed in another process.

    `func` must be a module-level function. The worker runs about one item ahead (it
    blocks on a full pipe). BadInput in the worker is raised here with the same
    message; stopping early (an error here, Ctrl-C) stops the worker.
    """
    worker = subprocess.Popen(
        [sys.executable, "-m", "routelab.services.offload"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        pickle.dump((func, args), worker.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        worker.stdin.close()
        while True:
            try:
                kind, value = pickle.load(worker.stdout)
            except EOFError:
                raise RoutelabError(
                    f"the worker process stopped unexpectedly (exit code {worker.wait()})"
                ) from None
            if kind == "item":
                yield value
            elif kind == "done":
                return
            elif kind == "bad":
                raise BadInput(value)
            else:
                raise RoutelabError(value)
    finally:
        worker.stdout.close()
        if worker.poll() is None:
            worker.kill()
        worker.wait()


def _work(stdin: BinaryIO, stdout: BinaryIO) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    func, args = pickle.load(stdin)
    try:
        for item in func(*args):
            pickle.dump(("item", item), stdout, protocol=pickle.HIGHEST_PROTOCOL)
        message: tuple[str, Any] = ("done", None)
    except BadInput as e:
        message = ("bad", str(e))
    except Exception as e:  # noqa: BLE001 - a bug in the worker: the parent reports it
        message = ("error", f"worker failed: {type(e).__name__}: {e}")
    pickle.dump(message, stdout)
    stdout.flush()


if __name__ == "__main__":
    try:
        _work(sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the parent stopped listening: nothing to say, nowhere to say it
        os._exit(0)
