"""The `routelab` command: a thin shell that parses arguments and calls services.

Each command group lives in its own module with a `register(subparsers, common)`.
Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad input; always a
one-line reason on stderr, never a traceback (ROUTELAB_DEBUG=1 shows one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from routelab.cli.output import SafeStream
from routelab.domain import RoutelabError

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = ["workspace", "label", "review", "finetune", "models", "evaluate", "endpoints"]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


class Context:
    """What a command handler gets: its arguments and a lazily opened workspace."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.db_path = Path(getattr(args, "db", None) or os.environ.get("ROUTELAB_DB") or "routelab.db")
        self.db_existed = self.db_path.exists()
        self._store = None
        self._settings = None

    def settings(self):  # -> Settings: read from the environment once per command, then passed down
        if self._settings is None:
            from routelab.config import settings

            self._settings = settings()
        return self._settings

    def store(self):  # -> Store (imported lazily: `routelab --help` stays instant)
        if self._store is None:
            from routelab.store import Store

            # Only commands that put something in a workspace create one: a mistyped
            # --db for any other command is an error, not a new empty workspace.
            self._store = Store.open(self.db_path, create=getattr(self.args, "creates_workspace", False))
            self._apply_decision_journal()
        return self._store

    def _apply_decision_journal(self) -> None:
        """Decisions a reviewer took that are not in the store yet (the app was killed, or waits for
        another process's write) are applied first, so export, accept and every other command see
        each decision the app showed as made; if the lock is held now, say so and go on."""
        from routelab.services.decision_journal import apply_leftover, journal_path

        pending = apply_leftover(self._store)
        if pending:
            sys.stderr.write(f"routelab: note: {pending} review decision{'s' if pending != 1 else ''} in "
                             f"{journal_path(self.db_path)} could not be applied yet (another process is "
                             "writing to the workspace); this command does not see them\n")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def discard_new_workspace(self) -> None:
        """A command that failed on bad input must not leave a workspace it just created."""
        self.close()
        if not self.db_existed:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", default=argparse.SUPPRESS, metavar="PATH",
        help="workspace file (default: $ROUTELAB_DB, else ./routelab.db)",
    )
    return common


def build_parser() -> Parser:
    common = common_options()
    parser = Parser(
        prog="routelab",
        description="Distil a strong LLM into a fast, cheap intent router. Without a command: open the app.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"routelab {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"routelab.cli.{name}").register(sub, common)
    return parser


def _version() -> str:
    from routelab import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[Context], int] | None = getattr(args, "func", None)
    if handler is None:
        from routelab.cli.workspace import open_app

        handler = open_app
    ctx = Context(args)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    try:
        return handler(ctx) or 0
    except RoutelabError as e:
        if e.exit_code in (2, 130):  # bad input, or an all-or-nothing command stopped: nothing to keep
            ctx.discard_new_workspace()
        _fail(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _fail("interrupted; everything finished so far is saved")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: say what, in one line, and how to see more
        if type(e).__name__ == "OperationalError" and "locked" in str(e):  # a write outside Store.transaction
            from routelab.store.locks import WorkspaceLocked, busy_timeout

            _fail(str(WorkspaceLocked(ctx.db_path, busy_timeout())))
            return 1
        if os.environ.get("ROUTELAB_DEBUG"):
            traceback.print_exc()
        _fail(f"internal error: {type(e).__name__}: {e} (set ROUTELAB_DEBUG=1 for a traceback)")
        return 1
    finally:
        ctx.close()
        sys.stdout, sys.stderr = streams


def _fail(message: str) -> None:
    first_line = " ".join(message.split())
    clear = "\r\x1b[K" if sys.stderr.isatty() else ""  # over any progress line left unfinished
    sys.stderr.write(f"{clear}routelab: error: {first_line}\n")
