"""Pilot tests: the real console on a real engine supervising the real demo fleet."""
from __future__ import annotations

import dataclasses
import os
import signal

import pytest
from textual.command import CommandList, CommandPalette

from aurora_tui.app import AuroraApp
from aurora_tui.core.engine import Engine
from aurora_tui.screens.approvals import ApprovalsScreen
from aurora_tui.screens.chat import ChatScreen
from aurora_tui.screens.confirm import ConfirmScreen
from aurora_tui.screens.explorer import ExplorerScreen
from aurora_tui.screens.help import HelpScreen
from aurora_tui.screens.incident_detail import IncidentDetailScreen
from aurora_tui.screens.incidents import IncidentsScreen
from aurora_tui.screens.logs import LogsScreen
from aurora_tui.screens.prompt import PromptScreen
from aurora_tui.screens.service_detail import ServiceDetailScreen
from aurora_tui.screens.services import ServicesScreen
from aurora_tui.widgets.chat_input import ChatInput
from aurora_tui.widgets.chat_view import ChatView
from aurora_tui.widgets.incidents_table import IncidentsTable
from aurora_tui.widgets.log_tail import LogTail
from aurora_tui.widgets.plans_table import PlansTable
from aurora_tui.widgets.services_table import ServicesTable

from .fleet import demo_fleet
from .helpers import async_wait_until
from .live import running


@pytest.fixture
async def engine(tmp_path):
    async with running(demo_fleet(tmp_path, interval=1.0), healthy=False) as engine:
        yield engine


@pytest.fixture
async def held_engine(tmp_path):
    """The demo fleet with automatic healing off: every fix waits for the operator, so incidents stay
    open and plans stay pending until the test decides."""
    config = demo_fleet(tmp_path, interval=0.5)
    config = dataclasses.replace(config, settings=dataclasses.replace(config.settings, auto_heal=False))
    engine = Engine(config)
    await engine.open()
    engine.launch()
    try:
        yield engine
    finally:
        await engine.close()


def cell(table, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return getattr(value, "plain", str(value))


async def healthy_on_screen(app: AuroraApp, engine: Engine) -> ServicesTable:
    table = app.screen_stack[0].query_one(ServicesTable)

    def shown() -> bool:
        return table.row_count == len(engine.fleet.runners) and all(cell(table, n, "health").startswith("ok") for n in engine.fleet.runners)

    await async_wait_until(shown, timeout=60, what="every service healthy on screen")
    return table


async def test_table_shows_the_live_fleet_and_r_restarts_after_confirming(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await healthy_on_screen(app, engine)
        assert "4/4 healthy" in str(app.screen.query_one("#fleet-header").content)
        old_pid = engine.fleet.runners["bridge_api"].pid
        assert cell(table, "bridge_api", "pid") == str(old_pid)

        table.move_cursor(row=table.get_row_index("bridge_api"))
        await pilot.press("r")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        await pilot.press("n")  # declining changes nothing
        await async_wait_until(lambda: not isinstance(app.screen, ConfirmScreen), what="the dialog to close")
        assert engine.fleet.runners["bridge_api"].pid == old_pid

        await pilot.press("r")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")

        def restarted_on_screen() -> bool:
            pid = engine.fleet.runners["bridge_api"].pid
            return pid != old_pid and cell(table, "bridge_api", "pid") == str(pid) and cell(table, "bridge_api", "restarts") == "1"

        await async_wait_until(restarted_on_screen, timeout=60, what="the restart to show in the table")
        # The row kept its place and the cursor stayed on it.
        assert table.get_row_index("bridge_api") == table.cursor_row
        assert [r.key.value for r in table.ordered_rows] == [s.name for s in engine.config.services]


async def test_a_crash_from_outside_shows_up_and_recovers_on_screen(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await healthy_on_screen(app, engine)
        old = engine.fleet.runners["file_server"].pid
        os.kill(old, signal.SIGKILL)
        await async_wait_until(
            lambda: cell(table, "file_server", "pid") not in ("-", str(old)) and cell(table, "file_server", "restarts") == "1",
            timeout=60,
            what="the replacement on screen",
        )
        # At 80 columns every column that is shown fits: nothing is cut off at the right.
        assert sum(w + 2 * table.cell_padding for _, w in table._layout) <= 80
        await pilot.press("q")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert "stops the 4 services" in str(app.screen.query_one("#confirm-detail").content)
        await pilot.press("escape")
        await async_wait_until(lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.is_running
        await pilot.press("q", "y")
        await async_wait_until(lambda: not app.is_running, what="the app to exit")


async def test_1_to_5_switch_screens_help_lists_keys_and_escape_goes_back(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await healthy_on_screen(app, engine)
        expected = {"1": ServicesScreen, "2": IncidentsScreen, "3": ApprovalsScreen, "4": ChatScreen, "5": ExplorerScreen}
        for key, screen_type in expected.items():
            await pilot.press(key)
            await async_wait_until(lambda: isinstance(app.screen, screen_type), what=f"key {key} to show {screen_type.__name__}")
        # The explorer lists the 29 issue patterns and filters them fuzzily.
        explorer = app.screen
        assert len(explorer.shown) == 29
        await pilot.press("slash", *"memry leak")
        await async_wait_until(lambda: explorer.shown and explorer.shown[0].id == "memory_leak", what="fuzzy match")
        await pilot.press("enter")
        await pilot.press("escape")  # clears the filter
        await async_wait_until(lambda: len(explorer.shown) == 29)
        await pilot.press("escape")  # back to the previous screen (chat)
        await async_wait_until(lambda: isinstance(app.screen, ChatScreen))
        await pilot.press("escape")
        await async_wait_until(lambda: isinstance(app.screen, ApprovalsScreen))

        await pilot.press("question_mark")
        await async_wait_until(lambda: isinstance(app.screen, HelpScreen))
        from aurora_tui.screens.help import sections

        everywhere = dict(sections()[0][1])
        assert {"?", "q", "esc", "1", "2", "3", "4", "5", "c", "ctrl+p"} <= set(everywhere)
        await pilot.press("escape")
        await async_wait_until(lambda: isinstance(app.screen, ApprovalsScreen))

        # Every binding of every screen has a description and an id.
        assert all(what for _, rows in sections() for _, what in rows)
        for screen_type in (*expected.values(), ServiceDetailScreen, IncidentDetailScreen, HelpScreen, ConfirmScreen, PromptScreen):
            for binding in screen_type.BINDINGS:
                assert binding.description and binding.id, (screen_type.__name__, binding)

        # The command palette reaches actions; a restart from it still asks first.
        await pilot.press("ctrl+p")
        await pilot.press(*"restart file")

        def palette_offers_the_restart() -> bool:
            if not isinstance(app.screen, CommandPalette):
                return False
            options = app.screen.query_one(CommandList)
            if options.highlighted is None:
                return False
            return options.get_option_at_index(options.highlighted).hit.text == "Restart file_server"

        await async_wait_until(palette_offers_the_restart, timeout=30, what="the palette to highlight 'Restart file_server'")
        await pilot.press("enter")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the palette's restart to ask first")
        assert "file_server" in str(app.screen.query_one("#confirm-question").content)
        await pilot.press("n")


async def test_services_details_logs_and_stop_start(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await healthy_on_screen(app, engine)
        table.move_cursor(row=table.get_row_index("learning_api"))
        await pilot.press("enter")
        await async_wait_until(lambda: isinstance(app.screen, ServiceDetailScreen))
        log = app.screen.query_one(LogTail)
        await async_wait_until(lambda: any("listening on 127.0.0.1" in line for line in log.lines), what="the log tail")
        await pilot.press("l")  # the whole output, full screen
        await async_wait_until(lambda: isinstance(app.screen, LogsScreen))
        full = app.screen.query_one(LogTail)
        await async_wait_until(lambda: any("listening on 127.0.0.1" in line for line in full.lines), what="the full log")
        await pilot.press("escape", "escape")
        await async_wait_until(lambda: isinstance(app.screen, ServicesScreen))

        await pilot.press("s")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert "Stop learning_api?" in str(app.screen.query_one("#confirm-question").content)
        assert "bridge_api depends on it" in str(app.screen.query_one("#confirm-detail").content)
        await pilot.press("y")
        await async_wait_until(lambda: cell(table, "learning_api", "state") == "stopped", timeout=60, what="stopped on screen")
        await pilot.press("s")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert "Start learning_api?" in str(app.screen.query_one("#confirm-question").content)
        await pilot.press("y")
        await async_wait_until(lambda: cell(table, "learning_api", "state") == "running", timeout=60, what="running again")

        # `/` filters the list by name; escape brings every row back, in the config's order.
        await pilot.press("slash", *"api")
        await async_wait_until(lambda: table.row_count == 2)
        await pilot.press("escape")
        await async_wait_until(lambda: table.row_count == 4)
        assert [r.key.value for r in table.ordered_rows] == [s.name for s in engine.config.services]


async def test_incidents_filter_timeline_and_acknowledge(held_engine: Engine):
    engine = held_engine
    app = AuroraApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await healthy_on_screen(app, engine)
        # Real faults: one service killed (with healing held it stays down), another one stopped (hung).
        os.kill(engine.fleet.runners["aurora_ui"].pid, signal.SIGKILL)
        await engine.chaos("stop", "file_server")

        await pilot.press("2")
        await async_wait_until(lambda: isinstance(app.screen, IncidentsScreen))
        table = app.screen.query_one(IncidentsTable)

        def patterns() -> set[tuple[str, str]]:
            return {(r.service, r.pattern) for r in table.incidents.values()}

        await async_wait_until(lambda: {("aurora_ui", "crashed"), ("file_server", "hung")} <= patterns(), timeout=30, what="both incidents live on screen")
        # Newest first.
        ids = [int(r.key.value) for r in table.ordered_rows]
        assert ids == sorted(ids, reverse=True)

        await pilot.press("slash", *"file")
        await async_wait_until(lambda: patterns() and {s for s, _ in patterns()} == {"file_server"}, what="the service filter")
        assert app.screen.service == "file_server"
        await pilot.press("enter")  # keep the filter, back to the list
        await pilot.press("enter")  # open the timeline
        await async_wait_until(lambda: isinstance(app.screen, IncidentDetailScreen))
        detail = app.screen
        await async_wait_until(lambda: detail.incident is not None, what="the incident to load")
        assert detail.incident.pattern == "hung" and any(e.kind == "diagnosed" for e in detail.incident.timeline)
        await pilot.press("a")

        async def acknowledged() -> bool:
            row = await engine.incident(detail.incident_id)
            return row.status == "acknowledged" and row.acknowledged_by == "operator"

        await async_wait_until(acknowledged, what="the acknowledgement in the engine")
        await async_wait_until(lambda: detail.incident is not None and detail.incident.status == "acknowledged", what="the acknowledgement on screen")
        await pilot.press("escape")
        await async_wait_until(lambda: isinstance(app.screen, IncidentsScreen))
        await async_wait_until(lambda: table.incidents[str(detail.incident_id)].status == "acknowledged", what="the row updated in place")

        # o: open incidents only.
        await pilot.press("escape")  # clear the filter
        await pilot.press("o")
        await async_wait_until(lambda: app.screen.open_only and table.incidents and all(r.is_open for r in table.incidents.values()))


async def test_c_docks_the_chat_pane_beside_any_screen_and_hides_it(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await healthy_on_screen(app, engine)
        pane = app.screen.query_one("#chat-pane", ChatView)
        assert not pane.display or pane.has_class("-hidden")
        await pilot.press("c")
        await async_wait_until(lambda: not pane.has_class("-hidden") and pane.region.width > 0, what="the pane docked")
        if app.supports("ask"):
            assert isinstance(app.screen.focused, ChatInput)
            await pilot.press("escape")  # leaves the input, the pane stays
            assert not isinstance(app.screen.focused, ChatInput)
        else:
            assert pane.query_one("#chat-unavailable").display
            assert "not available in this build" in str(pane.query_one("#chat-unavailable").content)
        await pilot.press("2")  # the pane follows to another screen
        await async_wait_until(lambda: isinstance(app.screen, IncidentsScreen))
        other = app.screen.query_one("#chat-pane", ChatView)
        await async_wait_until(lambda: not other.has_class("-hidden"), what="the pane on the incidents screen")
        await pilot.press("c")
        await async_wait_until(lambda: other.has_class("-hidden"), what="the pane hidden")
        await pilot.press("1")
        await async_wait_until(lambda: isinstance(app.screen, ServicesScreen) and pane.has_class("-hidden"))


async def test_approvals_approve_reject_and_grade_with_the_outcome_on_screen(held_engine: Engine):
    engine = held_engine
    app = AuroraApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await healthy_on_screen(app, engine)
        os.kill(engine.fleet.runners["aurora_ui"].pid, signal.SIGKILL)
        await pilot.press("3")
        await async_wait_until(lambda: isinstance(app.screen, ApprovalsScreen))
        table = app.screen.query_one(PlansTable)
        await async_wait_until(lambda: any(p.service == "aurora_ui" for p in table.plans.values()), timeout=30, what="the plan for aurora_ui")
        # A new pending plan announces itself and counts in the header.
        await async_wait_until(lambda: (app.state.pending_plans or 0) >= 1, what="the pending count")
        plan_id = next(int(k) for k, p in table.plans.items() if p.service == "aurora_ui")
        table.select(str(plan_id))
        await pilot.press("a")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        await pilot.press("y")
        try:
            await async_wait_until(
                lambda: table.plans[str(plan_id)].status in ("executed", "verified", "failed"), timeout=30, what="the outcome on screen"
            )
        except AssertionError:
            raise AssertionError(f"on screen {table.plans}, in the engine {await engine.list_plans(status=None)}, notes {[n.message for n in app._notifications]}")
        assert engine.fleet.runners["aurora_ui"].alive

        # Grade it, 1-10.
        await pilot.press("g")
        await async_wait_until(lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("1", "1", "enter")  # 11 is refused; the prompt stays
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("backspace", "enter")  # 1 is a grade
        await async_wait_until(lambda: not isinstance(app.screen, PromptScreen))
        await async_wait_until(lambda: table.plans[str(plan_id)].grade == 1, what="the grade")

        # Reject another plan with a reason.
        await engine.chaos("stop", "file_server")
        await async_wait_until(lambda: any(p.service == "file_server" and p.status == "pending" for p in table.plans.values()), timeout=30)
        other = next(int(k) for k, p in table.plans.items() if p.service == "file_server" and p.status == "pending")
        table.select(str(other))
        await pilot.press("r")
        await async_wait_until(lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("enter")  # a reason is required
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"not now", "enter")
        await async_wait_until(lambda: table.plans[str(other)].status == "rejected", what="the rejection")
        assert (await engine.plan(other)).reason == "not now"


async def test_incidents_page_from_sqlite_as_the_operator_scrolls(tmp_path):
    from aurora_tui.bench.console import fill_incidents_db

    config = demo_fleet(tmp_path)
    await fill_incidents_db(config.settings.db, 1000)
    engine = Engine(config)
    await engine.open()  # the fleet is not launched: this test is about reading
    try:
        app = AuroraApp(engine)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await async_wait_until(lambda: isinstance(app.screen, IncidentsScreen))
            table = app.screen.query_one(IncidentsTable)
            await async_wait_until(lambda: len(table.incidents) == 200, what="the first page")
            assert table.get_row_at(0)[0].plain == "1000"  # newest first
            for _ in range(6):
                await pilot.press("pagedown")  # as an operator scrolls: nothing more is read until near the end
            assert len(table.incidents) == 200
            for _ in range(20):
                if app.screen.exhausted:
                    break
                loaded = len(table.incidents)
                await pilot.press("ctrl+end")
                await async_wait_until(lambda: len(table.incidents) > loaded or app.screen.exhausted, what="the next page")
            await async_wait_until(lambda: len(table.incidents) == 1000 and app.screen.exhausted, what="every page")
            ids = [int(r.key.value) for r in table.ordered_rows]
            assert ids == list(range(1000, 0, -1))
    finally:
        await engine.close()


def test_the_incident_filter_understands_names_prefixes_and_typos():
    from aurora_tui.core.patterns import load_patterns
    from aurora_tui.screens.incidents import resolve_filter

    services = ["aurora_ui", "bridge_api", "learning_api", "file_server", "(host)"]
    patterns = list(load_patterns())
    assert resolve_filter("bri", services, patterns) == ("bridge_api", None, None)
    assert resolve_filter("hung", services, patterns) == (None, "hung", None)
    assert resolve_filter("file crashed", services, patterns) == ("file_server", "crashed", None)
    assert resolve_filter("s:learn p:memry_leak", services, patterns) == ("learning_api", "memory_leak", None)
    assert "fits several" in resolve_filter("api", services, patterns)[2]  # bridge_api or learning_api?
    assert "fits several" in resolve_filter("crash", services, patterns)[2]  # crashed or crash_loop?
    assert resolve_filter("", services, patterns) == (None, None, None)
    assert resolve_filter("zzzqqq", services, patterns)[2] is not None
