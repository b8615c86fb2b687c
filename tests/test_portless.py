"""Services with no port and no health check (issue 10, item 7): a failed start and a crash loop are
told apart by exits and run time alone, and a program that keeps running is healthy."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aurora_tui.core.config import ServiceConfig
from aurora_tui.core.restart_policy import SETTLE, settle_time

from .helpers import async_wait_until
from .live import fleet_config, incident_for, patterns_seen, running, scans_pass

pytestmark = pytest.mark.timeout(90)

# Runs until the test creates "die-<its pid>" next to it, then exits 1 like a program hitting a fatal
# error. The test decides when, so no run's length depends on how busy the machine is.
DIES_ON_CUE = """
import os, sys, time
print("working", flush=True)
cue = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"die-{os.getpid()}")
while not os.path.exists(cue):
    time.sleep(0.02)
print("Error: lost the queue", flush=True)
sys.exit(1)
"""


def worker(tmp_path: Path, name: str, script: str, **keys) -> ServiceConfig:
    path = tmp_path / f"{name}.py"
    path.write_text(script)
    return ServiceConfig(name=name, command=(sys.executable, str(path)), restart_delay=0.1, **keys)


def test_the_settle_time_is_the_start_grace_up_to_the_start_up_failure_window():
    assert settle_time(10.0) == SETTLE == 3.0
    assert settle_time(0.5) == 0.5


async def test_a_portless_program_that_exits_at_once_is_a_startup_failure(tmp_path):
    script = "import sys\nprint('Error: no such setting: QUEUE_URL', flush=True)\nsys.exit(2)\n"
    async with running(fleet_config(tmp_path, worker(tmp_path, "consumer", script)), healthy=False) as engine:
        incident = await incident_for(engine, "consumer", "startup_failure", timeout=30)
        assert incident.evidence["exit_code"] == 2
        assert "QUEUE_URL" in incident.summary
        # Its repeated quick exits are one start-up failure, not also a crash loop or crashes.
        await scans_pass(engine, 2)
        assert await patterns_seen(engine, "consumer") == {"startup_failure"}
        assert not engine.monitor.status_of("consumer").healthy


async def test_a_portless_program_that_runs_then_keeps_dying_is_a_crash_loop(tmp_path):
    svc = worker(tmp_path, "consumer", DIES_ON_CUE, start_grace=0.3)
    async with running(fleet_config(tmp_path, svc)) as engine:
        runner = engine.fleet.runners["consumer"]

        async def restarts_verified(count: int) -> bool:
            plans = await engine.list_plans(status=None)
            return sum(p.service == "consumer" and p.status == "verified" for p in plans) >= count

        for deaths in range(3):
            # Aurora brought the last one back and saw it stay up; this run counts as started (it
            # outlived its grace), and then it dies.
            await async_wait_until(lambda: restarts_verified(deaths), timeout=30, what=f"{deaths} verified restarts")
            pid = await async_wait_until(
                lambda: runner.pid if runner.alive and runner.healthy_since_start else None, timeout=30, what="a started run"
            )
            (tmp_path / f"die-{pid}").touch()
            await async_wait_until(lambda: runner.pid != pid or not runner.alive, timeout=30, what=f"pid {pid} to exit")
        incident = await incident_for(engine, "consumer", "crash_loop", timeout=30)
        assert incident.evidence["exits_in_window"] >= 3
        assert set(incident.evidence["exit_codes"]) == {1}
        assert all(exit.was_healthy for exit in engine.fleet.exit_history["consumer"])
        assert "startup_failure" not in await patterns_seen(engine, "consumer")


async def test_a_portless_program_that_keeps_running_is_healthy_and_its_exit_is_a_crash(tmp_path):
    svc = worker(tmp_path, "consumer", DIES_ON_CUE, start_grace=0.3)
    async with running(fleet_config(tmp_path, svc, auto_heal=False)) as engine:
        status = engine.monitor.status_of("consumer")
        assert status.healthy and status.state == "running" and status.port is None
        pid = status.pid
        (tmp_path / f"die-{pid}").touch()
        incident = await incident_for(engine, "consumer", "crashed", timeout=30)
        assert incident.evidence["exit_code"] == 1
        last = engine.fleet.runners["consumer"].last_exit
        assert last is not None and last.was_healthy
        assert "startup_failure" not in await patterns_seen(engine, "consumer")
