"""The Jobs pane, driven with Pilot against the fake OpenAI server: the panel updates live."""

from __future__ import annotations

from routelab.config import settings as load_settings
from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune
from routelab.tui.app import RoutelabApp
from routelab.tui.components.confirm import ConfirmScreen
from routelab.tui.panes.jobs import JobsPane


async def _until(pilot, predicate, tries: int = 1500):
    for _ in range(tries):
        if predicate():
            return True
        await pilot.pause(0.02)
    return predicate()


def _text(pane, selector: str) -> str:
    return str(pane.query_one(selector).render())


def _advance(fake) -> dict:
    """Move the fake's (only) fine-tuning job one state or step forward, as if time passed."""
    with fake._lock:
        [(jid, job)] = list(fake.jobs.items())
        fake._advance_job(job, fake._job_state[jid])
        return dict(job)


async def test_finetune_from_the_pane_updates_live(demo_store, fake_openai):
    fake_openai.ft_total_steps = 8
    fake_openai.ft_steps_per_poll = 0  # the job moves only when the test says so
    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(140, 45)) as pilot:
        pane = app.query_one(JobsPane)
        pane.poll_interval = 0.02
        pane.remote_interval = 0.0
        await pilot.press("f2")
        await pilot.press("f")
        assert await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "gpt-4.1-mini-2025-04-14" in str(app.screen.message) and "$" in str(app.screen.message)
        await pilot.press("y")
        assert await _until(pilot, lambda: fake_openai.jobs and (j := pane.selected_job()) is not None
                            and j.kind == "finetune" and j.remote_id)
        assert "validating" in _text(pane, "#job-title")
        assert not pane.query_one("#job-chart").display  # no loss yet: no empty chart frame

        _advance(fake_openai)  # files validated -> queued
        assert await _until(pilot, lambda: "queued" in _text(pane, "#job-title"))
        _advance(fake_openai)  # -> running
        assert await _until(pilot, lambda: "running" in _text(pane, "#job-title"))
        for step in range(1, 9):  # each step shows up in the bar, the log and the chart while it runs
            _advance(fake_openai)
            assert await _until(pilot, lambda: f"step {step}/8" in _text(pane, "#job-step")), step
            assert await _until(pilot, lambda: any(f"Step {step}/8: training loss" in line.text
                                                   for line in pane.query_one("#job-log").lines))
            assert pane.query_one("#job-progress").progress == step
            assert pane.detail._chart_signature[1][0] == step  # train-loss points drawn
            assert pane.query_one("#job-chart").display
        remote = _advance(fake_openai)  # -> succeeded
        assert remote["status"] == "succeeded"
        assert await _until(pilot, lambda: "succeeded" in _text(pane, "#job-title"))
        assert await _until(pilot, lambda: "model ft:gpt-4.1-mini-2025-04-14" in _text(pane, "#job-footer"))
        assert "trained tokens" in _text(pane, "#job-footer") and "cost $" in _text(pane, "#job-footer")
        log = "\n".join(line.text for line in pane.query_one("#job-log").lines)
        assert log.count("The job has successfully completed") == 1
        # open the new model in the playground
        await pilot.press("p")
        await pilot.pause(0.1)
        assert app.query_one("TabbedContent").active == "playground"


async def test_pane_resumes_a_job_started_before_the_app_opened(demo_store, fake_openai):
    settings = load_settings()
    plan = plan_finetune(demo_store, FinetuneOptions(provider="openai"), settings)
    job = start_finetune(demo_store, plan, settings)
    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(140, 45)) as pilot:
        pane = app.query_one(JobsPane)
        pane.poll_interval = 0.02
        pane.remote_interval = 0.0
        await pilot.press("f2")
        assert await _until(pilot, lambda: (j := pane.selected_job()) is not None and j.status.terminal)
        assert pane.selected == job.id and pane.selected_job().status.value == "succeeded"
        assert await _until(pilot, lambda: pane.query_one("#job-chart").display)  # its loss, read back
        # cancelling a finished job only says so
        await pilot.press("c")
        await pilot.pause(0.05)
        assert not isinstance(app.screen, ConfirmScreen)
    ids = [e.remote_id for e in demo_store.job_events(job.id) if e.remote_id]
    assert len(ids) == len(set(ids))


def _screen(app) -> list[str]:
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


async def test_jobs_without_metrics_show_no_loss_chart(demo_store):
    """Label and eval jobs have no loss: no empty chart frame, the event log takes the room."""
    from routelab.services import evaluation

    evaluation.evaluate(demo_store, settings=load_settings())  # offline: an eval job, and a label job for the zero-shot baseline
    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(JobsPane)
        pane.poll_interval = 0.02
        await pilot.press("f2")
        for kind in ("label", "eval"):
            if kind == "eval":
                await pilot.press("down")
            assert await _until(pilot, lambda: (j := pane.selected_job()) is not None and j.kind == kind
                                and "succeeded" in _text(pane, "#job-title")), kind
            await pilot.pause(0.1)  # a few polls: its events are in
            chart, log = pane.query_one("#job-chart"), pane.query_one("#job-log")
            assert not chart.display
            assert log.region.y <= pane.query_one("#job-progress-row").region.bottom + 1  # right below the bar
            assert log.region.height >= 25  # most of the panel at 120x40
            detail = pane.query_one("#job-detail").region
            shown = "\n".join(line[detail.x:detail.right] for line in _screen(app))
            assert "loss" not in shown and "┌" not in shown, shown


async def test_a_second_paid_finetune_on_the_same_data_is_named_in_the_dialog(demo_store, fake_openai, run_cli):
    first = run_cli("--db", demo_store.path, "finetune", "--provider", "openai")
    assert first.code == 0, first
    [job] = demo_store.jobs(kind="finetune")
    app = RoutelabApp(demo_store.path)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("f2", "f")
        assert await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        message = str(app.screen.message)
        assert f"job {job.id}" in message and "this exact data" in message
        await pilot.press("n")
    assert len(fake_openai.jobs) == 1
