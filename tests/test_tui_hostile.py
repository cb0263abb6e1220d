"""Hostile strings render literally and cannot trigger anything."""

from __future__ import annotations

from routelab.domain import Action, Message, NewExample, Proposal
from routelab.tui.app import RoutelabApp
from routelab.tui.components.detail import DetailView
from routelab.tui.components.picker import PickerScreen
from routelab.tui.panes.review import ReviewPane

CLICK = "[@click=app.quit]x[/]"
HOSTILE = [
    f"please {CLICK} now",
    "[bold unclosed markup",
    "red \x1b[31mALERT\x1b[0m and a bell\x07 and C1 \x9b2J",
    "long " + "x" * 5000,
    "emoji 🎉👩‍👩‍👧 party",
    "عربي من اليمين إلى اليسار שלום",
]


def _strip_text(strip) -> str:
    return "".join(seg.text for seg in strip)


def _screen_texts(app: RoutelabApp) -> tuple[list[str], list[str]]:
    pane = app.query_one(ReviewPane)
    lst = pane.dataset
    list_lines = [_strip_text(lst.render_line(y)) for y in range(lst.size.height)]
    detail = app.query_one(DetailView)
    detail_lines = [_strip_text(s) for s in detail._render_all()]
    return list_lines, detail_lines


def _no_links(strips) -> bool:
    return all(not (seg.style and seg.style.meta) for strip in strips for seg in strip)


async def test_hostile_strings_render_literally(store, db_path):
    store.upsert_actions([Action(name="[@click=app.quit]", description="[bold")])
    store.add_examples([NewExample(text=t) for t in HOSTILE])
    store.add_examples([NewExample(
        text="and now?", conversation=[Message(role="user", content=CLICK), Message(role="assistant", content="[bold")]
    )])
    ids = [e.id for e in store.page(limit=100)]
    store.add_proposal(Proposal(example_id=ids[0], model=CLICK, action=None, valid=False, raw="[bold \x1b[2J"))
    store.add_proposal(Proposal(example_id=ids[0], model="gpt-4.1", action="[@click=app.quit]", confidence=0.9))

    app = RoutelabApp(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        pane = app.query_one(ReviewPane)
        seen_detail: list[str] = []
        for n in range(len(ids)):
            list_lines, detail_lines = _screen_texts(app)
            detail = app.query_one(DetailView)
            assert _no_links(detail._render_all())
            assert _no_links(pane.dataset.render_line(y) for y in range(pane.dataset.size.height))
            for line in list_lines + detail_lines:
                assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line
                assert len(line) <= 120
            seen_detail.append("".join(detail_lines))
            # clicking where the text is, and pressing keys, must not quit or act
            await pilot.click(DetailView, offset=(10, 2))
            await pilot.click(DetailView, offset=(20, 2))
            assert app.is_running
            await pilot.press("j")
        list_text = "\n".join(_screen_texts(app)[0])
        assert CLICK in list_text or "[@click=app.quit]x" in list_text
        joined = "\n".join(seen_detail)
        assert f"please {CLICK} now" in joined
        assert "[bold unclosed markup" in joined
        assert "ALERT" in joined and "[31m" in joined
        assert "🎉" in joined
        assert "שלום" in joined
        assert "x" * 1000 in joined.replace("\n", "")  # the 5,000-character line is all there, wrapped
        assert "assistant: [bold" in joined
        assert "✗" in joined and "invalid" in joined
        # the catalog and the picker show the hostile action name as text
        catalog = app.query_one("#review-catalog").render()
        assert "[@click=app.quit]" in str(catalog)
        await pilot.press("g", "o")
        assert isinstance(app.screen, PickerScreen)
        await pilot.press("escape")
        assert app.is_running
    assert app.return_code is None or app.return_code == 0


# ---------------------------------------------------------------- every pane, toasts and dialogs too

BOOM = "[/boom]"  # a closing tag with nothing open: MarkupError wherever it is parsed as markup
ESC = "\x1b[2J"


def _live_links(app) -> list[str]:
    """Clickable actions on screen other than the app's own (the footer's keys)."""
    found = []
    for strip in app.screen._compositor.render_strips():
        for seg in strip:
            meta = seg.style.meta if seg.style else {}
            action = meta.get("@click", "")
            if action and "simulate_key" not in action and not action.startswith("app.simulate"):
                found.append(f"{seg.text!r}: {action}")
    return found


def _screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


def _toasts(app) -> list[str]:
    """Every notification so far; each must have been shown literally (never parsed as markup).
    The tests run with notifications=True: a toast is drawn, and a MarkupError would stop the app."""
    assert all(not n.markup for n in app._notifications), [n.message for n in app._notifications if n.markup]
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def _wait(pilot, predicate, tries: int = 1500) -> bool:
    for _ in range(tries):
        if predicate():
            return True
        await pilot.pause(0.02)
    return predicate()


async def test_jobs_pane_with_hostile_names_errors_and_events(demo_store):
    from routelab.domain import Job, JobEvent, JobStatus
    from routelab.tui.components.confirm import ConfirmScreen
    from routelab.tui.panes.jobs import JobsPane
    from routelab.tui.panes.playground import PlaygroundPane

    # actions nobody labelled: a local fine-tune refuses them, naming them (a MarkupError crashed the pane)
    demo_store.upsert_actions([Action(name=BOOM, description=CLICK), Action(name=CLICK, description="[bold")])
    job = demo_store.create_job(Job(kind="finetune", provider="openai", status=JobStatus.FAILED, model=CLICK,
                                    remote_id="[bold ftjob", error=f"{BOOM} {ESC}failed {CLICK}",
                                    result={"fine_tuned_model": BOOM}))
    demo_store.add_job_events([JobEvent(job_id=job.id, message=f"{CLICK} \x1b]52;c;cGFzdGU=\x07 {BOOM}", level="error")])
    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:  # toasts drawn
        pane = app.query_one(JobsPane)
        pane.poll_interval = 0.02
        await pilot.press("f2")
        assert await _wait(pilot, lambda: pane.selected == job.id and pane._events)
        await pilot.pause(0.1)
        screen = _screen_text(app)
        assert "[bold ftjob" in screen and f"{BOOM} [2Jfailed {CLICK}" in screen and "\x1b" not in screen
        log = "\n".join(line.text for line in pane.query_one("#job-log").lines)
        assert f"{CLICK}" in log and BOOM in log and "\x1b" not in log and "\x07" not in log
        assert _live_links(app) == []

        await pilot.press("l")  # a local fine-tune: the export refuses the unlabelled actions by name
        assert await _wait(pilot, lambda: any(BOOM in t for t in _toasts(app)))
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        refused = next(t for t in _toasts(app) if BOOM in t)
        assert CLICK in refused

        await pilot.press("p")  # its model (a hostile id from the provider) opens in the Playground
        assert await _wait(pilot, lambda: app.query_one("TabbedContent").active == "playground")
        assert any(f"model {BOOM} opened in the playground" in t for t in _toasts(app))
        playground = app.query_one(PlaygroundPane)
        assert await _wait(pilot, lambda: BOOM in playground.models)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running and _live_links(app) == []
        for text in _toasts(app):
            assert "\x1b" not in text


async def test_local_finetune_of_hostile_action_names(store):
    """Actions named like markup train, show in the confirm dialog and the job's events as text."""
    from routelab.domain import NewExample
    from routelab.tui.components.confirm import ConfirmScreen
    from routelab.tui.panes.jobs import JobsPane

    store.upsert_actions([Action(name=BOOM, description="boom"), Action(name=CLICK, description="click")])
    words = {"get_payslip": "payslip salary tax", "book_holiday": "holiday leave friday",
             "get_policy": "policy rules remote", "escalate": "manager bullying complaint",
             BOOM: "explode boom crash", CLICK: "click link quit"}
    store.add_examples([NewExample(text=f"{w.split()[i % 3]} question {i}", label=a, split="train")
                        for a, w in words.items() for i in range(12)])
    app = RoutelabApp(store.path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:  # toasts drawn
        pane = app.query_one(JobsPane)
        pane.poll_interval = 0.02
        await pilot.press("f2", "l")
        assert await _wait(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        dialog = app.screen.query_one("#confirm-message").render()
        assert BOOM in str(dialog) and CLICK in str(dialog)
        assert _live_links(app) == []
        await pilot.press("y")
        assert await _wait(pilot, lambda: (j := pane.selected_job()) is not None and j.kind == "finetune"
                           and j.status.terminal, tries=1500)
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        assert pane.selected_job().status.value == "succeeded", pane.selected_job().error
        assert any("succeeded" in t for t in _toasts(app))
        assert app.is_running and _live_links(app) == []


async def test_evaluate_and_playground_with_hostile_models_and_errors(demo_store):
    from routelab.domain import Evaluation
    from routelab.tui.panes.evaluate import EvaluatePane
    from routelab.tui.panes.playground import PlaygroundPane

    cell = {"n": 4, "accuracy": 0.5, "ci_low": 0.15, "ci_high": 0.85}
    demo_store.add_evaluation(Evaluation(
        model=CLICK, split="test", n=4, correct=2, accuracy=0.5, ci_low=0.15, ci_high=0.85, macro_f1=0.4,
        details={"slices": {"all": cell, "user": cell}, "base": CLICK, "labels": [BOOM, CLICK],
                 "per_action": {BOOM: {"f1": 0.5, "precision": 0.5, "recall": 0.5, "support": 2},
                                CLICK: {"f1": 0.5, "precision": 0.5, "recall": 0.5, "support": 2}},
                 "confusion": {BOOM: {BOOM: 1, CLICK: 1}, CLICK: {CLICK: 1, BOOM: 1}},
                 "confusions": [{"gold": BOOM, "pred": CLICK, "count": 1, "ids": [1]}]}))
    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:  # toasts drawn
        await pilot.press("f3")
        pane = app.query_one(EvaluatePane)
        assert await _wait(pilot, lambda: pane.selected == CLICK)
        await pilot.pause()
        screen = _screen_text(app)
        assert CLICK in screen and BOOM in screen
        assert _live_links(app) == []
        app.query_one("#eval-confusions").focus()
        await pilot.press("enter")  # opens the confusion in Review, with a toast naming it
        assert await _wait(pilot, lambda: app.query_one("TabbedContent").active == "review")
        assert any(f"{BOOM} → {CLICK}" in t for t in _toasts(app))

        await pilot.press("f4")
        playground = app.query_one(PlaygroundPane)
        assert await _wait(pilot, lambda: playground.ready, tries=1500)
        playground.select_model(BOOM)  # an unknown model: its error names it
        await app.workers.wait_for_complete()
        await pilot.pause()
        box = app.query_one("#pg-input")
        box.value = f"{CLICK} {BOOM} {ESC}payslip"
        box.focus()
        await pilot.press("enter")
        assert await _wait(pilot, lambda: playground.tries)
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = _screen_text(app)
        assert BOOM in screen and "\x1b" not in screen
        assert app.is_running and _live_links(app) == []
        _toasts(app)
