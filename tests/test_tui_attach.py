"""The console attached to an engine that runs headless in another process, through the control socket."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aurora_tui.app import AuroraApp
from aurora_tui.core.config import demo_config_text
from aurora_tui.core.remote import RemoteEngine
from aurora_tui.screens.approvals import ApprovalsScreen
from aurora_tui.screens.confirm import ConfirmScreen
from aurora_tui.screens.incidents import IncidentsScreen
from aurora_tui.widgets.services_table import ServicesTable

from .helpers import async_wait_until, free_demo_offset, wait_until

AURORA = [sys.executable, "-m", "aurora_tui"]


def status(db: Path) -> list[dict] | None:
    result = subprocess.run([*AURORA, "status", "--json", "--db", str(db)], capture_output=True, text=True, timeout=30)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture
def headless(tmp_path):
    config = tmp_path / "fleet.toml"
    config.write_text(demo_config_text(free_demo_offset()).replace("\n[aurora]\n", '\n[aurora]\nlog_dir = "logs"\n', 1))
    db = tmp_path / "aurora.db"
    err = open(tmp_path / "engine.err", "w+")
    proc = subprocess.Popen(
        [*AURORA, "run", "--headless", "--config", str(config), "--db", str(db), "--interval", "1"],
        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
    )
    try:
        yield proc, db
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        err.close()


def cell(table, row: str, column: str) -> str:
    value = table.get_cell(row, column)
    return getattr(value, "plain", str(value))


async def test_attach_to_a_headless_engine_act_through_it_and_detach_leaving_it_running(headless):
    proc, db = headless
    services = await asyncio.to_thread(
        wait_until, lambda: (s := status(db)) and all(x["healthy"] for x in s) and s, 30, 0.2, "the headless fleet healthy"
    )
    pids = {s["name"]: s["pid"] for s in services}

    engine = RemoteEngine(db)
    await engine.open()
    app = AuroraApp(engine, engine_mode="attached")
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.screen.query_one(ServicesTable)
            await async_wait_until(
                lambda: table.row_count == 4 and all(cell(table, n, "pid") == str(p) for n, p in pids.items()), timeout=60,
                what="the headless engine's fleet on screen",
            )
            assert "attached" in str(app.screen.query_one("#fleet-header").content)

            # The same keys act through the socket: restart file_server after confirming.
            table.move_cursor(row=table.get_row_index("file_server"))
            await pilot.press("r")
            await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await async_wait_until(
                lambda: cell(table, "file_server", "pid") not in ("-", str(pids["file_server"])) and cell(table, "file_server", "health").startswith("ok"),
                timeout=60, what="the restart through the socket",
            )

            # The other screens read through the socket too.
            await pilot.press("2")
            await async_wait_until(lambda: isinstance(app.screen, IncidentsScreen))
            await async_wait_until(lambda: "loaded" in str(app.screen.query_one("#incidents-status").content), what="incidents read")
            assert app.screen.error is None
            await pilot.press("3")
            await async_wait_until(lambda: isinstance(app.screen, ApprovalsScreen) and app.screen.supported is not None, what="the queue (or its absence)")

            await pilot.press("q")
            await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen))
            assert "keep running" in str(app.screen.query_one("#confirm-detail").content)
            await pilot.press("y")
            await async_wait_until(lambda: not app.is_running, what="the console to exit")
    finally:
        await engine.close()

    # Detaching left the engine and its whole fleet running.
    assert proc.poll() is None
    after = await asyncio.to_thread(status, db)
    assert after is not None and all(s["healthy"] for s in after)
    assert {s["name"]: s["pid"] for s in after if s["name"] != "file_server"} == {n: p for n, p in pids.items() if n != "file_server"}


def test_attach_without_an_engine_says_so(tmp_path):
    result = subprocess.run([*AURORA, "--attach", "--db", str(tmp_path / "none.db")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "no Aurora engine is running" in result.stderr


async def test_an_attached_console_outlives_its_engine_and_says_so(headless):
    proc, db = headless
    await asyncio.to_thread(wait_until, lambda: (s := status(db)) and all(x["healthy"] for x in s), 30, 0.2, "the headless fleet healthy")
    engine = RemoteEngine(db)
    await engine.open()
    app = AuroraApp(engine, engine_mode="attached")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one(ServicesTable)
            await async_wait_until(lambda: table.row_count == 4, what="the fleet on screen")
            proc.send_signal(signal.SIGTERM)  # the engine goes away under the console
            await asyncio.to_thread(proc.wait, 30)
            header = app.screen.query_one("#fleet-header")
            await async_wait_until(lambda: "DISCONNECTED" in str(header.content), timeout=60, what="the header to say so")
            assert app.is_running and table.row_count == 4  # the last known state stays on screen
            await pilot.press("q", "y")
            await async_wait_until(lambda: not app.is_running, what="the console to exit")
    finally:
        await engine.close()
