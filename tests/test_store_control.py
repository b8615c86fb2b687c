"""The SQLite store and the control socket, on real files and real sockets."""
from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from aurora_tui.core.control import ControlClient, ControlError, NoEngine, socket_path
from aurora_tui.core.engine import Engine
from aurora_tui.core.store import SCHEMA_VERSION, Store

from .fleet import script_fleet
from .helpers import async_wait_until


async def test_migrations_and_pragmas(tmp_path):
    store = await Store.open(tmp_path / "a.db")
    try:
        row = await store.fetch_one("PRAGMA user_version")
        assert row[0] == SCHEMA_VERSION >= 1
        assert (await store.fetch_one("PRAGMA journal_mode"))[0] == "wal"
        tables = {r[0] for r in await store.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"services", "samples", "host_samples", "events", "engine_runs", "owned_processes"} <= tables
    finally:
        await store.close()
    # Reopening an up-to-date database changes nothing.
    store = await Store.open(tmp_path / "a.db")
    await store.close()


async def test_a_newer_schema_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "a.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this Aurora understands"):
        await Store.open(tmp_path / "a.db")


async def test_batched_writes_are_acknowledged_after_commit_and_fail_alone(tmp_path):
    store = await Store.open(tmp_path / "a.db")
    try:
        await store.write("INSERT INTO engine_runs(started_at, pid, config_source) VALUES (1, 1, 'x')")
        futures = [store.submit("INSERT INTO events(ts, kind, message) VALUES (?, 'k', 'm')", (i,)) for i in range(200)]
        bad = store.submit("INSERT INTO events(ts, kind, message, service) VALUES (1, 'k', 'm', 'no-such-service')")
        after = store.submit("INSERT INTO events(ts, kind, message) VALUES (999, 'k', 'm')")
        await asyncio.gather(*futures, after)
        with pytest.raises(sqlite3.IntegrityError):
            await bad  # a foreign key violation fails its own writer only
        # Acknowledged means durable: another connection sees every row.
        other = sqlite3.connect(tmp_path / "a.db")
        assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 201
        other.close()
        assert store.commits < 200, "writes were not batched"
    finally:
        await store.close()


async def test_update_reports_the_rows_it_changed(tmp_path):
    store = await Store.open(tmp_path / "a.db")
    try:
        await store.write("INSERT INTO engine_runs(started_at, pid, config_source) VALUES (1, 1, 'x')")
        assert await store.update("UPDATE engine_runs SET clean_exit = 1 WHERE pid = 1") == 1
        assert await store.update("UPDATE engine_runs SET clean_exit = 1 WHERE pid = 2") == 0
    finally:
        await store.close()


async def test_close_commits_what_is_queued(tmp_path):
    store = await Store.open(tmp_path / "a.db")
    for i in range(50):
        store.submit("INSERT INTO host_samples(ts, cpu_percent, mem_percent, mem_available, load1, disk_percent, disk_free) VALUES (?, 0, 0, 0, 0, 0, 0)", (i,))
    await store.close()
    assert sqlite3.connect(tmp_path / "a.db").execute("SELECT count(*) FROM host_samples").fetchone()[0] == 50


async def test_control_socket_protocol_errors_are_answers(tmp_path):
    config = script_fleet(tmp_path, {"idle": {"script": "import time; time.sleep(600)"}})
    async with Engine(config) as engine:
        path = socket_path(engine.db_path)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        reader, writer = await asyncio.open_unix_connection(str(path))
        for line, expected in (
            (b"not json\n", "bad request"),
            (b"[1, 2]\n", "a request is a JSON object"),
            (b'{"id": 1, "method": "rm -rf /"}\n', "unknown method 'rm -rf /'"),
            (b'{"id": 2, "method": "status", "params": {"x": 1}}\n', "bad params for status"),
            (b'{"id": 3, "method": "restart", "params": {"service": "ghost"}}\n', "unknown service 'ghost'"),
        ):
            writer.write(line)
            await writer.drain()
            reply = json.loads(await reader.readline())
            assert reply["ok"] is False and expected in reply["error"]
        writer.write(b'{"id": 4, "method": "ping"}\n')
        await writer.drain()
        assert json.loads(await reader.readline())["ok"] is True
        writer.close()

        client = ControlClient(engine.db_path)
        with pytest.raises(ControlError, match="monitor-only|unknown service"):
            await client.call("stop", service="ghost")
        snapshot = await client.snapshot()
        assert [s.name for s in snapshot.services] == ["idle"]
        await client.close()
    with pytest.raises(NoEngine):
        await ControlClient(config.settings.db).call("status")


async def test_events_stream_over_the_socket(tmp_path):
    config = script_fleet(tmp_path, {"idle": {"script": "import time; time.sleep(600)"}})
    async with Engine(config) as engine:
        client = ControlClient(engine.db_path)
        stream = client.events()
        first = asyncio.ensure_future(stream.__anext__())
        # The subscription must reach the engine before it has anything to say.
        await async_wait_until(lambda: engine.bus.subscribers, timeout=30, what="the socket's subscription")
        await engine.monitor.scan()
        event = await asyncio.wait_for(first, 30)
        assert event.kind == "scan"
        await stream.aclose()


async def test_a_database_path_longer_than_a_socket_path_still_works(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    config = script_fleet(tmp_path, {"idle": {"script": "import time; time.sleep(600)"}})
    import dataclasses

    config = dataclasses.replace(config, settings=dataclasses.replace(config.settings, db=deep / "aurora.db"))
    assert len(str(socket_path(deep / "aurora.db"))) > 108
    async with Engine(config):
        client = ControlClient(deep / "aurora.db")
        assert (await client.call("ping"))["db"] == str(deep / "aurora.db")
        await client.close()
