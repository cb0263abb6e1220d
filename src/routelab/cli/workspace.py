"""Workspace commands: init, actions, import, demo, and opening the app."""

from __future__ import annotations

import sys
from pathlib import Path

from routelab.cli.output import add_json_flag, emit_json, table
from routelab.domain import Action, BadInput, Interrupted


def register(sub, common) -> None:
    p = sub.add_parser("init", parents=[common], help="create a workspace (optionally with an action catalog)")
    p.add_argument("--actions", metavar="FILE", help='JSON list of {"name", "description", "code"?}')
    p.set_defaults(func=cmd_init, creates_workspace=True)

    p = sub.add_parser("actions", parents=[common], help="list, add or import actions")
    asub = p.add_subparsers(dest="actions_command", metavar="SUBCOMMAND", required=True)
    q = asub.add_parser("list", parents=[common], help="list the action catalog")
    add_json_flag(q)
    q.add_argument("--all", action="store_true", help="include inactive actions")
    q.set_defaults(func=cmd_actions_list)
    q = asub.add_parser("add", parents=[common], help="add an action (or update its description)")
    q.add_argument("name")
    q.add_argument("--description", "-d", default="", help="what belongs to this action (the teacher reads it)")
    q.add_argument("--code", type=int, help="stable integer code (default: next free)")
    q.add_argument("--fallback", action="store_true",
                   help="make it the fallback: the action for questions no other action fits (out of scope); "
                        "clears the flag on any other")
    q.set_defaults(func=cmd_actions_add, creates_workspace=True)
    q = asub.add_parser("set", parents=[common], help="change an existing action: make it the fallback, or not")
    q.add_argument("name")
    flag = q.add_mutually_exclusive_group(required=True)
    flag.add_argument("--fallback", dest="fallback", action="store_true", default=None,
                      help="make it the fallback (clears the flag on any other)")
    flag.add_argument("--no-fallback", dest="fallback", action="store_false",
                      help="the catalog has no fallback any more")
    q.set_defaults(func=cmd_actions_set)
    q = asub.add_parser("import", parents=[common], help="add or update actions from a JSON file")
    q.add_argument("file", help='JSON list of {"name", "description", "code"?, "fallback"?}')
    q.set_defaults(func=cmd_actions_import, creates_workspace=True)

    p = sub.add_parser("import", parents=[common], help="import questions (CSV, JSON, JSONL, CLINC150, OpenAI chat JSONL)")
    p.add_argument("file", help="the file; - reads standard input (a pipe or a FIFO is read once, into a temporary copy)")
    p.add_argument("--source", help="source name for every question (default: the file's, else 'user')")
    p.add_argument("--format", choices=["csv", "json", "jsonl"], help="file format (default: detected)")
    p.add_argument("--split", choices=["train", "validation", "test", "unassigned"], help="split for every question")
    p.add_argument("--create-actions", action="store_true", help="add labels missing from the catalog as actions")
    add_json_flag(p)
    p.set_defaults(func=cmd_import, creates_workspace=True)

    p = sub.add_parser("demo", parents=[common], help="create (first time) the bundled HR demo workspace and open it")
    p.add_argument("--no-open", action="store_true", help="create the workspace and print its path, do not open the app")
    p.set_defaults(func=cmd_demo, creates_workspace=True)

    p = sub.add_parser("app", parents=[common], help="open the app on the workspace (same as no command)")
    p.set_defaults(func=open_app)


def cmd_init(ctx) -> int:
    actions = None
    if ctx.args.actions:
        from routelab.services.parsing import read_actions

        actions = read_actions(ctx.args.actions)  # validated before the workspace is touched
    store = ctx.store()
    added: list[str] = []
    if actions:
        added, _ = store.upsert_actions(actions)
    print(f"workspace {ctx.db_path} (schema v{store.schema_version}): {len(store.action_names())} actions"
          + (f", {len(added)} added" if added else ""))
    return 0


def cmd_actions_list(ctx) -> int:
    actions = ctx.store().actions(active_only=not ctx.args.all)
    if ctx.args.json:
        emit_json([a.model_dump() for a in actions])
    elif not actions:
        print("no actions yet: routelab actions add NAME --description D, or routelab init --actions FILE")
    else:
        table([(a.code, a.name, _flags(a), a.description) for a in actions], ["code", "name", "", "description"])
    return 0


def _flags(a: Action) -> str:
    return ", ".join(f for f, on in (("fallback", a.fallback), ("inactive", not a.active)) if on)


def cmd_actions_add(ctx) -> int:
    from pydantic import ValidationError

    try:
        action = Action(name=ctx.args.name, description=ctx.args.description, code=ctx.args.code,
                        fallback=ctx.args.fallback)
    except ValidationError as e:
        raise BadInput(e.errors()[0]["msg"].removeprefix("Value error, ")) from None
    store = ctx.store()
    previous = store.fallback_action()
    added, updated = store.upsert_actions([action])
    code = next(a.code for a in store.actions(active_only=False) if a.name == action.name)
    print(f"{'added' if added else 'updated' if updated else 'unchanged'}: {action.name} (code {code})"
          + (", " + _fallback_note(action.name, previous) if action.fallback else ""))
    return 0


def _fallback_note(name: str, previous: str | None) -> str:
    """`the fallback (was other)`: what marking `name` did to the catalog's fallback."""
    return "the fallback" + (f" (was {previous})" if previous not in (None, name) else "")


def cmd_actions_set(ctx) -> int:
    store = ctx.store()
    name, previous = ctx.args.name, store.fallback_action()
    if name not in store.action_names():
        raise BadInput(f"no action named {name!r} in the catalog (routelab actions list)")
    if ctx.args.fallback:
        store.set_fallback(name)
        print(f"unchanged: {name} is the fallback" if previous == name else
              f"updated: {name} is now {_fallback_note(name, previous)}")
    elif previous != name:
        print(f"unchanged: {name} is not the fallback" + (f" ({previous} is)" if previous else ""))
    else:
        store.set_fallback(None)
        print(f"updated: {name} is no longer the fallback; the catalog has none")
    return 0


def cmd_actions_import(ctx) -> int:
    from routelab.services.parsing import read_actions

    actions = read_actions(ctx.args.file)
    store = ctx.store()
    previous = store.fallback_action()
    added, updated = store.upsert_actions(actions)
    fallback = next((a.name for a in actions if a.fallback), None)
    print(f"{len(added)} added, {len(updated)} updated, {len(actions) - len(added) - len(updated)} unchanged"
          + (f"; {fallback} is {_fallback_note(fallback, previous)}" if fallback else ""))
    return 0


def cmd_import(ctx) -> int:
    from routelab.services.importing import import_file
    from routelab.services.parsing import QuestionFile

    a = ctx.args
    try:
        # Before the workspace is opened; a stream (`-`, a pipe, a FIFO) is read here, once.
        with QuestionFile.open(a.file, fmt=a.format, source=a.source, split=a.split, notify=_stage) as qf:
            store = ctx.store()

            def progress(fraction: float, rows: int) -> None:
                done = "; indexing and saving ..." if fraction >= 1 else ""
                _stage(f"importing {qf.name}: {fraction:.0%} ({rows:,} questions read){done}")

            result = import_file(store, qf, create_actions=a.create_actions, progress=progress)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; nothing was imported (the workspace is as it was)") from None
    finally:
        _stage("")
    if a.json:
        emit_json(result.__dict__)
    else:
        print(
            f"{qf.name}: read {result.read}, added {result.added}, "
            f"{result.existing} already in the workspace, {result.repeated} repeated in the file; "
            f"{result.labelled} added with labels"
            + (f"; created {len(result.actions_created)} actions" if result.actions_created else "")
        )
    return 0


def _stage(message: str) -> None:
    """What a long import is doing, on one self-erasing line at a terminal (nothing in scripts)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K" + message)
        sys.stderr.flush()


def cmd_demo(ctx) -> int:
    from routelab.services.demo import DEMO_FILE, create_demo_workspace

    path = Path(getattr(ctx.args, "db", None) or ctx.settings().demo_dir() / DEMO_FILE)
    if not path.exists():
        print(f"creating the demo workspace at {path} ...", file=sys.stderr)
        tmp = path.with_name(path.name + ".partial")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        create_demo_workspace(tmp).close()
        tmp.rename(path)  # appears whole or not at all
    ctx.db_path = path
    if ctx.args.no_open:
        print(path)
        return 0
    return open_app(ctx)


def open_app(ctx) -> int:
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise BadInput("the app needs a terminal; use the commands (routelab --help) in scripts")
    from routelab.tui.app import RoutelabApp

    ctx.store()  # refuse a missing or bad workspace with a clear line before the screen appears
    ctx.close()
    app = RoutelabApp(ctx.db_path)
    app.run()
    return app.return_code or 0  # an app that crashed exits 1, not 0
