"""Bounds: every duration and interval in a config is at most a day (and a number at all), and one slow
starter holds up nobody but its own dependants, while scanning goes on from the start.

The config half runs the real ``aurora`` command; the start-up half runs a real engine over real
processes: one that never becomes healthy within a start grace of a whole day, one that starts at once,
one that crashes during the start-up, and one that waits for the slow one.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from aurora_tui.core.model import ServiceState

from .fleet import http_service, script_fleet
from .helpers import async_wait_until, free_port
from .live import running

SERVICE = '[[service]]\nname = "web"\ncommand = ["python3", "-m", "http.server"]\nport = 8000\n'

# (what the file says, the key an error names, the problem it states)
BEYOND = {
    "interval": ("[aurora]\ninterval = 1e308\n" + SERVICE, "aurora.interval", "must be at most 86400 seconds, got 1e+308"),
    "start grace": (SERVICE + "start_grace = 99999999999999999999\n", "service[1].start_grace", "web: must be at most 86400 seconds"),
    "start grace float": (SERVICE + "start_grace = 1e20\n", "service[1].start_grace", "must be at most 86400 seconds, got 1e+20"),
    "stop timeout": (SERVICE + "stop_timeout = 86401\n", "service[1].stop_timeout", "at most 86400 seconds, got 86401"),
    "restart delay": (SERVICE + "restart_delay = inf\n", "service[1].restart_delay", "must be a finite number"),
    "nan": (SERVICE + "stop_timeout = nan\n", "service[1].stop_timeout", "must be a finite number, got float nan"),
    "health timeout": (SERVICE + "health = { tcp = true, timeout = 1e9 }\n", "service[1].health.timeout", "at most 86400 seconds"),
    "retention": ("[aurora]\nretention_hours = 1e12\n" + SERVICE, "aurora.retention_hours", "at most 8784 hours"),
    "pattern window": (SERVICE + "patterns = { crash_loop = { window_s = 1e12 } }\n", "service[1].patterns.crash_loop.window_s", "at most 86400 seconds"),
    "pattern latency": (
        "[aurora]\npatterns = { slow_responses = { latency_ms = 1e300 } }\n" + SERVICE,
        "aurora.patterns.slow_responses.latency_ms", "at most 8.64e+07 ms",
    ),
}


def aurora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aurora_tui", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", sorted(BEYOND))
def test_a_duration_beyond_a_day_is_a_config_error(case, tmp_path):
    text, key, problem = BEYOND[case]
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    checked = aurora("check-config", str(path))
    assert checked.returncode == 2, checked.stdout
    assert f"{path}: {key}: " in checked.stderr and problem in checked.stderr, checked.stderr
    assert "Traceback" not in checked.stderr


def test_the_largest_durations_allowed_are_accepted_and_the_engine_refuses_the_others(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(SERVICE + "start_grace = 86400\nstop_timeout = 86400\nrestart_delay = 0\n")
    assert aurora("check-config", str(good)).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(SERVICE + "start_grace = 1e20\n")
    refused = aurora("run", "--headless", "--config", str(bad), "--db", str(tmp_path / "aurora.db"))
    assert refused.returncode == 2
    assert f"{bad}: service[1].start_grace: web: must be at most 86400 seconds, got 1e+20" in refused.stderr
    assert not (tmp_path / "aurora.db").exists(), "nothing starts on a bad config"


@pytest.mark.parametrize("value, problem", [("1e308", "at most 86400 seconds"), ("inf", "finite"), ("nan", "finite"), ("0", "greater than 0")])
def test_the_interval_flag_has_the_same_bounds(value, problem, tmp_path):
    result = aurora("run", "--headless", "--db", str(tmp_path / "aurora.db"), "--interval", value)
    assert result.returncode == 2 and "--interval" in result.stderr and problem in result.stderr, result.stderr
    assert not (tmp_path / "aurora.db").exists()


CRASHES_ONCE = """
    import os, sys, time
    marker = sys.argv[0] + ".ran"
    if not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(3)  # the first start fails at once; the next one stays up
    time.sleep(600)
"""


async def test_a_slow_starter_holds_up_only_its_dependants_and_scans_go_on(tmp_path):
    slow_port, fast_port = free_port(), free_port()
    config = script_fleet(tmp_path, {
        # Never listens: it stays in its start grace (a day) for as long as the test lasts.
        "slow": {"script": "import time; time.sleep(600)", "port": slow_port, "health": {"tcp": True, "timeout": 0.5}, "start_grace": 86400},
        "fast": {"script": http_service(fast_port), "port": fast_port, "health": {"http": "/"}},
        "crashy": {"script": CRASHES_ONCE, "start_grace": 1, "restart_delay": 0.1},
        "waits": {"script": "import time; time.sleep(600)", "depends_on": ["slow"]},
        # A level after the slow one's, but it depends only on fast: it need not wait for slow.
        "after_fast": {"script": "import time; time.sleep(600)", "depends_on": ["fast"], "start_grace": 0.5},
    }, interval=0.2)
    async with running(config, healthy=False) as engine:
        def status(name: str):
            return engine.monitor.status_of(name)

        await async_wait_until(lambda: status("fast").healthy, timeout=60, what="fast healthy while slow still starts")
        await async_wait_until(lambda: status("after_fast").healthy, timeout=60, what="fast's dependant up while slow still starts")
        await async_wait_until(lambda: engine.monitor.scans >= 5, timeout=60, what="scans during the start-up")
        # The crash during the start-up was seen and healed while the slow one still starts.
        await async_wait_until(
            lambda: status("crashy").state == ServiceState.RUNNING and status("crashy").restarts >= 1 and status("crashy").pid,
            timeout=60, what="crashy restarted after failing its first start",
        )
        assert status("slow").state == ServiceState.STARTING and status("slow").pid
        assert status("waits").pid is None and status("waits").state == ServiceState.STOPPED, "a dependant waits for its dependency"
        # Nothing is wrong with a service in its start grace, or with one waiting for it.
        assert not await engine.list_incidents(service="slow")
        assert not await engine.list_incidents(service="waits")
        assert not await engine.list_incidents(service="fast")
        assert not await engine.list_incidents(service="after_fast")
