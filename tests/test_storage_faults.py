"""Supervision never depends on a write succeeding, and a database deleted or replaced is noticed.

Every fault is caused for real: a tmpfs filled until the kernel says ENOSPC, a tmpfs mounted read-only,
the database file unlinked or renamed over. The supervised processes are the demo service; kills are
real SIGKILLs. Mounting needs root: without it these tests are skipped.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aurora_tui.bench.faultbed import fill, tmpfs
from aurora_tui.core.config import Config
from aurora_tui.core.model import FleetSnapshot, StorageProblem
from aurora_tui.core.patterns import HOST
from aurora_tui.core.store import Store, StorageUnavailable

from .helpers import async_wait_until, free_port, gone, wait_until
from .live import demo_service, fleet_config, restarted_healthy, running
from .test_headless_cli import kill_engine_and_services

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs (full or read-only) needs root")
AURORA = [sys.executable, "-m", "aurora_tui"]
PY = sys.executable


# --- what the faults did -------------------------------------------------------------------------------


def really_running(pid: int | None) -> bool:
    return pid is not None and not gone(pid)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def aurora_async(*args: str) -> tuple[int, str, str]:
    """The real CLI against an engine running in this process's loop (so it must not block the loop)."""
    proc = await asyncio.create_subprocess_exec(*AURORA, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def with_settings(config: Config, **changes) -> Config:
    return dataclasses.replace(config, settings=dataclasses.replace(config.settings, **changes))


def problems(snap: FleetSnapshot, kind: str) -> list[StorageProblem]:
    return [p for p in snap.storage if p.kind == kind]


# --- the console header: a badge only while something cannot be written ------------------------------


def test_the_header_badge_shows_only_while_storage_fails():
    from aurora_tui.console_state import ConsoleState
    from aurora_tui.widgets.fleet_header import segments

    snap = FleetSnapshot(1.0, [], None, None, 0, 15.0, 1, "/x/aurora.db", "<test>")
    state = ConsoleState("own", snapshot=snap)
    assert not any("storage" in s[0] or "database" in s[0] for s in segments(state, 2.0))
    snap.storage = [StorageProblem("log", "/logs/api.log", "[Errno 28] No space left on device", 1.0, dropped_bytes=10)]
    badge = [s for s in segments(state, 2.0) if s[0].startswith("storage:")]
    assert badge == [("storage: /logs/api.log unwritable", "storage!", "bold red", 0)]
    snap.storage = [StorageProblem("database", "/x/aurora.db", "the database file was deleted", 1.0, cause="deleted")]
    assert ("database /x/aurora.db deleted", "DB deleted", "bold red", 0) in segments(state, 2.0)


# --- 1. a full log directory (headless engine, real CLI) ----------------------------------------------


def _fleet_toml(path: Path, log_dir: Path, ports: dict[str, int]) -> None:
    blocks = [f'[aurora]\ninterval = 0.5\nlog_dir = "{log_dir}"\n']
    for name, port in ports.items():
        blocks.append(
            f'[[service]]\nname = "{name}"\n'
            f'command = ["{PY}", "-m", "aurora_tui.demo.service", "--name", "{name}", "--port", "{port}"]\n'
            f'port = {port}\nhealth = {{ http = "/healthz" }}\nstart_grace = 5.0\nstop_timeout = 3.0\nrestart_delay = 0.1\n'
        )
    path.write_text("\n".join(blocks))


def _status(db: Path) -> dict[str, dict] | None:
    result = subprocess.run([*AURORA, "status", "--json", "--db", str(db)], capture_output=True, text=True, timeout=60)
    return {s["name"]: s for s in json.loads(result.stdout)} if result.returncode == 0 else None


def _storage_incidents(db: Path, open_only: bool) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        where = " AND resolved_at IS NULL" if open_only else " AND resolved_at IS NOT NULL"
        return conn.execute(f"SELECT * FROM incidents WHERE pattern = 'storage_unwritable'{where}").fetchall()
    finally:
        conn.close()


@ROOT_ONLY
def test_a_full_log_directory_does_not_stop_supervision(tmp_path):
    logs = tmp_path / "logs"
    db = tmp_path / "aurora.db"
    config = tmp_path / "fleet.toml"
    _fleet_toml(config, logs, {"api": free_port(), "web": free_port()})
    with tmpfs(logs, "1m"), open(tmp_path / "engine.err", "w+") as stderr:
        engine = subprocess.Popen(
            [*AURORA, "run", "--headless", "--config", str(config), "--db", str(db)],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )
        try:
            before = wait_until(lambda: (s := _status(db)) and all(v["healthy"] for v in s.values()) and s,
                                timeout=60, interval=0.2, what="the fleet healthy")
            filler = fill(logs)
            os.kill(before["api"]["pid"], signal.SIGKILL)

            # Restarted, and status tells the truth: the new pid, really running, not a zombie.
            after = wait_until(lambda: (s := _status(db)) and s["api"]["pid"] not in (None, before["api"]["pid"]) and s["api"]["healthy"] and s,
                               timeout=60, interval=0.2, what="api restarted after kill -9 with its log directory full")
            assert really_running(after["api"]["pid"]) and not really_running(before["api"]["pid"])
            assert after["web"]["pid"] == before["web"]["pid"]
            incident = wait_until(lambda: _storage_incidents(db, open_only=True), timeout=30, interval=0.2, what="a storage_unwritable incident")[0]
            evidence = json.loads(incident["evidence_json"])
            assert incident["service"] == HOST and str(logs / "api.log") in evidence["paths"]
            api = next(p for p in evidence["problems"] if p["path"] == str(logs / "api.log"))
            assert api["dropped_bytes"] > 0 and "No space left" in api["error"]
            text = subprocess.run([*AURORA, "status", "--db", str(db)], capture_output=True, text=True, timeout=60).stdout
            assert f"storage: log {logs / 'api.log'}" in text

            # An operator restart answers (the issue: it hung, then "engine closed the connection").
            restart = subprocess.run([*AURORA, "restart", "web", "--db", str(db)], capture_output=True, text=True, timeout=120)
            assert restart.returncode == 0, restart.stderr
            assert "web: running" in restart.stdout

            # Space returns: the log is written again (with a note of what is missing) and the incident resolves.
            filler.unlink()
            wait_until(lambda: "of output could not be written here" in (logs / "api.log").read_text(errors="replace"),
                       timeout=30, interval=0.2, what="api's log written again")
            wait_until(lambda: _storage_incidents(db, open_only=False), timeout=30, interval=0.2, what="the storage incident resolved")
        finally:
            engine.send_signal(signal.SIGTERM)
            try:
                engine.wait(30)
            except subprocess.TimeoutExpired:
                kill_engine_and_services(engine)
        assert engine.returncode == 0
        stderr.seek(0)
        log = stderr.read()
    assert "Traceback" not in log, log[-3000:]
    # One warning per log when it fails and one when it works again, not one per write.
    assert len(log.splitlines()) < 80, log[-3000:]
    assert log.count("aurora_tui.core.logsink: cannot write") <= 2, log


# --- 2. a read-only log directory ---------------------------------------------------------------------


@ROOT_ONLY
async def test_a_read_only_log_directory_does_not_stop_supervision(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    config = fleet_config(tmp_path, demo_service("api"))
    logs = Path(config.settings.log_dir)
    with tmpfs(logs, "1m", read_only=True):
        async with running(config) as engine:
            snap = await engine.snapshot()
            assert {p.path for p in problems(snap, "log")} == {str(logs / "api.log")}
            assert "Read-only file system" in problems(snap, "log")[0].error
            old = snap.service("api").pid
            os.kill(old, signal.SIGKILL)
            await restarted_healthy(engine, "api", old, timeout=60)
            status = engine.monitor.status_of("api")
            assert status is not None and really_running(status.pid) and not really_running(old)
            incident = await async_wait_until(lambda: engine.records.incidents.open.get((HOST, "storage_unwritable")), timeout=30,
                                              what="a storage_unwritable incident")
            row = await engine.incident(incident.id)
            assert str(logs / "api.log") in row.evidence["paths"] and row.evidence["problems"][0]["dropped_bytes"] > 0
            assert engine.fleet.runners["api"].sink.tail(50), "the in-memory tail keeps working"

            # Writable again: the log is opened and written, the incident resolves.
            subprocess.run(["mount", "-o", "remount,rw", str(logs)], check=True)
            await async_wait_until(lambda: (logs / "api.log").exists() and "could not be written here" in (logs / "api.log").read_text(),
                                   timeout=30, what="api's log written once the mount is writable")
            await async_wait_until(lambda: (HOST, "storage_unwritable") not in engine.records.incidents.open, timeout=30,
                                   what="the storage incident resolved")
            assert not problems(await engine.snapshot(), "log")
    assert tracebacks(caplog) == []
    assert len([r for r in caplog.records if r.name == "aurora_tui.core.logsink"]) <= 3


# --- 3. a full database directory ---------------------------------------------------------------------


async def _pending_plan(db: Path, service: str) -> int:
    """A restart of ``service`` waiting for the operator, as a previous engine left it."""
    store = await Store.open(db)
    try:
        now = time.time()
        plan_id = await store.write(
            "INSERT INTO plans(service, pattern, fix, actions_json, confidence, risk, verdicts_json, decision, status, summary, evidence_at, created_at) "
            "VALUES (?, 'manual', 'restart', ?, 5, 'low', '[]', 'wait', 'pending', 'restart waiting for a human', ?, ?)",
            (service, json.dumps([{"kind": "restart", "service": service}]), now, now),
        )
    finally:
        await store.close()
    assert plan_id is not None
    return plan_id


@ROOT_ONLY
async def test_a_full_database_disk_keeps_healing_and_refuses_decisions(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    data = tmp_path / "data"
    with tmpfs(data, "2m"):
        config = with_settings(fleet_config(tmp_path, demo_service("api")), db=data / "aurora.db")
        db = Path(config.settings.db)
        plan_id = await _pending_plan(db, "api")
        async with running(config) as engine:
            store = engine.records.store
            old = (await engine.snapshot()).service("api").pid
            filler = fill(data)
            await async_wait_until(lambda: store.failure is not None, timeout=30, what="commits refused by the full disk")
            assert "full" in store.failure.error

            # A crash is healed at once, while the disk is still full.
            os.kill(old, signal.SIGKILL)
            await restarted_healthy(engine, "api", old, timeout=30)
            assert store.failure is not None, "healed before the space came back"
            new = engine.monitor.status_of("api").pid
            assert really_running(new)

            # Operator decisions that cannot be committed are refused with a clear error, and not carried out.
            direct, by_cli, approval = await asyncio.gather(
                engine.restart("api"), aurora_async("restart", "api", "--db", str(db)), aurora_async("approve", str(plan_id), "--db", str(db)),
                return_exceptions=True,
            )
            assert isinstance(direct, StorageUnavailable), direct
            assert re.fullmatch(r"cannot commit to .*aurora\.db: database or disk is full", str(direct)), direct
            for code, out, err in (by_cli, approval):
                assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot commit to" in err and "disk is full" in err, (code, out, err)
            assert engine.monitor.status_of("api").pid == new, "a refused restart or approval did nothing"
            incident = await async_wait_until(lambda: engine.records.incidents.open.get((HOST, "storage_unwritable")), timeout=30,
                                              what="a storage_unwritable incident, in memory while it cannot be written")
            assert problems(await engine.snapshot(), "database")[0].queued > 0

            # Space returns: what was queued lands, in order, and the database is sound.
            filler.unlink()
            await async_wait_until(lambda: store.failure is None and store.queued == 0, timeout=60, what="the queued writes committed")
            rows = await store.fetch("SELECT kind, data_json FROM events WHERE service = 'api' AND kind IN ('crashed', 'started') ORDER BY id")
            assert ("crashed" in [r["kind"] for r in rows]) and any(json.loads(r["data_json"]).get("pid") == new for r in rows)
            ended = await store.fetch_one("SELECT ended_at, exit_signal FROM owned_processes WHERE pid = ?", (old,))
            assert ended is not None and ended["exit_signal"] == "SIGKILL"
            stored = await engine.incident(incident.id)
            assert stored.pattern == "storage_unwritable" and str(db) in stored.evidence["paths"]
            assert (await engine.plan(plan_id)).status == "pending", "the refused approval never happened"
            await async_wait_until(lambda: (HOST, "storage_unwritable") not in engine.records.incidents.open, timeout=30,
                                   what="the storage incident resolved")
        check = sqlite3.connect(db)
        try:
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            check.close()
    assert tracebacks(caplog) == []


@ROOT_ONLY
async def test_the_write_queue_keeps_order_drops_samples_first_and_fails_acknowledged_writes_clearly(tmp_path):
    from aurora_tui.core import store as store_module

    data = tmp_path / "data"
    insert = "INSERT INTO events(ts, kind, message, data_json) VALUES (?, ?, ?, '{}')"
    with tmpfs(data, "16m"):  # room for the ten thousand rows once the filler is gone
        store = await Store.open(data / "aurora.db")
        try:
            await store.write(insert, (0.0, "before", "written while there was room"))
            filler = fill(data)
            kept = [store.submit(insert, (float(i), "kept", "nobody waits, and it is no sample")) for i in range(5)]
            await async_wait_until(lambda: store.failure is not None, timeout=30, what="commits refused by the full disk")
            assert await store.write(insert, (9.0, "ordered", "not acknowledged")) is None  # queued; nobody held up
            samples = [store.submit(insert, (10.0 + i, "sample", "a sample"), droppable=True) for i in range(store_module.MAX_QUEUED + 100)]
            assert store.queued <= store_module.MAX_QUEUED and store.dropped >= 100
            dropped = [f for f in samples if f.done()]
            assert len(dropped) == store.dropped and samples[0] in dropped and not samples[-1].done()  # the oldest went first
            assert isinstance(dropped[0].exception(), StorageUnavailable) and not any(f.done() for f in kept)
            with pytest.raises(StorageUnavailable, match=r"cannot commit to .*aurora\.db: database or disk is full"):
                await store.write(insert, (20_000.0, "decision", "an operator's"), ack=True)

            filler.unlink()
            await async_wait_until(lambda: store.failure is None and store.queued == 0, timeout=60, what="the queue flushed")
            assert all(f.done() and f.exception() is None for f in kept)
            counts = {r["kind"]: r["n"] for r in await store.fetch("SELECT kind, count(*) AS n FROM events GROUP BY kind")}
            assert counts == {"before": 1, "kept": 5, "ordered": 1, "sample": store_module.MAX_QUEUED + 100 - store.dropped}
            order = [r["kind"] for r in await store.fetch("SELECT kind FROM events ORDER BY id")]
            assert order[:7] == ["before", *["kept"] * 5, "ordered"]  # the order they were written in
        finally:
            await store.close()
        check = sqlite3.connect(data / "aurora.db")
        try:
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            check.close()


# --- 4. the database deleted or replaced under the engine ---------------------------------------------


def _delete(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink()


def _replace(db: Path) -> None:
    other = db.with_name("other.db")
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t(x)")
    conn.close()
    os.rename(other, db)


@ROOT_ONLY
@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_database_deleted_or_replaced_is_noticed_and_decisions_are_refused(tmp_path, caplog, how):
    caplog.set_level(logging.WARNING)
    config = fleet_config(tmp_path, demo_service("api"))
    db = Path(config.settings.db)
    async with running(config) as engine:
        old = (await engine.snapshot()).service("api").pid
        (_delete if how == "deleted" else _replace)(db)
        await async_wait_until(lambda: engine.records.store.moved == how, timeout=30, what=f"the database noticed {how}")
        loud = [r for r in caplog.records if r.levelno >= logging.ERROR and f"was {how} while the engine ran" in r.getMessage()]
        assert len(loud) == 1, loud
        await async_wait_until(lambda: engine.records.incidents.open.get((HOST, "database_replaced")), timeout=30,
                               what="a database_replaced incident")
        assert [p.cause for p in problems(await engine.snapshot(), "database")] == [how]

        message = rf"the database .*aurora\.db was {how} while the engine ran; decisions are refused until the engine is restarted"
        for decision in (engine.restart("api"), engine.stop_service("api"), engine.approve(1), engine.reject(1, "no"), engine.grade(1, 5)):
            with pytest.raises(StorageUnavailable, match=message):
                await decision
        code, out, err = await aurora_async("restart", "api", "--db", str(db))
        assert code == 1 and len(err.strip().splitlines()) == 1 and f"was {how} while the engine ran" in err, (code, out, err)
        assert engine.monitor.status_of("api").pid == old, "a refused restart did nothing"

        # Supervision goes on: a crash is still healed.
        os.kill(old, signal.SIGKILL)
        await restarted_healthy(engine, "api", old, timeout=60)
        assert really_running(engine.monitor.status_of("api").pid)
    assert tracebacks(caplog) == []
