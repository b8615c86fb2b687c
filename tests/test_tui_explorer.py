"""The explorer (screen 5): patterns, programs, tiers and modules in one place, fuzzy search over all of
them, the dispatcher's usage counts and active modules, and `enter` asking the dispatcher.

The pilot test runs the real console on a real engine supervising the real demo fleet; the snapshots use
the fixed fake engine of tests/test_tui_snapshots.py (same clock, same data)."""
from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.widgets import Static

from aurora_tui.app import AuroraApp
from aurora_tui.core.catalogue import Catalogue
from aurora_tui.core.dispatch.dispatcher import Dispatcher
from aurora_tui.core.engine import Engine
from aurora_tui.screens.confirm import ConfirmScreen
from aurora_tui.screens.explorer import ExplorerScreen, fit_ids
from aurora_tui.widgets.chat_input import ChatInput
from aurora_tui.widgets.chat_view import ChatView

from .fleet import demo_fleet
from .helpers import async_wait_until
from .live import running
from .test_tui_chat import answered, fleet_healthy, rendered, turn_view
from .test_tui_snapshots import SIZES, app as fake_app, catalogue_ready, frozen_world, settle  # noqa: F401 (fixture)


@pytest.fixture
async def engine(tmp_path):
    async with running(demo_fleet(tmp_path, interval=1.0), healthy=False) as engine:
        yield engine


def detail(screen: ExplorerScreen) -> str:
    """The detail pane as plain text."""
    console = Console(width=160, file=io.StringIO(), record=True, color_system=None)
    console.print(screen.query_one("#explorer-view", Static).content)
    return console.export_text()


def active_panel(screen: ExplorerScreen) -> str:
    return screen.query_one("#explorer-active").render().plain


async def move_to(pilot, screen: ExplorerScreen, kind: str, entry_id: str) -> None:
    """Highlight an entry of the list with the arrow keys, as an operator would."""
    index = next(i for i, e in enumerate(screen.shown) if (e.section, e.id) == (kind, entry_id))
    from_end = len(screen.shown) - 1 - index
    await pilot.press(*(["home", *["down"] * index] if index <= from_end else ["end", *["up"] * from_end]))
    await async_wait_until(lambda: screen.current is not None and (screen.current.section, screen.current.id) == (kind, entry_id),
                           what=f"{kind} {entry_id} highlighted")


async def to_tab(pilot, screen: ExplorerScreen, tab: str) -> None:
    for _ in range(6):
        if screen.tab == tab and not screen.query_text:
            return
        await pilot.press("k")
    raise AssertionError(f"never reached the {tab} tab")


async def test_search_details_ask_and_usage_on_the_real_engine(engine: Engine):
    cat = Catalogue.load()
    app = AuroraApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await fleet_healthy(engine)
        await pilot.press("5")
        await async_wait_until(lambda: isinstance(app.screen, ExplorerScreen) and app.screen.catalogue is not None,
                               what="the explorer with its catalogue")
        screen = app.screen
        assert isinstance(screen, ExplorerScreen)
        assert screen.tab == "pattern" and len(screen.shown) == 29
        assert "Active modules" in active_panel(screen) and "none known yet" in active_panel(screen)

        # `/` searches every kind at once: "hpa" finds the module k8s.hpa.
        await pilot.press("slash", *"hpa")
        await async_wait_until(lambda: ("module", "k8s.hpa") in {(e.section, e.id) for e in screen.shown}, what="k8s.hpa found")
        assert {e.section for e in screen.shown} >= {"module", "tier"}  # not only modules
        await pilot.press("enter")  # keep the search, back to the list
        await move_to(pilot, screen, "module", "k8s.hpa")
        text = detail(screen)
        for needle in ("HorizontalPodAutoscaler", "version 2.0.0", "Depends on", "k8s.deployments", "Conflicts with",
                       "keda.scaledobject", "Provides", "autoscaling", "Dependants"):
            assert needle in text, (needle, text)
        await pilot.press("escape")  # clears the search: the tab's list again
        await async_wait_until(lambda: not screen.query_text and len(screen.shown) == 29, what="the patterns again")

        # Program 62: its tiers and its modules, resolved with their dependencies, in order.
        await to_tab(pilot, screen, "program")
        assert len(screen.shown) == 66
        await move_to(pilot, screen, "program", "62")
        text = detail(screen)
        assert "#62 Automatic Repair" in text and "Checklist" in text and "Pitfalls" in text
        modules = cat.program_modules(62)
        assert f"Modules ({len(modules)}, dependencies first)" in text
        positions = [text.index(f" {m} ") for m in modules]
        assert positions == sorted(positions), "modules out of order"
        for tier in cat.program(62).tiers:
            assert cat.tier(tier).name in text
        assert "Usage: not known until the dispatcher answers" in text

        # enter on a pattern asks the dispatcher; the answer shows in the chat pane, docked for it.
        await to_tab(pilot, screen, "pattern")
        await move_to(pilot, screen, "pattern", "crash_loop")
        pane = screen.query_one("#chat-pane", ChatView)
        assert pane.has_class("-hidden")
        await pilot.press("enter")
        turn = await async_wait_until(lambda: answered(app, "explain crash_loop"), timeout=60, what="the dispatcher's answer")
        assert not pane.has_class("-hidden") and not isinstance(screen.focused, ChatInput)  # docked; the list keeps the keys
        assert turn.reply is not None and turn.reply.program is not None
        assert turn.reply.program["id"] == 40 and turn.reply.action == "explain"
        await async_wait_until(lambda: "Crash loop" in rendered(turn_view(app, turn)), what="the answer rendered in the pane")
        assert turn_view(app, turn) in pane.query("*")
        assert app.state.usage is not None and app.state.usage["program:40"] == 1
        assert app.state.active_modules == list(cat.program_modules(40))
        await async_wait_until(lambda: f"Active modules ({len(cat.program_modules(40))})" in active_panel(screen),
                               what="the active modules panel")

        # A routed message counts its program: program 62's count goes up while it is on screen.
        await to_tab(pilot, screen, "program")
        await move_to(pilot, screen, "program", "62")
        assert "Not used by the dispatcher yet" in detail(screen)
        for n, said in ((1, "once"), (2, "2 times")):
            await pilot.press("c", "c")  # hide the pane, dock it again with the input focused
            await async_wait_until(lambda: isinstance(screen.focused, ChatInput), what="the pane's input")
            await pilot.press(*"restart brige api", "enter")
            await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("n")  # nothing is restarted; the routing was counted all the same
            await async_wait_until(lambda: (app.state.usage or {}).get("program:62") == n, what=f"program 62 used {n}x")
            await async_wait_until(lambda: f"Used by the dispatcher: {said}" in detail(screen), what="the count on screen")
            await pilot.press("escape")  # leave the input
        text = detail(screen)
        assert "● active in the dispatcher" in text and "×2" in text  # active markers, per-module counts

        # The Active tab lists every active module, in the order they became active.
        await to_tab(pilot, screen, "active")
        expected = list(dict.fromkeys([*cat.program_modules(40), *cat.program_modules(62)]))
        assert [e.id for e in screen.shown] == expected == app.state.active_modules
        assert all(e.section == "module" for e in screen.shown)


async def test_the_dispatcher_counts_usage_and_activates_modules():
    class NoFleet:  # the dispatcher answers guidance without a fleet
        async def snapshot(self):
            raise RuntimeError("no fleet here")

    cat = Catalogue.load()
    d = Dispatcher(NoFleet())
    first = await d.ask("explain crash loop")
    assert first.usage["program:40"] == 1 and first.active_modules == list(cat.program_modules(40))
    assert all(first.usage[f"module:{m}"] == 1 for m in cat.program_modules(40))
    assert all(first.usage[f"tier:{t['id']}"] == 1 for t in first.tiers)
    second = await d.ask("explain zombies")
    assert second.usage["program:40"] == 2 and first.usage["program:40"] == 1  # copies, not the live counter
    stats = d.stats()
    assert stats["usage"] == second.usage and stats["active_modules"] == second.active_modules and stats["refused"] == []
    # A conflict with an active module is refused, recorded, and the answer still comes.
    d.registry.activate("sqlite.rollback-journal")  # program 62 needs sqlite.wal
    answer = await d.ask("restart bridge_api")
    assert answer.program is not None and answer.program["id"] == 62 and answer.usage["program:62"] == 1
    assert "aurora.restart" not in answer.active_modules
    refused = d.stats()["refused"]
    assert len(refused) == 1 and refused[0]["program"]["id"] == 62 and "sqlite" in refused[0]["error"]


def test_active_ids_fit_their_lines():
    ids = ["posix.pidfd", "posix.signals", "posix.process-groups", "python.core", "python.asyncio", "aurora.supervise"]
    assert fit_ids(ids, 30, 3) == ["posix.pidfd, posix.signals,", "posix.process-groups,", "python.core … +2 more"]
    assert fit_ids(ids, 200, 3) == [", ".join(ids)]
    assert all(len(line) <= 22 for line in fit_ids(ids, 22, 3))


# --- snapshots (fixed data) ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_explorer_program_after_an_answer(snap_compare, size):
    """Program 61 with the dispatcher's counts and active modules, and the answer in the chat pane."""
    async def before(pilot):
        await catalogue_ready(pilot)
        await pilot.press("5", "k", "end", *["up"] * 5, "enter")
        await settle(pilot)

    assert snap_compare(fake_app(), terminal_size=SIZES[size], run_before=before)


def test_explorer_search(snap_compare):
    async def before(pilot):
        await catalogue_ready(pilot)
        await pilot.press("5", "slash", *"hpa")
        screen = pilot.app.screen
        await async_wait_until(lambda: screen.query_text == "hpa", timeout=30, what="the query typed in")
        await pilot.press("enter", "down")
        await settle(pilot)

    assert snap_compare(fake_app(), terminal_size=SIZES["80x24"], run_before=before)
