"""Teacher commands: `label` (proposals for every example) and `generate` (synthetic questions)."""

from __future__ import annotations

import sys

from routelab.cli.output import ProgressPrinter, add_json_flag, confirmer, emit_json
from routelab.domain import BadInput


def register(sub, common) -> None:
    from routelab.providers import registry

    p = sub.add_parser(
        "label", parents=[common],
        help="teacher proposals for every example that has none from that model yet",
        description="Ask the teacher for an action for every example it has not proposed for yet. "
                    "Each proposal is saved as it arrives; run again to continue an interrupted run.",
    )
    p.add_argument("--provider", choices=registry.names(),
                   help="which backend labels: openai (the default when OPENAI_API_KEY is set), local (embedded, "
                        "offline), or any installed provider")
    p.add_argument("--model", metavar="M",
                   help="teacher model (default: $ROUTELAB_TEACHER or gpt-4.1 for openai; 'local' for local); "
                        "NAME/MODEL for MODEL on endpoint NAME (routelab endpoints add)")
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
    p.add_argument("--model", metavar="M", help="generator model (default: $ROUTELAB_TEACHER or gpt-4.1); "
                                                "NAME/MODEL for MODEL on endpoint NAME")
    p.add_argument("--actions", metavar="A,B", help="only these actions (default: all active)")
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests in flight (default 4)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="per-request timeout (default 120)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before spending more than the limit")
    add_json_flag(p)
    p.set_defaults(func=cmd_generate)


# ---------------------------------------------------------------- commands


def _teacher(ctx, settings, *, provider: str | None, model: str | None, **options):
    """The teacher's router: --model, else the provider's default teacher, else the default one."""
    from routelab.providers import registry

    if model is None:
        model = registry.get(provider).default_teacher(settings) if provider else registry.default_teacher(settings)
    return registry.router(ctx.store(), model, settings, provider=provider, **options)


def cmd_label(ctx) -> int:
    from routelab.config import settings as load_settings
    from routelab.services.batch_labeling import label_batch
    from routelab.services.labeling import label

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
        print(
            f"{router.model}{f' ({router.mode})' if router.mode else ''}: labelled {result.labelled} "
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
    from routelab.providers import registry
    from routelab.services.generation import generate

    a = ctx.args
    if a.per_action < 1:
        raise BadInput("--per-action must be at least 1")
    if a.timeout <= 0:
        raise BadInput("--timeout must be positive")
    settings = load_settings()
    model = a.model or registry.get(registry.DEFAULT_REMOTE).default_teacher(settings)
    generator = registry.generator(ctx.store(), model, settings, timeout=a.timeout)
    actions = [s.strip() for s in a.actions.split(",") if s.strip()] if a.actions else None
    printer = ProgressPrinter(f"generate {model}")
    try:
        result = generate(ctx.store(), generator, per_action=a.per_action, actions=actions,
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


__all__ = ["register"]
