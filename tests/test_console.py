"""Pilot tests: the real console on a real engine supervising the real demo fleet."""
from __future__ import annotations

import pytest

from aurora_tui.app import AuroraApp
from aurora_tui.core.engine import Engine
from aurora_tui.screens.confirm import ConfirmScreen
from aurora_tui.widgets.services_table import ServicesTable

from .fleet import demo_fleet
from .helpers import async_wait_until


@pytest.fixture
async def engine(tmp_path):
    engine = Engine(demo_fleet(tmp_path, interval=1.0))
    await engine.open()
    engine.launch()
    try:
        yield engine
    finally:
        await engine.close()


def cell(table: ServicesTable, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return getattr(value, "plain", str(value))


async def test_table_shows_the_live_fleet_and_r_restarts_after_confirming(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(ServicesTable)

        def fleet_shown() -> bool:
            return table.row_count == 4 and all(cell(table, n, "health").startswith("ok") for n in engine.runners)

        await async_wait_until(fleet_shown, timeout=30, what="four healthy rows")
        assert "4/4 healthy" in str(app.screen.query_one("#fleet-header").content)
        old_pid = engine.runners["bridge_api"].pid
        assert cell(table, "bridge_api", "pid") == str(old_pid)

        table.move_cursor(row=table.get_row_index("bridge_api"))
        await pilot.press("r")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        await pilot.press("n")  # declining changes nothing
        await async_wait_until(lambda: not isinstance(app.screen, ConfirmScreen), what="the dialog to close")
        assert engine.runners["bridge_api"].pid == old_pid

        await pilot.press("r")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("y")

        def restarted_on_screen() -> bool:
            pid = engine.runners["bridge_api"].pid
            return pid != old_pid and cell(table, "bridge_api", "pid") == str(pid) and cell(table, "bridge_api", "restarts") == "1"

        await async_wait_until(restarted_on_screen, timeout=20, what="the restart to show in the table")
        # The row kept its place and the cursor stayed on it.
        assert table.get_row_index("bridge_api") == table.cursor_row


async def test_a_crash_from_outside_shows_up_and_recovers_on_screen(engine: Engine):
    import os
    import signal

    app = AuroraApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(ServicesTable)
        await async_wait_until(lambda: table.row_count == 4 and cell(table, "file_server", "health").startswith("ok"), timeout=30)
        old = engine.runners["file_server"].pid
        os.kill(old, signal.SIGKILL)
        await async_wait_until(
            lambda: cell(table, "file_server", "pid") not in ("-", str(old)) and cell(table, "file_server", "restarts") == "1",
            timeout=15,
            what="the replacement on screen",
        )
        await pilot.press("q")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await async_wait_until(lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.is_running
        await pilot.press("q", "y")
        await async_wait_until(lambda: not app.is_running, what="the app to exit")
