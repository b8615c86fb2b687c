"""Never give up silently: a managed service is always tried again, a rate limit slows the tries down
instead of stopping them, the operator is told once, and an incident stays open while its service is down."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aurora_tui.core import detect
from aurora_tui.core.config import ConfigError, ServiceConfig, parse_config
from aurora_tui.core.detect import ServiceView
from aurora_tui.core.engine import Engine
from aurora_tui.core.guardians import judge
from aurora_tui.core.model import ExitInfo
from aurora_tui.core.patterns import pattern_params
from aurora_tui.core.plans import Action

from .fleet import http_service, script_fleet
from .helpers import async_wait_until, free_port
from .live import running
from .test_guardians import ctx, plan

AURORA = [sys.executable, "-m", "aurora_tui"]
# The fault of the issue: a kill from outside every 15 s, for 3 minutes.
KILL_EVERY = 15.0
KILL_FOR = 180.0


def web(port: int, script: str, **keys) -> dict:
    return {"web": {"script": script, "port": port, "health": {"http": "/"}, "start_grace": 3.0, **keys}}


def with_rate_limit(config, limit: int):
    return dataclasses.replace(config, settings=dataclasses.replace(config.settings, rate_limit=limit))


async def escalations(engine: Engine, service: str) -> list[str]:
    rows = await engine.records.store.fetch("SELECT message FROM events WHERE kind = 'escalated' AND service = ?", (service,))
    return [r["message"] for r in rows]


async def resolutions(engine: Engine, service: str) -> list[str]:
    rows = await engine.records.store.fetch(
        "SELECT e.message FROM incident_events e JOIN incidents i ON i.id = e.incident_id WHERE i.service = ? AND e.kind = 'resolved'",
        (service,),
    )
    return [r["message"] for r in rows]


def _aurora_status(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*AURORA, "status", "--db", str(db)], capture_output=True, text=True, timeout=30)


def test_rate_limit_is_a_setting_with_a_checked_value(tmp_path):
    service = f'[[service]]\nname = "web"\ncommand = ["{sys.executable}", "-c", "pass"]\n'
    config = parse_config('[aurora]\nrate_limit = 2\n' + service, str(tmp_path / "fleet.toml"), base_dir=tmp_path)
    assert config.settings.rate_limit == 2
    with pytest.raises(ConfigError) as bad:
        parse_config('[aurora]\nrate_limit = 0\n' + service, str(tmp_path / "fleet.toml"), base_dir=tmp_path)
    assert "rate_limit" in str(bad.value) and "fleet.toml" in str(bad.value)


@pytest.mark.timeout(600)
async def test_a_service_killed_every_15s_is_always_brought_back_and_escalated_once(tmp_path):
    port = free_port()
    # A low rate limit so that the 3 minutes cross it several times over.
    config = with_rate_limit(script_fleet(tmp_path, web(port, http_service(port)), interval=0.5), 2)
    seen_next_try: list[float] = []
    status_lines: list[str] = []
    async with running(config) as engine:
        started = time.monotonic()
        kills = 0
        killed: int | None = None

        async def healthy():
            status = engine.monitor.status_of("web")
            if status.next_try_at is not None and not seen_next_try:
                seen_next_try.append(status.next_try_at)
                # While it waits out the slowed restart, the CLI says when the next try comes.
                shown = await asyncio.to_thread(_aurora_status, engine.db_path)
                status_lines.extend(line for line in shown.stdout.splitlines() if line.startswith("web "))
            return status if status.healthy and status.state == "running" and status.pid != killed else None

        while True:
            # After each kill the service is healthy again within a generous deadline (a slowed restart
            # waits up to a minute), however many kills came before.
            await async_wait_until(healthy, timeout=150, interval=0.2, what=f"web healthy again after kill {kills}")
            if time.monotonic() - started >= KILL_FOR:
                break
            # Killed once it has run for 15 s: long enough that each kill is a crash, not a crash loop.
            up = await async_wait_until(
                lambda: (s := engine.monitor.status_of("web")).healthy and s.pid != killed and (s.uptime or 0) >= KILL_EVERY and s,
                timeout=60, interval=0.2, what="web up for 15 s",
            )
            if time.monotonic() - started >= KILL_FOR:
                break
            killed = up.pid
            os.kill(killed, signal.SIGKILL)
            kills += 1
        assert kills >= 4, kills

        async def all_finished():
            plans = [p for p in await engine.list_plans(status=None, limit=200) if p.service == "web"]
            return plans if all(p.status not in ("executing", "approved") for p in plans) else None

        plans = await async_wait_until(all_finished, timeout=60, what="the plans on web finished")
        slowed = [p for p in plans if any("slowed down" in r for v in p.verdicts for r in v["reasons"])]
        assert slowed, "the rate limit was never reached: the test proves nothing"
        assert all(p.status == "verified" for p in slowed), [(p.id, p.status, p.outcome) for p in slowed]
        assert not [p for p in plans if p.status == "blocked"], "a restart was blocked instead of slowed"
        assert len(await escalations(engine, "web")) == 1, await escalations(engine, "web")
        crashed = await engine.list_incidents(service="web", pattern="crashed", limit=100)
        assert len(crashed) == kills and all(i.status == "resolved" for i in crashed)
        # Each was resolved only once web had been started again, never while it was down.
        starts = [r["ts"] for r in await engine.records.store.fetch("SELECT ts FROM events WHERE kind = 'started' AND service = 'web'")]
        for incident in crashed:
            assert any(incident.opened_at <= ts <= incident.resolved_at for ts in starts), incident
    assert seen_next_try, "status never showed when the slowed restart would come"
    assert status_lines and "next try in" in status_lines[0], status_lines


@pytest.mark.timeout(300)
async def test_a_service_whose_fix_keeps_failing_is_retried_with_growing_back_off_and_escalated_once(tmp_path):
    port = free_port()
    broken = tmp_path / "broken"
    # After a bad config swap the program exits at once with an error, however often it is started.
    script = (
        "import os, sys\n"
        f"if os.path.exists({str(broken)!r}):\n"
        "    print('Error: config swapped for a broken one', flush=True)\n"
        "    sys.exit(3)\n"
    ) + http_service(port)
    # Windows much shorter than the back-off, so that the test sees the exits age out of them while
    # the service stays down: the incident must stay open all the same.
    short = {"crashed": {"window_s": 4.0}, "startup_failure": {"window_s": 4.0}, "crash_loop": {"window_s": 4.0}}
    config = script_fleet(tmp_path, web(port, script, patterns=short), interval=0.5)
    async with running(config) as engine:
        broken.write_text("swapped")
        os.kill(engine.monitor.status_of("web").pid, signal.SIGKILL)

        async def delays():
            rows = await engine.records.store.fetch("SELECT data_json FROM events WHERE kind = 'backoff' AND service = 'web' ORDER BY id")
            return [float(json.loads(r["data_json"])["delay"]) for r in rows]

        grown = await async_wait_until(
            lambda: _at_least(delays(), 5), timeout=200, interval=0.5, what="five back-off tries of web",
        )
        assert grown == sorted(grown) and grown[-1] > grown[0], grown
        status = engine.monitor.status_of("web")
        assert not status.healthy
        failure = [i for i in await engine.list_incidents(service="web", open_only=True, limit=20)
                   if i.pattern in ("crashed", "startup_failure", "crash_loop")]
        assert failure, "the service is down and no incident about it is open"
        assert not any("condition cleared" in m for m in await resolutions(engine, "web"))
        assert len(await escalations(engine, "web")) == 1, await escalations(engine, "web")

        # A human repairs the config: the next try brings the service back and the incident closes.
        broken.unlink()
        await async_wait_until(lambda: engine.monitor.status_of("web").healthy, timeout=120, what="web back after the repair")
        await async_wait_until(
            lambda: _none_open(engine), timeout=60, what="the incidents of web resolved once it is back",
        )
        assert len(await escalations(engine, "web")) == 1


ANSWERS_500_WHEN_BROKEN = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        bad = os.path.exists(MARK)
        self.send_response(500 if bad else 200); self.end_headers(); self.wfile.write(b"broken" if bad else b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", PORT), H).serve_forever()
"""


@pytest.mark.timeout(300)
async def test_a_restart_that_never_helps_is_escalated_once_and_retried_with_growing_back_off(tmp_path):
    port = free_port()
    broken = tmp_path / "broken"
    script = ANSWERS_500_WHEN_BROKEN.replace("MARK", repr(str(broken))).replace("PORT", str(port))
    config = script_fleet(tmp_path, {"web": {"script": script, "port": port, "health": {"http": "/"}, "start_grace": 2.0}}, interval=0.5)
    seen_next_try: list[float] = []
    async with running(config) as engine:
        broken.write_text("swapped")  # every start now answers 500: restarting does not help
        incident = await async_wait_until(
            lambda: _first_open(engine, "http_errors"), timeout=60, what="an http_errors incident on web",
        )

        async def retries():
            if (status := engine.monitor.status_of("web")).next_try_at is not None:
                seen_next_try.append(status.next_try_at)
            rows = await engine.records.store.fetch(
                "SELECT data_json FROM incident_events WHERE incident_id = ? AND kind = 'retry' ORDER BY id", (incident.id,),
            )
            delays = [json.loads(r["data_json"])["delay"] for r in rows]
            return delays if len(delays) >= 2 else None

        delays = await async_wait_until(retries, timeout=200, interval=0.2, what="two back-off retries after the quick tries")
        assert delays[1] > delays[0], delays
        assert seen_next_try, "status never said when the next try comes"
        assert len(await escalations(engine, "web")) == 1, await escalations(engine, "web")
        row = await engine.incident(incident.id)
        assert row.resolved_at is None and row.status in ("escalated", "healing", "open", "awaiting_approval"), row.status
        assert [e.kind for e in row.timeline].count("escalated") == 1

        broken.unlink()  # a human repairs it: the condition really goes away, and only then is it resolved
        await async_wait_until(lambda: _resolved(engine, incident.id), timeout=120, what="the incident resolved after the repair")
        assert len(await escalations(engine, "web")) == 1


async def _first_open(engine: Engine, pattern: str):
    rows = await engine.list_incidents(service="web", pattern=pattern, open_only=True, limit=1)
    return rows[0] if rows else None


async def _resolved(engine: Engine, incident_id: int) -> bool:
    return (await engine.incident(incident_id)).resolved_at is not None


async def _at_least(values, count: int):
    got = await values
    return got if len(got) >= count else None


async def _none_open(engine: Engine) -> bool:
    return not await engine.list_incidents(service="web", open_only=True, limit=20)


# --- the detectors alone: an exit keeps its incident open while the service is down -----------------


def _down_view(exits, state):
    return ServiceView(config=ServiceConfig(name="api", command=("python3", "-m", "api")), state=state, samples=[], exits=exits)


def test_a_crash_stays_found_while_the_service_is_down_however_old_and_ages_out_once_stopped_by_hand():
    params = pattern_params("crashed")
    kill = ExitInfo(1000.0, None, "SIGKILL", False, 180.0, True)
    later = 1000.0 + params["window_s"] + 30
    for state in ("failed", "backoff"):
        assert detect.crashed(_down_view([kill], state), params, later) is not None, state
    # A try that has not passed a check yet is not a recovery either.
    trying = dataclasses.replace(_down_view([kill], "starting"), started_at=1010.0)
    assert detect.crashed(trying, params, later) is not None
    # Stopped by an operator: the old exit no longer keeps anything open.
    assert detect.crashed(_down_view([kill], "stopped"), params, later) is None


def test_a_crash_loop_at_its_back_off_cap_is_still_a_crash_loop():
    params = pattern_params("crash_loop")
    # Short runs a capped back-off apart: never three inside the window, but one loop all the same.
    exits = [ExitInfo(1000.0 + i * 65.0, 1, None, False, 1.0) for i in range(5)]
    now = exits[-1].ts + 30
    assert len([e for e in exits if now - e.ts <= params["window_s"]]) < params["exits"]
    assert detect.crash_loop(_down_view(exits, "backoff"), params, now) is not None
    # Spread further apart than the window, they are separate crashes.
    apart = [ExitInfo(1000.0 + i * 500.0, 1, None, False, 1.0) for i in range(5)]
    assert detect.crash_loop(_down_view(apart, "backoff"), params, apart[-1].ts + 30) is None


def test_over_the_rate_limit_a_slowed_restart_runs_and_says_why_while_other_blocks_still_hold():
    restart = plan(Action("restart", "svc"))
    slowed = judge(restart, ctx(recent_actions=5, slowed_for=42.0))
    assert slowed.decision == "run", slowed
    assert any("rate limit" in r and "after 42s" in r for r in slowed.verdicts[0].reasons)
    # Slowing lifts the rate limit only: a dependency that is down still blocks.
    assert judge(restart, ctx(recent_actions=5, slowed_for=42.0, dependencies_down=("db",))).decision == "block"
    assert judge(restart, ctx(recent_actions=5)).decision == "block"
