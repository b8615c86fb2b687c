"""Every issue pattern, caused for real in a real process, diagnosed with evidence within a deadline.

Host patterns (disk, memory, CPU) use thresholds set relative to this machine's current state instead of
filling its disk or memory; CPU overload is caused for real by spinning demo services.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from aurora_tui.core.api import IncidentRow
from aurora_tui.core.config import Limits
from aurora_tui.core.patterns import HOST

from .fleet import squat, stop_process
from .helpers import async_wait_until, free_port, gone
from .live import demo_service, fleet_config, incident_for, patterns_seen, running, scans_pass

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def demo_state(tmp_path, monkeypatch):
    # failstart counters live here, not in the shared temp dir
    monkeypatch.setenv("AURORA_DEMO_STATE_DIR", str(tmp_path / "demo-state"))


def sensible(incident: IncidentRow, low: int = 4, high: int = 10) -> None:
    assert low <= incident.confidence <= high, incident
    assert incident.summary and incident.evidence, incident


async def test_crashed(tmp_path):
    # After the first scan none comes for an hour: a crash incident can only come from the exit itself.
    async with running(fleet_config(tmp_path, demo_service("web"), interval=3600)) as engine:
        scans = (await engine.snapshot()).scans
        await engine.chaos("kill", "web")
        incident = await incident_for(engine, "web", "crashed")
        sensible(incident, 7)
        assert incident.evidence["signal"] == "SIGKILL"
        # An exit is an event, not something a scan finds (how soon: the detect benchmark measures it).
        assert (await engine.snapshot()).scans == scans

        async def resolved():
            await engine.scan_now()  # what a scan sees closes the incident once web is back
            return (await engine.incident(incident.id)).status == "resolved"

        await async_wait_until(resolved, timeout=60, interval=0.3, what="the crash incident to close once web is back")


async def test_crash_loop(tmp_path):
    # It has no health check, so it counts as started once it outlives its start grace (issue 10,
    # item 7); dying at once instead would be a start-up failure (test_portless.py).
    script = tmp_path / "dies.py"
    script.write_text("import time, sys\nprint('starting', flush=True)\ntime.sleep(1.5)\nsys.exit(3)\n")
    from aurora_tui.core.config import ServiceConfig

    svc = ServiceConfig(name="dies", command=(sys.executable, str(script)), restart_delay=0.1, start_grace=0.3)
    async with running(fleet_config(tmp_path, svc), healthy=False) as engine:
        incident = await incident_for(engine, "dies", "crash_loop", timeout=30)
        sensible(incident, 7)
        assert incident.evidence["exits_in_window"] >= 3
        assert set(incident.evidence["exit_codes"]) == {3}
        # The single crashes that came first are folded into the loop.
        await scans_pass(engine, 2)
        assert [r.status for r in await engine.list_incidents(service="dies", pattern="crashed", open_only=True)] == []


async def test_startup_failure(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"))) as engine:
        await engine.chaos("failstart", "api", {"count": "5"})
        await engine.chaos("crash", "api")
        incident = await incident_for(engine, "api", "startup_failure", timeout=30)
        sensible(incident)
        assert incident.evidence["exit_code"] == 78
        assert any("ConfigError" in line for line in incident.evidence["start_errors"])
        assert "ConfigError" in incident.summary


async def test_sigstop_gives_exactly_one_diagnosis_hung(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("ui"), demo_service("other"))) as engine:
        pid = engine.fleet.runners["ui"].pid
        await engine.chaos("stop", "ui")
        incident = await incident_for(engine, "ui", "hung")
        sensible(incident)
        assert incident.evidence["process_status"] == "stopped"
        # Long enough for timeouts, errors and slowness to show, and for the healer's terminate and
        # restart to run: none of it may add a diagnosis of its own.
        await scans_pass(engine, 8)
        assert await patterns_seen(engine, "ui") == {"hung"}
        assert await patterns_seen(engine, "other") == set()
        if not gone(pid):
            os.kill(pid, signal.SIGCONT)


async def test_hung_event_loop(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api", health_timeout=0.5))) as engine:
        await engine.chaos("hang", "api")
        incident = await incident_for(engine, "api", "hung")
        sensible(incident)
        assert incident.evidence["health_timeouts_in_a_row"] >= 2
        assert incident.evidence["process_status"] != "stopped"
        assert await patterns_seen(engine, "api") == {"hung"}


async def test_zombie_children(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"))) as engine:
        await engine.chaos("zombies", "api", {"count": "3"})
        incident = await incident_for(engine, "api", "zombie_children")
        sensible(incident)
        assert incident.evidence["zombie children"] == 3


async def test_orphaned_children(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"))) as engine:
        await engine.chaos("orphans", "api", {"count": "2", "mb": "8"})
        incident = await incident_for(engine, "api", "orphaned_children")
        sensible(incident)
        orphans = incident.evidence["orphan_pids"]
        assert len(orphans) == 2
        for pid in orphans:
            assert psutil.Process(pid).cmdline()[-1] == "aurora-demo-orphan"
            assert os.getpgid(pid) == engine.fleet.runners["api"].pid  # still in the service's own group
    # Stopping the service stops its whole group, orphans included.
    assert all(gone(pid) for pid in orphans)


async def test_port_conflict_foreign(tmp_path):
    port = free_port()
    squatter = squat(port)
    try:
        async with running(fleet_config(tmp_path, demo_service("web", port)), healthy=False) as engine:
            incident = await incident_for(engine, "web", "port_conflict_foreign", timeout=30)
            sensible(incident)
            assert incident.evidence["holder_pid"] == squatter.pid
            assert "port-squatter" in incident.evidence["holder_cmdline"]
            await scans_pass(engine, 3)
            # The failed starts are consequences of the conflict, not diagnoses of their own.
            assert await patterns_seen(engine, "web") == {"port_conflict_foreign"}
            assert squatter.poll() is None  # never touched
    finally:
        stop_process(squatter)


async def test_port_conflict_stale(tmp_path):
    svc = demo_service("web")
    copy = subprocess.Popen(list(svc.command), stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert "listening" in copy.stdout.readline()
        async with running(fleet_config(tmp_path, svc), healthy=False) as engine:
            incident = await incident_for(engine, "web", "port_conflict_stale", timeout=30)
            sensible(incident)
            assert incident.evidence["holder_pid"] == copy.pid
            assert "port_conflict_foreign" not in await patterns_seen(engine, "web")
            assert copy.poll() is None
    finally:
        stop_process(copy)


async def test_port_not_listening(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("web"))) as engine:
        await engine.chaos("unlisten", "web")
        incident = await incident_for(engine, "web", "port_not_listening")
        sensible(incident)
        assert incident.evidence["pid"] == engine.fleet.runners["web"].pid


async def test_high_cpu(tmp_path):
    svc = demo_service("hot", limits=Limits(cpu_percent=50), patterns={"high_cpu": {"debounce": 2}})
    async with running(fleet_config(tmp_path, svc, interval=0.5)) as engine:
        await engine.chaos("cpu", "hot")
        incident = await incident_for(engine, "hot", "high_cpu")
        sensible(incident)
        assert min(incident.evidence["cpu_percent"]) >= 50


async def test_memory_leak_is_reported_before_the_limit(tmp_path):
    svc = demo_service("leaky", limits=Limits(memory_mb=1000))
    async with running(fleet_config(tmp_path, svc, interval=0.5)) as engine:
        await engine.chaos("leak", "leaky", {"rate_mb": "24", "max_mb": "600"})
        incident = await incident_for(engine, "leaky", "memory_leak")
        sensible(incident, 3)
        evidence = incident.evidence
        assert evidence["eta_s"] > 0 and evidence["rss_mb"][-1] < 1000
        assert evidence["mb_per_min"] > 300 and evidence["r2"] >= 0.8
        assert "will reach its 1000 MB limit" in incident.summary


async def test_memory_limit(tmp_path):
    svc = demo_service("fat", limits=Limits(memory_mb=80))
    async with running(fleet_config(tmp_path, svc, interval=0.5)) as engine:
        await engine.chaos("leak", "fat", {"rate_mb": "64", "max_mb": "160"})
        incident = await incident_for(engine, "fat", "memory_limit")
        sensible(incident)
        assert min(incident.evidence["rss_mb"]) >= 80


async def test_fd_exhaustion(tmp_path):
    # The default threshold (80% of RLIMIT_NOFILE): the fault lowers the demo's own soft limit, as a
    # service sized for its load would have, and fills 90% of it.
    svc = demo_service("files")
    async with running(fleet_config(tmp_path, svc)) as engine:
        await engine.chaos("fds", "files", {"rate": "2000"})
        incident = await incident_for(engine, "files", "fd_exhaustion")
        sensible(incident)
        assert incident.evidence["limit_percent"] == 80
        limit = psutil.Process(engine.fleet.runners["files"].pid).rlimit(psutil.RLIMIT_NOFILE)[0]
        assert incident.evidence["fd_limit"] == limit <= 1024
        assert incident.evidence["fds"] >= 0.8 * limit


async def test_thread_explosion(tmp_path):
    svc = demo_service("threads", limits=Limits(threads=100))
    async with running(fleet_config(tmp_path, svc)) as engine:
        await engine.chaos("threads", "threads", {"rate": "500", "max": "300"})
        incident = await incident_for(engine, "threads", "thread_explosion")
        sensible(incident)
        assert incident.evidence["threads"][-1] >= 100


async def test_connection_exhaustion(tmp_path):
    svc = demo_service("conns", limits=Limits(connections=100))
    async with running(fleet_config(tmp_path, svc)) as engine:
        await engine.chaos("conns", "conns", {"count": "150", "rate": "500"})
        incident = await incident_for(engine, "conns", "connection_exhaustion")
        sensible(incident)
        assert incident.evidence["open_connections"][-1] >= 100


@pytest.mark.parametrize("fault, pattern, code", [("errors", "http_errors", 500), ("ratelimit", "rate_limited", 429)])
async def test_http_status_patterns(tmp_path, fault, pattern, code):
    async with running(fleet_config(tmp_path, demo_service("api"))) as engine:
        await engine.chaos(fault, "api")
        incident = await incident_for(engine, "api", pattern)
        sensible(incident)
        assert incident.evidence["status_codes"][-1] == code
        assert await patterns_seen(engine, "api") == {pattern}


async def test_slow_responses(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("slow", health_timeout=3.0))) as engine:
        await engine.chaos("slow", "slow", {"delay": "1.2"})
        incident = await incident_for(engine, "slow", "slow_responses")
        sensible(incident)
        assert min(incident.evidence["latency_ms"]) >= 1000


async def test_health_content_mismatch(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"))) as engine:
        await engine.chaos("badhealth", "api")
        incident = await incident_for(engine, "api", "health_content_mismatch")
        sensible(incident)
        assert "degraded" in incident.evidence["body_excerpt"]


async def test_http_unexpected_status(tmp_path):
    # A stock server (python -m http.server) loses the file its health check asks for: 404.
    from aurora_tui.core.config import HealthCheck, ServiceConfig

    root, port = tmp_path / "site", free_port()
    root.mkdir()
    (root / "health.txt").write_text("ok\n")
    svc = ServiceConfig(
        name="files", command=(sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)),
        port=port, health=HealthCheck("http", "/health.txt", expect_body="ok", timeout=1.0), start_grace=5.0, stop_timeout=3.0,
    )
    async with running(fleet_config(tmp_path, svc)) as engine:
        pid = engine.fleet.runners["files"].pid
        (root / "health.txt").unlink()
        incident = await incident_for(engine, "files", "http_unexpected_status")
        sensible(incident)
        assert incident.evidence["status_codes"][-1] == 404 and incident.evidence["expected"] == "200"
        await scans_pass(engine, 3)
        # The body is wrong too, but that is the same cause; and a 404 is escalated, not restarted.
        assert await patterns_seen(engine, "files") == {"http_unexpected_status"}
        assert engine.fleet.runners["files"].pid == pid


async def test_disk_full_with_a_threshold_below_current_use(tmp_path):
    used = psutil.disk_usage(str(tmp_path)).percent
    config = fleet_config(tmp_path, demo_service("api"), host_patterns={"disk_full": {"percent": max(0.1, used - 1), "debounce": 1}})
    async with running(config) as engine:
        incident = await incident_for(engine, HOST, "disk_full")
        sensible(incident)
        assert incident.evidence["disk_percent"] >= used - 1


async def test_host_memory_pressure_with_a_threshold_below_current_use(tmp_path):
    used = psutil.virtual_memory().percent
    limits = {"host_memory_pressure": {"percent": max(0.1, used - 2), "debounce": 2, "min_duration_s": 0}}
    async with running(fleet_config(tmp_path, demo_service("api"), host_patterns=limits)) as engine:
        incident = await incident_for(engine, HOST, "host_memory_pressure")
        sensible(incident)
        assert incident.evidence["mem_available"] > 0


async def test_host_cpu_overload_from_real_load(tmp_path):
    cores = psutil.cpu_count() or 2
    spinners = [demo_service(f"spin{i}") for i in range(cores)]
    limits = {"host_cpu_overload": {"percent": 70, "load_per_cpu": 100, "debounce": 2, "min_duration_s": 0}}
    async with running(fleet_config(tmp_path, *spinners, interval=0.5, host_patterns=limits)) as engine:
        for svc in spinners:
            await engine.chaos("cpu", svc.name)
        incident = await incident_for(engine, HOST, "host_cpu_overload", timeout=30)
        sensible(incident)
        assert min(incident.evidence["cpu_percent"]) >= 70


async def test_dependency_down_links_to_the_dependency_incident(tmp_path):
    base = demo_service("base")
    top = demo_service("top", upstream=base.port, depends_on=("base",))
    async with running(fleet_config(tmp_path, base, top)) as engine:
        await engine.chaos("stop", "base")
        cause = await incident_for(engine, "base", "hung")
        effect = await incident_for(engine, "top", "dependency_down")
        sensible(effect)
        assert effect.caused_by == cause.id
        assert "base" in effect.evidence["dependencies_down"]
        await scans_pass(engine, 4)
        # top's own 503s are the dependency's doing: folded into dependency_down, not diagnosed alone
        assert await patterns_seen(engine, "top") == {"dependency_down"}
        os.kill(engine.fleet.runners["base"].pid, signal.SIGCONT)


async def test_flapping(tmp_path):
    svc = demo_service("flappy")
    async with running(fleet_config(tmp_path, svc, interval=0.3)) as engine:
        await engine.chaos("flap", "flappy", {"period": "0.7"})
        incident = await incident_for(engine, "flappy", "flapping", timeout=30)
        sensible(incident)
        assert incident.evidence["transitions"] >= 4
        # The first failures may look like plain 5xx; once flapping is clear, no such incident stays open
        # beside it (it cleared, or it was folded into the flapping incident).
        await scans_pass(engine, 3)
        assert await engine.list_incidents(service="flappy", pattern="http_errors", open_only=True) == []


async def test_log_error_burst(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("noisy"))) as engine:
        await engine.chaos("logerrors", "noisy", {"rate": "60", "duration": "5"})
        incident = await incident_for(engine, "noisy", "log_error_burst")
        sensible(incident)
        assert any("ERROR request failed" in line for line in incident.evidence["recent_errors"])


async def test_host_incident_events_reach_the_event_log(tmp_path, capfd):
    used = psutil.disk_usage(str(tmp_path)).percent
    config = fleet_config(tmp_path, demo_service("api"), host_patterns={"disk_full": {"percent": max(0.1, used - 1), "debounce": 1}})
    async with running(config) as engine:
        incident = await incident_for(engine, HOST, "disk_full")

        async def logged():
            events = await engine.recent_events(limit=50)
            return [e for e in events if e.kind == "incident_opened" and e.data.get("incident") == incident.id]

        events = await async_wait_until(logged, what="the host incident in the event log")
        assert events[0].service is None and events[0].data["service"] == HOST
    assert "store write failed" not in capfd.readouterr().err
