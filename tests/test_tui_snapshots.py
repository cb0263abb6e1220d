"""Snapshots of the main screens: each pane (Review, Jobs, Evaluate, Playground), the help overlay, the pickers.

Update after an intended change: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from routelab.domain import ExampleFilter, Job, JobEvent, JobStatus, NewExample, Proposal
from routelab.tui.app import RoutelabApp
from routelab.tui.panes.evaluate import EvaluatePane
from routelab.tui.panes.jobs import JobsPane
from routelab.tui.panes.playground import PlaygroundPane
from routelab.tui.panes.review import ReviewPane
from tests.test_tui_review import seed

SIZE = (120, 40)


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _until(pilot, predicate, tries: int = 500) -> None:
    """Wait for what a worker started by a key shows (the key's events may land after a first settle)."""
    for _ in range(tries):
        if predicate():
            break
        await pilot.pause(0.02)
    assert predicate()
    await _settle(pilot)


def test_review_pane(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, run_before=_settle)


def test_review_after_decisions(store, db_path, snap_compare):
    seed(store)

    async def run_before(pilot) -> None:
        await _settle(pilot)
        pilot.app.query_one(ReviewPane).pace.clock = lambda: 1000.0  # decisions per minute without a wall clock
        await pilot.press("enter", "4", "s")
        await _settle(pilot)

    # the history shows decision times, so this one lands on a question without history
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, run_before=run_before)


def test_help_overlay(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, press=["question_mark"], run_before=_settle)


def test_action_picker(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, press=["o", "p", "a"], run_before=_settle)


def test_filter_picker(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, press=["v"], run_before=_settle)


# ---------------------------------------------------------------- Jobs, Evaluate, Playground
# Fixed content only: jobs and events with fixed times (and a fixed clock for the running job's
# elapsed time and ETA), evaluations scored from fixed proposals, routes with fixed latencies.

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat()


def seed_jobs(store) -> None:
    """A finished label job, a cancelled eval, and a local fine-tune running on another machine."""
    label = store.create_job(Job(
        kind="label", provider="local", status=JobStatus.SUCCEEDED, model="local", progress_done=360,
        progress_total=360, created_at=_at(-3600), updated_at=_at(-3558), finished_at=_at(-3558)))
    store.add_job_events([JobEvent(job_id=label.id, at=_at(-3600), message="Labelling 360 questions with local"),
                          JobEvent(job_id=label.id, at=_at(-3558), message="360 labelled, 0 invalid")])
    store.create_job(Job(
        kind="eval", provider="local", status=JobStatus.CANCELLED, model="local-zero-shot,local",
        progress_done=60, progress_total=120, error="interrupted; the predictions made so far are saved",
        created_at=_at(-1800), updated_at=_at(-1790), finished_at=_at(-1790)))
    ft = store.create_job(Job(
        kind="finetune", provider="local", status=JobStatus.RUNNING, model="wordllama-256+logreg",
        progress_done=90, progress_total=120,  # 75%: the bar ends on a whole cell
        params={"host": "trainer-2", "pid": 4242, "estimated_cost": 0.0},
        created_at=_at(0), updated_at=_at(360)))
    events = [JobEvent(job_id=ft.id, at=_at(0), message="Export 20260302: 288 train, 72 validation")]
    for step in range(1, 91):
        data = {"step": step, "total_steps": 120, "train_loss": round(1.6 * 0.97 ** step + 0.05, 4)}
        if step % 12 == 0:
            data["valid_loss"] = round(1.7 * 0.975 ** step + 0.08, 4)
        events.append(JobEvent(job_id=ft.id, at=_at(step * 4), type="metrics", data=data))
        if step % 12 == 0:
            events.append(JobEvent(job_id=ft.id, at=_at(step * 4), message=(
                f"Step {step}/120: training loss={data['train_loss']:.2f}, validation loss={data['valid_loss']:.2f}")))
    events.append(JobEvent(job_id=ft.id, at=_at(361), level="warn", message="validation loss rose twice in a row"))
    store.add_job_events(events)


def test_jobs_pane(store, db_path, snap_compare, monkeypatch):
    seed_jobs(store)
    monkeypatch.setattr(JobsPane, "clock", staticmethod(lambda: START.timestamp() + 372))  # 6m12s in

    async def run_before(pilot) -> None:
        await pilot.press("f2")
        pane = pilot.app.query_one(JobsPane)
        await _until(pilot, lambda: len(pane.jobs) == 3 and pane._events_for == 3 and pane._events
                     and pane._events[-1].message.startswith("validation loss rose"))

    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, run_before=run_before)


def seed_evaluations(store) -> None:
    """Four models scored on 24 test questions (a third synthetic), from fixed proposals."""
    from routelab.services.evaluation import add_improvement, score

    actions = ["book_holiday", "escalate", "get_payslip", "get_policy"]
    store.add_examples([NewExample(text=f"test question {i}", split="test", label=actions[i % 4],
                                   source="synthetic" if i % 3 == 0 else "user") for i in range(24)])
    examples = store.page(ExampleFilter(split="test"), limit=100)
    store.add_examples([NewExample(text="one question left to review")])  # the app opens on it, no toast
    models = {  # model: (how many of each 8 it gets right, latency ms, cost per route)
        "local-zero-shot": (4, 0.31, 0.0), "local": (6, 0.12, 0.0), "gpt-4.1": (7, 412.0, 0.00061),
        "ft:gpt-4.1-mini-2025-04-14:routelab:IWFYZ3fh": (8, 188.0, 0.00018),
    }
    scored = []
    for model, (right, latency, cost) in models.items():
        proposals = {}
        for i, e in enumerate(examples):
            wrong = actions[(actions.index(e.label) + 1 + i % 2) % 4]
            action = e.label if i % 8 < right else wrong
            proposals[e.id] = Proposal(example_id=e.id, model=model, action=action, confidence=0.9,
                                       latency_ms=latency + (i % 5) * latency / 10, cost=cost)
        scored.append(score(model, examples, proposals, split="test"))
    add_improvement(scored, "local-zero-shot")
    for ev in scored:
        ev.created_at = _at(0)
        store.add_evaluation(ev)


def test_evaluate_pane(store, db_path, snap_compare):
    seed_evaluations(store)

    async def run_before(pilot) -> None:
        await pilot.press("f3")
        pane = pilot.app.query_one(EvaluatePane)
        await _until(pilot, lambda: pane._loaded and pane.selected == "local-zero-shot")

    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, run_before=run_before)


def test_playground_pane(demo_store, snap_compare):
    from routelab.services.playground import RouteResult, Try, parse_question

    text, conversation = parse_question("I need a day off | Which day? | next Friday please")
    attempt = Try(text=text, conversation=conversation, at=_at(0), results=[
        RouteResult(model="local-zero-shot", action="book_holiday", valid=True, confidence=0.41, latency_ms=0.27),
        RouteResult(model="local", action="book_holiday", valid=True, confidence=0.93, latency_ms=0.12),
        RouteResult(model="gpt-4.1", action="book_holiday", valid=True, confidence=0.9, latency_ms=412.0,
                    cost=0.00061, tokens_in=180, tokens_out=12),
        RouteResult(model="ft:gpt-4.1-mini-2025-04-14:routelab:IWFYZ3fh", error="the endpoint answered 503"),
    ])

    async def run_before(pilot) -> None:
        await pilot.press("f4")
        pane = pilot.app.query_one(PlaygroundPane)
        await _until(pilot, lambda: pane.ready)
        pane.query_one("#pg-input").cursor_blink = False  # the focused box's cursor must not blink mid-snapshot
        pane.add_try(attempt)
        await pilot.pause()

    assert snap_compare(RoutelabApp(demo_store.path), terminal_size=SIZE, run_before=run_before)
