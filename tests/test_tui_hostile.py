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
