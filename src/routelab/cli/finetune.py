"""Fine-tuning commands: export, finetune, jobs list|show|watch|cancel."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from routelab.cli.output import add_json_flag, emit_json, table
from routelab.domain import BadInput, JobEvent, JobStatus, printable
from routelab.services.progress import format_duration


def register(sub, common) -> None:
    p = sub.add_parser(
        "export", parents=[common],
        help="write OpenAI chat fine-tuning data (train.jsonl, validation.jsonl, report.json)",
        description="Label = the human label where there is one, else the teacher's valid proposal. The test "
                    "split and anything near-identical to a test question is never exported. Every line is "
                    "checked (OpenAI cookbook rules, token limit) before anything is written.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the files (created if needed)")
    _data_options(p)
    p.add_argument("--base-model", default=None, help="model the estimate is for (default gpt-4.1-mini-2025-04-14)")
    add_json_flag(p)
    p.set_defaults(func=cmd_export)

    from routelab.providers import registry
    from routelab.providers.base import TRAIN

    p = sub.add_parser(
        "finetune", parents=[common], help="export, then fine-tune a router (OpenAI, the embedded local trainer, hf)",
        description="Exports the workspace (reusing an identical export), then starts a fine-tune. "
                    "--provider openai uploads both files (skipping files already uploaded) and creates a job; "
                    "it shows the estimate and asks first at a terminal (in scripts: only above ROUTELAB_SPEND_LIMIT, "
                    "and --yes accepts). "
                    "--provider local trains the embedded router in this process and always runs to completion "
                    "(with or without --wait). --provider hf fine-tunes an open-weights model here (a classifier "
                    "on an encoder, or LoRA on a chat model: --method), with checkpoints beside the workspace; "
                    "it needs pip install 'routelab[hf]'. "
                    "Default provider: openai when OPENAI_API_KEY is set, else local.",
    )
    p.add_argument("--provider", choices=registry.names(TRAIN), default=None,
                   help="which backend trains (default: openai when OPENAI_API_KEY is set, else local)")
    p.add_argument("--base-model", default=None,
                   help="base model (openai: default gpt-4.1-mini-2025-04-14; hf: a Hub id or a local folder)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of an OpenAI fine-tune (default: the OpenAI cookbook rule)")
    p.add_argument("--suffix", default=None, help="suffix of the fine-tuned model name (OpenAI, up to 64 chars)")
    _data_options(p)
    p.add_argument("--out", default=None, metavar="DIR", help="export directory (default: beside the workspace)")
    _hf_options(p)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask (at a terminal routelab always asks before a paid fine-tune; in scripts above the spend limit)")
    p.add_argument("--wait", action="store_true", help="follow the job to its end (exit 0 succeeded, 1 failed/cancelled)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between polls with --wait (default 5)")
    add_json_flag(p)
    p.set_defaults(func=cmd_finetune)
    _register_jobs(sub, common)


def _register_jobs(sub, common) -> None:
    p = sub.add_parser("jobs", parents=[common], help="list, show, watch or cancel jobs (fine-tunes, labeling, ...)")
    jsub = p.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", required=True)
    q = jsub.add_parser("list", parents=[common], help="all jobs, newest first")
    q.add_argument("--active", action="store_true", help="only jobs that have not finished")
    add_json_flag(q)
    q.set_defaults(func=cmd_jobs_list)
    q = jsub.add_parser("show", parents=[common], help="one job: status, progress, result, recent events")
    q.add_argument("id", help="job id (or the provider's job id, e.g. ftjob-...)")
    add_json_flag(q)
    q.set_defaults(func=cmd_jobs_show)
    q = jsub.add_parser("watch", parents=[common], help="follow a job to its end, printing its events (resumes any job)")
    q.add_argument("id")
    q.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    add_json_flag(q)
    q.set_defaults(func=cmd_jobs_watch)
    q = jsub.add_parser("cancel", parents=[common], help="cancel a job that has not finished")
    q.add_argument("id")
    add_json_flag(q)
    q.set_defaults(func=cmd_jobs_cancel)


def _hf_options(p) -> None:
    g = p.add_argument_group("hf trainer (--provider hf)")
    g.add_argument("--method", choices=("classifier", "lora"), default=None,
                   help="classifier: a classification head on an encoder (default); lora: LoRA on a chat model")
    g.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (classifier 5e-5, lora 2e-4)")
    g.add_argument("--head-lr", type=float, default=None, help="classifier: the new head's rate (default 20x)")
    g.add_argument("--batch-size", type=int, default=None, help="examples per step and GPU (default 32)")
    g.add_argument("--max-length", type=int, default=None, help="tokens per example (classifier 64, lora 512)")
    g.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default 200)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: the GPU when there is one")
    g.add_argument("--gpus", type=int, default=None, help="train on N GPUs through accelerate launch")
    g.add_argument("--no-resume", action="store_true", help="start afresh, even where a checkpoint could be resumed")


HF_FLAGS = ("method", "learning_rate", "head_lr", "batch_size", "max_length", "checkpoint_every", "device", "gpus")


def _train_options(a) -> dict:
    """Trainer-specific flags that were given (a trainer that takes none of them refuses them)."""
    options = {k: getattr(a, k) for k in HF_FLAGS if getattr(a, k, None) is not None}
    if getattr(a, "no_resume", False):
        options["resume"] = False
    return options


def _data_options(p) -> None:
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of the train pool for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (and of the fine-tune)")
    p.add_argument("--teacher", default=None, metavar="MODEL",
                   help="whose proposals label unreviewed examples (default: the most-used model)")
    p.add_argument("--reviewed-only", action="store_true", help="human labels only, no teacher labels")


def _event_line(ev: JobEvent) -> str:
    when = ev.at[11:19] if len(ev.at) >= 19 else ev.at
    mark = {"warn": "! ", "error": "x "}.get(ev.level, "  ")
    return f"{when} {mark}{printable(ev.message)}"


# ------------------------------------------------------------------ export


def cmd_export(ctx) -> int:
    from routelab.services.export import DEFAULT_BASE_MODEL, ExportOptions, export_dataset, format_report

    a = ctx.args
    opts = ExportOptions(val_fraction=a.val_fraction, seed=a.seed, teacher=a.teacher, reviewed_only=a.reviewed_only,
                         base_model=a.base_model or DEFAULT_BASE_MODEL)
    result = export_dataset(ctx.store(), Path(a.out), opts)
    if a.json:
        emit_json({**result.report, "out_dir": str(result.out_dir), "reused": result.reused})
        return 0
    print(format_report(result.report))
    files = ", ".join(Path(f["path"]).name for f in result.files.values())
    print(f"{'unchanged' if result.reused else 'wrote'} {files} and report.json in {result.out_dir}")
    return 0


# ------------------------------------------------------------------ finetune


def _confirm(plan, yes: bool) -> None:
    from routelab.services.finetune import duplicate_line, estimate_line

    if yes or plan.free:  # free training (local) needs no yes
        return
    interactive = sys.stdin.isatty()
    again = duplicate_line(plan) if plan.repeats_paid_job else None
    # A paid fine-tune cannot be taken back: at a terminal, always show the estimate and
    # ask; in a script, ask for --yes above the spend limit, or when it would train the
    # same base on exactly the same data again.
    if not plan.needs_confirmation and not again and not interactive:
        return
    if not interactive and again:
        raise BadInput(f"{again}: not started; pass --yes to train it again")
    if not interactive:
        raise BadInput(
            f"estimated cost ${plan.estimated_cost:.2f} is above the spend limit ${plan.spend_limit:.2f} "
            "(ROUTELAB_SPEND_LIMIT): re-run with --yes to accept it"
        )
    sys.stderr.write(estimate_line(plan) + "\n" + (f"{again}.\n" if again else ""))
    cost = f"about ${plan.estimated_cost:.2f}" if plan.estimated_cost is not None else "an unknown amount (no price)"
    answer = input(f"Start {'another' if again else 'the'} fine-tune and spend {cost}? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise BadInput(f"not started: {'the same data was not trained again' if again else 'the estimate was not accepted'}")


def cmd_finetune(ctx) -> int:
    from routelab.services.export import format_report
    from routelab.services.finetune import FinetuneOptions, estimate_line, plan_finetune, start_finetune

    a = ctx.args
    settings = ctx.settings()
    if a.interval <= 0:
        raise BadInput("--interval must be positive")
    opts = FinetuneOptions(provider=a.provider, base_model=a.base_model, epochs=a.epochs, suffix=a.suffix, seed=a.seed,
                           val_fraction=a.val_fraction, teacher=a.teacher, reviewed_only=a.reviewed_only,
                           out_dir=Path(a.out) if a.out else None, train_options=_train_options(a))
    store = ctx.store()
    plan = plan_finetune(store, opts, settings)
    if not a.json:
        print(format_report(plan.report))
        print(f"{'reusing' if plan.written.reused else 'exported'} {plan.written.out_dir}")
        print(estimate_line(plan))
    _confirm(plan, a.yes)
    seen = [0]

    def on_event(ev: JobEvent) -> None:  # the local trainer streams its events as it writes them
        seen[0] = max(seen[0], ev.id or 0)
        _print_event(ev, a.json)

    job = start_finetune(store, plan, settings, on_event=on_event)
    if not a.json:
        print(f"job {job.id}: {job.provider} fine-tune of {job.model}" + (f" ({job.remote_id})" if job.remote_id else "")
              + f", {job.status.value}")
    if job.status.terminal or a.wait:  # a trainer that runs here has finished by now
        return _follow(ctx, job.id, a.interval, a.json, after_event=seen[0])
    if a.json:
        emit_json(_job_dict(store, job))
    else:
        print(f"follow it with: routelab jobs watch {job.id}")
    return 0


# ------------------------------------------------------------------ jobs


def _service(ctx):
    from routelab.services.jobs import JobService

    return JobService(ctx.store(), ctx.settings())


def _job_dict(store, job) -> dict:
    from routelab.services.jobs import describe

    return describe(job, store.job_events(job.id)).as_dict()


def _refresh_local(svc, jobs):
    """Jobs run by a process are checked offline (is it still there?); jobs at a provider are not polled here."""
    return [svc.poll(job) if not job.status.terminal and svc.runs_here(job) else job for job in jobs]


def cmd_jobs_list(ctx) -> int:
    svc = _service(ctx)
    jobs = _refresh_local(svc, svc.store.jobs(active_only=ctx.args.active, limit=1000))
    if ctx.args.json:
        emit_json([_job_dict(svc.store, j) for j in jobs])
        return 0
    if not jobs:
        print("no jobs yet: routelab finetune --provider local, or routelab label")
        return 0
    rows = []
    for j in jobs:
        progress = f"{j.progress_done}/{j.progress_total}" if j.progress_total else (str(j.progress_done) if j.progress_done else "")
        error = printable(j.error or "")
        rows.append((j.id, j.kind, j.provider, j.status.value, j.model or "", progress,
                     printable(j.result.get("fine_tuned_model") or ""), f"${j.cost:.2f}" if j.cost else "",
                     error[:60] + ("…" if len(error) > 60 else ""), j.created_at[:16].replace("T", " ")))
    table(rows, ["id", "kind", "provider", "status", "model", "progress", "fine-tuned model", "cost", "error", "created"])
    return 0


def cmd_jobs_show(ctx) -> int:
    from routelab.services.jobs import describe

    svc = _service(ctx)
    job = _refresh_local(svc, [svc.get(ctx.args.id)])[0]
    events = svc.store.job_events(job.id)
    if ctx.args.json:
        emit_json({**_job_dict(svc.store, job), "events": [e.model_dump() for e in events]})
        return 0
    view = describe(job, events)
    print(f"job {job.id} · {job.kind} · {job.provider} · {job.model or '-'} · {job.status.value}"
          + (f" · {job.remote_id}" if job.remote_id else ""))
    if job.progress_total:
        print(f"progress {job.progress_done}/{job.progress_total}")
    if view.elapsed is not None:
        print(f"elapsed {format_duration(view.elapsed)}" + (f" · ETA {format_duration(view.eta)}" if view.eta is not None else ""))
    if view.model_id:
        print(f"model {printable(view.model_id)}")
    if view.last_metrics:
        print("metrics " + ", ".join(f"{k}={v}" for k, v in view.last_metrics.items() if v is not None))
    if job.result.get("trained_tokens"):
        print(f"trained tokens {job.result['trained_tokens']:,} · cost ${job.cost:.2f}")
    elif job.params.get("estimated_cost") is not None:
        print(f"estimated cost ${job.params['estimated_cost']:.2f}")
    if job.error:
        print(f"error {printable(job.error)}")
    for ev in [e for e in events if e.type == "message"][-15:]:
        print(_event_line(ev))
    return 0


def _print_event(ev: JobEvent, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"event": ev.model_dump()}, ensure_ascii=False, default=str) + "\n")
    elif ev.type == "message":
        print(_event_line(ev))
    sys.stdout.flush()


def _follow(ctx, job_id, interval: float, as_json: bool, after_event: int = 0) -> int:
    from routelab.domain import RoutelabError

    svc = _service(ctx)
    job = svc.get(job_id)
    try:
        job = svc.follow(job.id, on_event=lambda ev: _print_event(ev, as_json), interval=interval,
                         after_event=after_event,
                         on_error=lambda msg: sys.stderr.write(f"routelab: warning: {printable(msg)}\n"))
    except KeyboardInterrupt:
        current = svc.store.job(job.id)
        if current is not None and not current.status.terminal:
            sys.stderr.write(f"routelab: stopped watching; job {job.id} keeps running: routelab jobs watch {job.id}\n")
        return 130
    except RoutelabError as e:
        raise RoutelabError(f"{e} (job {job.id} is still {svc.store.job(job.id).status.value}; "
                            f"retry with: routelab jobs watch {job.id})") from None
    if as_json:
        sys.stdout.write(json.dumps({"job": _job_dict(svc.store, job)}, ensure_ascii=False, default=str) + "\n")
    if job.status == JobStatus.SUCCEEDED:
        if not as_json:
            model = job.result.get("fine_tuned_model")
            cost = f" · cost ${job.cost:.2f}" if job.cost else ""
            print(f"job {job.id} succeeded: model {printable(model or '-')}{cost}")
            if model:
                print(f"try it: routelab route \"...\" --model {model}")
        return 0
    if not as_json:
        sys.stderr.write(f"routelab: error: job {job.id} {job.status.value}"
                         + (f": {printable(job.error)}" if job.error else "") + "\n")
    return 1


def cmd_jobs_watch(ctx) -> int:
    if ctx.args.interval <= 0:
        raise BadInput("--interval must be positive")
    return _follow(ctx, ctx.args.id, ctx.args.interval, ctx.args.json)


def cmd_jobs_cancel(ctx) -> int:
    svc = _service(ctx)
    job = svc.cancel(ctx.args.id)
    if ctx.args.json:
        emit_json(_job_dict(svc.store, job))
    else:
        print(f"job {job.id}: {job.status.value}" + (" (cancellation requested)" if not job.status.terminal else ""))
    return 0
