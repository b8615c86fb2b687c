"""Incident bookkeeping with real faults: repeats, re-opening, silences, acknowledgement, restarts, CLI."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from .fleet import squat, stop_process
from .helpers import async_wait_until
from .live import demo_service, fleet_config, incident_for, running, scans_pass

pytestmark = pytest.mark.timeout(90)


async def test_repeats_count_and_a_new_occurrence_opens_a_new_incident(tmp_path):
    # Healing off: the faults must stay until the test clears them.
    async with running(fleet_config(tmp_path, demo_service("api"), auto_heal=False)) as engine:
        await engine.chaos("zombies", "api", {"count": "2"})
        first = await incident_for(engine, "api", "zombie_children")
        await scans_pass(engine, 3)
        again = (await engine.list_incidents(service="api", pattern="zombie_children"))[0]
        assert again.id == first.id and again.count > first.count
        assert len(await engine.list_incidents(service="api", pattern="zombie_children")) == 1

        await engine.chaos("clear", "api")  # reaps them

        async def resolved():
            return (await engine.incident(first.id)).status == "resolved"

        await async_wait_until(resolved, timeout=60, what="the zombie incident to resolve")
        done = await engine.incident(first.id)
        assert done.resolved_at is not None and done.recover_seconds > 0
        assert [e.kind for e in done.timeline][:2] == ["detected", "diagnosed"]
        assert done.timeline[-1].kind == "resolved"

        await engine.chaos("zombies", "api", {"count": "2"})

        async def second():
            rows = await engine.list_incidents(service="api", pattern="zombie_children")
            return rows if len(rows) == 2 else None

        rows = await async_wait_until(second, timeout=60, what="a second zombie incident")
        assert rows[0].resolved_at is None and rows[1].status == "resolved"


async def test_a_silence_suppresses_new_incidents_and_says_so(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"), auto_heal=False)) as engine:
        await engine.silence("api", 60, "deploy in progress")
        await engine.chaos("badhealth", "api")

        async def suppressed():
            events = await engine.recent_events(service="api", limit=50)
            return [e for e in events if e.kind == "incident_suppressed"]

        events = await async_wait_until(suppressed, what="the silence to report what it hid")
        assert "silenced until" in events[0].message and "deploy in progress" in events[0].message
        await scans_pass(engine, 3)
        assert await engine.list_incidents(service="api") == []
        assert len(await suppressed()) == 1  # said once per pattern, not on every scan
        count = await engine.records.store.fetch_one("SELECT suppressed FROM silences")
        assert count["suppressed"] >= 3
        assert (await engine.silences())[0].reason == "deploy in progress"

        await engine.unsilence("api")
        incident = await incident_for(engine, "api", "health_content_mismatch")
        assert incident.resolved_at is None
        with pytest.raises(ValueError, match="at most 7 days"):
            await engine.silence("api", 30 * 86400)
        with pytest.raises(KeyError, match="unknown service"):
            await engine.silence("nope", 60)


async def test_acknowledge(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"), auto_heal=False)) as engine:
        await engine.chaos("errors", "api")
        incident = await incident_for(engine, "api", "http_errors")
        result = await engine.acknowledge(incident.id, by="alice")
        assert result.status == "acknowledged" and result.acknowledged_by == "alice"
        assert result.timeline[-1].message == "acknowledged by alice"
        with pytest.raises(KeyError, match="is not open"):
            await engine.acknowledge(99999)


async def test_open_incidents_survive_an_engine_restart_without_duplicates(tmp_path):
    svc = demo_service("web")
    squatter = squat(svc.port)  # a fault that outlives the engine
    try:
        config = fleet_config(tmp_path, svc)
        async with running(config, healthy=False) as engine:
            first = await incident_for(engine, "web", "port_conflict_foreign", timeout=30)
            count = (await engine.incident(first.id)).count
        async with running(config, healthy=False) as engine:
            await scans_pass(engine, 3)
            rows = await engine.list_incidents(service="web", pattern="port_conflict_foreign")
            assert [r.id for r in rows] == [first.id]
            assert rows[0].resolved_at is None and rows[0].count > count
    finally:
        stop_process(squatter)


async def test_cli_lists_incidents_from_the_database(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"), auto_heal=False)) as engine:
        await engine.chaos("badhealth", "api")
        incident = await incident_for(engine, "api", "health_content_mismatch")
        db = str(engine.db_path)

        def cli(*args):
            # Called from a thread by the test: the engine answering the CLI runs on this test's loop.
            return subprocess.run([sys.executable, "-m", "aurora_tui", *args, "--db", db], capture_output=True, text=True, timeout=60)

        result = await asyncio.to_thread(cli, "incidents", "--json", "--open", "--service", "api", "--since", "1h")
        rows = json.loads(result.stdout)
        assert rows and set(rows[0]) == {"id", "service", "pattern", "status", "confidence", "opened_at", "resolved_at", "count", "summary", "evidence"}
        assert rows[0]["id"] == incident.id and rows[0]["evidence"]["expected"] == '"status": "ok"'
        assert json.loads((await asyncio.to_thread(cli, "incidents", "--json", "--service", "other")).stdout) == []
        table = await asyncio.to_thread(cli, "incidents")
        assert "health_content_mismatch" in table.stdout
        detail = await asyncio.to_thread(cli, "incident", str(incident.id))
        assert "timeline:" in detail.stdout and "diagnosed" in detail.stdout
        assert (await asyncio.to_thread(cli, "incident", "424242")).returncode == 1
        ack = await asyncio.to_thread(cli, "ack", str(incident.id))
        assert ack.returncode == 0 and "acknowledged" in ack.stdout
        silence = await asyncio.to_thread(cli, "silence", "api", "--for", "10m", "--reason", "testing")
        assert silence.returncode == 0 and "silenced for 10m00s" in silence.stdout
        bad = await asyncio.to_thread(cli, "silence", "api", "--for", "soon")
        assert bad.returncode == 2 and "not a duration" in bad.stderr
    since_nothing = subprocess.run([sys.executable, "-m", "aurora_tui", "incidents", "--db", str(tmp_path / "missing.db")], capture_output=True, text=True)
    assert since_nothing.returncode == 1
