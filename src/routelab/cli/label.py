"""Teacher commands: `label` (proposals for every example) and `generate` (synthetic questions)."""

from __future__ import annotations

import sys
import time

from routelab.cli.output import add_json_flag, emit_json
from routelab.domain import BadInput
from routelab.services.progress import format_duration


def register(sub, common) -> None:
    p = sub.add_parser(
        "label", parents=[common],
        help="teacher proposals for every example that has none from that model yet",
        description="Ask the teacher for an action for every example it has not proposed for yet. "
                    "Each proposal is saved as it arrives; run again to continue an interrupted run.",
    )
    p.add_argument("--provider", choices=["openai", "local"],
                   help="openai (default when OPENAI_API_KEY is set) or local (embedded, offline)")
    p.add_argument("--model", metavar="M",
                   help="teacher model (default: $ROUTELAB_TEACHER or gpt-4.1 for openai; 'local' for local)")
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="requests in flight (default 8)")
    p.add_argument("--limit", type=int, metavar="N", help="label at most N examples this run")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="ask K answers per question; confidence = their agreement (default 1: logprobs)")
    p.add_argument("--batch", action="store_true",
                   help="use the Batch API (half price, results within 24h); rerun to resume polling")
    p.add_argument("--no-wait", action="store_true", help="with --batch: submit (or check) and return")
    p.add_argument("--poll-interval", type=float, default=15.0, metavar="S",
                   help="with --batch: seconds between status checks (default 15)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per-request timeout (default 60)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before spending more than the limit")
    add_json_flag(p)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser(
        "generate", parents=[common], help="ask the teacher for realistic questions per action (source synthetic)",
    )
    p.add_argument("--per-action", type=int, required=True, metavar="N", help="new questions per action")
    p.add_argument("--model", metavar="M", help="generator model (default: $ROUTELAB_TEACHER or gpt-4.1)")
    p.add_argument("--actions", metavar="A,B", help="only these actions (default: all active)")
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests in flight (default 4)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="per-request timeout (default 120)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before spending more than the limit")
    add_json_flag(p)
    p.set_defaults(func=cmd_generate)


# ---------------------------------------------------------------- progress and confirmation


class ProgressPrinter:
    """A bar on stderr when it is a terminal; a plain line every few seconds otherwise."""

    def __init__(self, label: str, quiet: bool = False):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        # Not a terminal (a log, CI): the first plain line after 5 s, so a run that fails at
        # once prints nothing but its one-line error.
        self._last = 0.0 if self.tty else time.monotonic()
        self._drawn = False
        self._final_shown = False

    def __call__(self, p) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = p.total is not None and p.done + p.failed >= p.total
        if final and self._final_shown:
            return
        if not final and now - self._last < (0.1 if self.tty else 5.0):
            return
        self._final_shown = final
        self._last = now
        total = p.total or 0
        pct = f"{100 * p.done / total:3.0f}%" if total else ""
        rate = f"{p.rate:.1f}/s" if p.rate else "-/s"
        eta = f"ETA {format_duration(p.eta)}" if p.eta is not None and not final else ""
        extra = f" {p.invalid} invalid" if p.invalid else ""
        extra += f" {p.failed} failed" if p.failed else ""
        if self.tty:
            width = 24
            filled = int(width * p.done / total) if total else 0
            bar = "█" * filled + "░" * (width - filled)
            line = f"\r{self.label} {bar} {p.done}/{total} {pct} {rate} {eta} ${p.cost:.4f}{extra}"
            sys.stderr.write(line.ljust(100)[:150])
            self._drawn = True
        else:
            sys.stderr.write(f"{self.label}: {p.done}/{total} {pct} {rate} {eta} ${p.cost:.4f}{extra}\n".replace("  ", " "))
        sys.stderr.flush()

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False


def confirmer(yes: bool, what: str):
    """The service's confirm(estimate): yes with --yes, ask on a terminal, refuse otherwise."""

    def confirm(estimate) -> bool:
        if yes:
            return True
        from routelab.config import settings

        limit = settings().spend_limit
        if not sys.stdin.isatty():
            raise BadInput(
                f"{what} would cost about ${estimate.cost:.2f} ({estimate.n} requests to {estimate.model}), above "
                f"the spend limit ${limit:.2f}; not started: pass --yes to go ahead in a script"
            )
        sys.stderr.write(f"{estimate.line()}\nThat is above the spend limit (${limit:.2f}). Continue? [y/N] ")
        sys.stderr.flush()
        try:
            answer = input()
        except EOFError:
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    return confirm


# ---------------------------------------------------------------- commands


def _teacher(ctx, settings, *, provider: str | None, model: str | None, **kwargs):
    from routelab.providers import LOCAL_TEACHER, get_router, openai_router

    if provider == "local":
        model = model or LOCAL_TEACHER
        if model != LOCAL_TEACHER:
            trained = ctx.store().trained_model(model, with_artifact=False)
            if trained is None or trained.provider != "local":
                raise BadInput(f"{model!r} is not a local model (use --provider openai, or --model local)")
        return get_router(ctx.store(), model, settings)
    if provider == "openai":
        return openai_router(model or settings.teacher, settings, **kwargs)
    if model is None:
        from routelab.providers import default_teacher

        model = default_teacher(settings)
    return get_router(ctx.store(), model, settings, **kwargs)


def cmd_label(ctx) -> int:
    from routelab.config import settings as load_settings
    from routelab.services.labeling import label, label_batch

    a = ctx.args
    if a.concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    if a.limit is not None and a.limit < 0:
        raise BadInput("--limit must not be negative")
    if a.samples < 1:
        raise BadInput("--samples must be at least 1")
    if a.timeout <= 0:
        raise BadInput("--timeout must be positive")
    settings = load_settings()
    router = _teacher(ctx, settings, provider=a.provider, model=a.model, timeout=a.timeout, samples=a.samples)
    if a.samples > 1 and router.provider != "openai":
        raise BadInput("--samples needs an OpenAI-compatible teacher (a local router is deterministic)")
    if a.batch and router.provider != "openai":
        raise BadInput("--batch needs an OpenAI-compatible endpoint (set OPENAI_API_KEY); the local provider "
                       "labels thousands of questions per second without it")
    store = ctx.store()
    printer = ProgressPrinter(f"label {router.model}", quiet=False)
    confirm = confirmer(a.yes, "labelling")
    try:
        if a.batch:
            result = label_batch(store, router, limit=a.limit, progress=printer, confirm=confirm,
                                 spend_limit=settings.spend_limit, poll_interval=a.poll_interval,
                                 wait=not a.no_wait)
        else:
            result = label(store, router, limit=a.limit, concurrency=a.concurrency, progress=printer,
                           confirm=confirm, spend_limit=settings.spend_limit)
    finally:
        printer.close()
    if a.json:
        emit_json(result.as_dict())
    elif result.status == "nothing to do":
        print(f"nothing to label: every example has a proposal from {router.model}" if not result.remaining
              else f"nothing labelled (--limit 0); {result.remaining} examples have no proposal from {router.model}")
    elif a.batch and a.no_wait and result.status not in ("succeeded", "failed", "cancelled"):
        print(f"batch {result.remote_id} is {result.status}; run `routelab label --batch` again to collect it")
    else:
        mode = getattr(router, "mode", None)
        print(
            f"{router.model}{f' ({mode})' if mode else ''}: labelled {result.labelled} "
            f"({result.valid} valid, {result.invalid} invalid), {result.failed} failed, "
            f"{result.remaining} left; tokens {result.tokens_in:,} in / {result.tokens_out:,} out; "
            f"${result.cost:.4f}; {result.elapsed:.1f}s"
            + (f"; {result.retries} retries" if result.retries else "")
        )
    if result.failed or result.status == "failed":
        first = result.errors[0] if result.errors else "see routelab jobs show"
        sys.stderr.write(f"routelab: error: {result.failed} requests failed (run again to retry them); "
                         f"first: {first}\n")
        return 1
    return 0


def cmd_generate(ctx) -> int:
    from routelab.config import settings as load_settings
    from routelab.providers import LOCAL_TEACHER, openai_router
    from routelab.services.generation import NEEDS_OPENAI, generate

    a = ctx.args
    if a.per_action < 1:
        raise BadInput("--per-action must be at least 1")
    settings = load_settings()
    model = a.model or settings.teacher
    if model == LOCAL_TEACHER or not settings.has_openai:
        raise BadInput(NEEDS_OPENAI)
    router = openai_router(model, settings, timeout=a.timeout)
    actions = [s.strip() for s in a.actions.split(",") if s.strip()] if a.actions else None
    printer = ProgressPrinter(f"generate {model}")
    try:
        result = generate(ctx.store(), router, per_action=a.per_action, actions=actions,
                          concurrency=a.concurrency, progress=printer, confirm=confirmer(a.yes, "generating"),
                          spend_limit=settings.spend_limit)
    finally:
        printer.close()
    if a.json:
        emit_json(result.as_dict())
    else:
        print(f"{model}: {result.added} new questions (of {result.requested} asked), {result.duplicates} duplicates "
              f"dropped, {result.failed_requests} failed requests; tokens {result.tokens_in:,} in / "
              f"{result.tokens_out:,} out; ${result.cost:.4f}; {result.elapsed:.1f}s")
    if result.failed_requests and not result.added:
        sys.stderr.write(f"routelab: error: every request failed; first: {result.errors[0]}\n")
        return 1
    return 0


__all__ = ["register", "ProgressPrinter", "confirmer"]
