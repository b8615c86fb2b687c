"""A bounded store: every sample folded into per-minute roll-ups, raw rows only when a sample says
something new, old raw rows rolled up as they are pruned, roll-ups kept 30 days, and the history read
back (through the engine's API and the socket, and by ``aurora incident``). Real SQLite throughout;
the engine tests run a real fleet."""
from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aurora_tui.core import rollup
from aurora_tui.core.api import MinuteRow
from aurora_tui.core.control import ControlError
from aurora_tui.core.engine import Engine
from aurora_tui.core.model import HealthResult, HostSample, PortFacts, ProcessFacts, ServiceSample
from aurora_tui.core.records import SAMPLE_INSERT, Records, _sample_row
from aurora_tui.core.remote import RemoteEngine
from aurora_tui.core.store import migrations
from aurora_tui.commands.incidents import incident_minutes

from .fleet import http_service, script_fleet
from .helpers import async_wait_until, free_port
from .live import running

MiB = 1 << 20
DAY = 86400.0
# A minute's start, well in the past, so that nothing here is confused with what an engine takes now.
T0 = math.floor((time.time() - 3 * DAY) / 60) * 60


def sample(ts: float, service: str = "web", *, cpu: float = 1.0, rss: int = 50 * MiB, latency: float | None = 3.0,
           ok: bool | None = True, pid: int | None = 4242, state: str = "running", fds: int = 10, threads: int = 2,
           connections: int = 0, children: int = 0, zombies: int = 0, status: str = "sleeping", holder: int | None = None,
           error: str | None = None) -> ServiceSample:
    process = ProcessFacts(pid, status, cpu, rss, fds, threads, connections, children, zombies, create_time=1.0) if pid else None
    port = PortFacts(8080, listening=pid is not None, holder_pid=holder if holder is not None else pid)
    health = HealthResult("http", ok, latency, 200 if ok else 503, error=error) if ok is not None else None
    return ServiceSample(service, ts, state, process, port, health)


def host(ts: float) -> HostSample:
    return HostSample(ts, 5.0, 40.0, 1 << 30, 0.5, 0.4, 0.3, 50.0, 1 << 34, 2)


async def opened(path: Path, *services: str) -> Records:
    records = Records(path)
    await records.open()
    await records.store.write_many(
        "INSERT INTO services(name, config_json, first_seen, last_seen) VALUES (?, '{}', 0, 0) ON CONFLICT DO NOTHING",
        [(name,) for name in services],
    )
    return records


async def committed(records: Records) -> None:
    await records.store.write("SELECT 1")  # the writer is FIFO: all that was queued before is in


async def raw_count(records: Records, service: str | None = None) -> int:
    where, params = ("WHERE service = ?", (service,)) if service else ("", ())
    row = await records.store.fetch_one(f"SELECT count(*) AS n FROM samples {where}", params)
    return row["n"]


async def stored_minutes(records: Records) -> dict[tuple[str, float], MinuteRow]:
    sql, params = rollup.history_query(0, 1 << 40, None)
    return {(r["service"], r["minute"] * 60.0): rollup.minute_row(r, 60.0) for r in await records.store.fetch(sql, params)}


# --- pure: the roll-up of real samples ---------------------------------------------------------------


def test_a_minute_rollup_holds_the_figures_of_the_samples_fed():
    acc = rollup.MinuteRollups(period=60)
    first = [
        sample(T0 + 0, cpu=2.0, rss=40 * MiB, latency=2.0, fds=9, threads=3, connections=1),
        sample(T0 + 15, cpu=6.0, rss=44 * MiB, latency=10.0, fds=12, threads=2),
        sample(T0 + 30, cpu=4.0, rss=42 * MiB, latency=None, ok=False, error="HTTP 503"),
        sample(T0 + 45, pid=None, ok=None, state="backoff"),  # down: counted, but has no figures
    ]
    closed = [b for s in first for b in acc.add([s], s.ts)]
    assert closed == []  # nothing closes within the minute
    closed = acc.add([sample(T0 + 61, cpu=1.0, pid=5151)], T0 + 61)
    assert [b.service for b in closed] == ["web"]
    row = closed[0].row(60)
    assert (row.start, row.seconds, row.samples, row.healthy) == (T0, 60, 4, 2)
    assert (row.cpu_min, row.cpu_avg, row.cpu_max) == (2.0, 4.0, 6.0)
    assert (row.rss_min, row.rss_avg, row.rss_max) == (40 * MiB, 42 * MiB, 44 * MiB)
    assert (row.latency_min, row.latency_avg, row.latency_max) == (2.0, 6.0, 10.0)
    assert (row.fds_max, row.threads_max, row.connections_max) == (12, 3, 1)
    assert (row.state, row.pid, row.still_open) == ("backoff", None, False)  # the minute's last sample
    # The next minute is open, and closes at the first scan after its end even without a sample of it.
    assert acc.open["web"].minute == rollup.bucket_of(T0 + 61, 60)
    assert [b.row(60).pid for b in acc.add([], T0 + 125)] == [5151] and acc.open == {}


def test_minutes_are_kept_per_service_and_close_together():
    acc = rollup.MinuteRollups(period=60)
    acc.add([sample(T0 + 1, "a", cpu=1.0), sample(T0 + 1, "b", cpu=9.0)], T0 + 1)
    acc.add([sample(T0 + 20, "a", cpu=3.0), sample(T0 + 20, "b", cpu=7.0)], T0 + 20)
    closed = {b.service: b.row(60) for b in acc.add([sample(T0 + 60, "a"), sample(T0 + 60, "b")], T0 + 60)}
    assert closed["a"].cpu_avg == 2.0 and closed["b"].cpu_avg == 8.0
    assert {b.service for b in acc.close_all()} == {"a", "b"} and acc.open == {}


def test_two_parts_of_one_minute_merge_weighted_by_their_samples():
    a = rollup.Bucket("web", 1)
    for cpu in (2.0, 4.0):
        a.add(sample(60, cpu=cpu))
    b = rollup.Bucket("web", 1)
    b.add(sample(90, cpu=9.0, pid=77))
    row = rollup.merged(a.row(60), b.row(60, still_open=True))
    assert (row.samples, row.cpu_min, row.cpu_max, row.cpu_avg, row.pid, row.still_open) == (3, 2.0, 9.0, 5.0, 77, True)


# --- pure: which raw samples are worth a row --------------------------------------------------------


def test_a_raw_sample_is_kept_only_when_it_says_something_new():
    last = sample(T0)
    keep = rollup.worth_keeping
    assert keep(None, last)  # the first one of a service
    same = [
        sample(T0 + 15),
        sample(T0 + 15, cpu=1.0 + rollup.KEEP.cpu_points - 1),
        sample(T0 + 15, rss=int(50 * MiB * 1.04)),
        sample(T0 + 15, connections=1, fds=11),  # a health check's own connection is not news
        sample(T0 + 15, status="running"),  # sleeping/running flips with what the process was doing
        sample(T0 + 15, latency=40.0),
    ]
    for s in same:
        assert not keep(last, s), s
    news = {
        "cpu": sample(T0 + 15, cpu=1.0 + rollup.KEEP.cpu_points + 0.5),
        "rss": sample(T0 + 15, rss=int(50 * MiB * 1.06)),
        "fds": sample(T0 + 15, fds=30),
        "threads": sample(T0 + 15, threads=9),
        "pid": sample(T0 + 15, pid=4343),
        "state": sample(T0 + 15, state="stopping"),
        "stopped": sample(T0 + 15, status="stopped"),
        "zombies": sample(T0 + 15, zombies=1),
        "children": sample(T0 + 15, children=2),
        "holder": sample(T0 + 15, holder=999),
        "verdict": sample(T0 + 15, ok=False),
        "error": sample(T0 + 15, ok=True, error="slow"),
        "no health": sample(T0 + 15, ok=None),
        "gone": sample(T0 + 15, pid=None),
        "heartbeat": sample(T0 + rollup.KEEP.heartbeat_s),
    }
    for why, s in news.items():
        assert keep(last, s), why


# --- the records: raw rows, roll-ups, pruning -------------------------------------------------------


@pytest.mark.asyncio
async def test_unchanged_samples_are_not_written_raw_and_changed_ones_are(tmp_path):
    records = await opened(tmp_path / "a.db", "web", "db")
    try:
        for i in range(21):  # 21 scans, 15 s apart: web is steady, db's cpu jumps at scan 10
            ts = T0 + 15 * i
            records.add_samples([sample(ts, "web"), sample(ts, "db", cpu=50.0 if i >= 10 else 1.0)], host(ts))
        await committed(records)
        # web: its first sample and the heartbeat 300 s on; db: its first sample and the jump (which
        # also restarts its heartbeat period).
        rows = await records.store.fetch("SELECT service, ts, cpu_percent FROM samples ORDER BY service, ts")
        assert [(r["service"], r["ts"], r["cpu_percent"]) for r in rows] == [
            ("db", T0, 1.0), ("db", T0 + 150, 50.0), ("web", T0, 1.0), ("web", T0 + 300, 1.0),
        ]
        host_rows = await records.store.fetch_one("SELECT count(*) AS n FROM host_samples")
        assert host_rows["n"] == 21  # host samples stay raw, one per scan
        # Every sample is in the roll-ups all the same: 5 minutes closed (the sixth is open).
        minutes = await stored_minutes(records)
        assert sorted(m.samples for (name, _), m in minutes.items() if name == "db") == [4, 4, 4, 4, 4]
        assert minutes[("db", T0 + 120)].cpu_min == 1.0 and minutes[("db", T0 + 120)].cpu_max == 50.0
    finally:
        await records.close()


@pytest.mark.asyncio
async def test_closing_writes_the_open_minute_and_the_next_engine_merges_into_it(tmp_path):
    db = tmp_path / "a.db"
    records = await opened(db, "web")
    records.add_samples([sample(T0 + 5, cpu=2.0), ], host(T0 + 5))
    records.add_samples([sample(T0 + 20, cpu=4.0)], host(T0 + 20))
    assert await records.history("web", 10, until=T0 + 30) == [records.rollups.open["web"].row(60, still_open=True)]
    await records.close()
    records = await opened(db, "web")  # a new engine, within the same minute
    try:
        records.add_samples([sample(T0 + 40, cpu=9.0, pid=99)], host(T0 + 40))
        [row] = await records.history("web", 10, until=T0 + 50)
        assert (row.samples, row.cpu_min, row.cpu_avg, row.cpu_max, row.pid, row.still_open) == (3, 2.0, 5.0, 9.0, 99, True)
        records.add_samples([sample(T0 + 65)], host(T0 + 65))  # the minute closes: its second part is merged in SQL
        await committed(records)
        stored = (await stored_minutes(records))[("web", T0)]
        assert (stored.samples, stored.cpu_min, stored.cpu_avg, stored.cpu_max, stored.pid) == (3, 2.0, 5.0, 9.0, 99)
    finally:
        await records.close()


@pytest.mark.asyncio
async def test_raw_samples_older_than_retention_are_pruned_and_their_minutes_rolled_up(tmp_path):
    records = await opened(tmp_path / "a.db", "web", "db")
    try:
        # What an engine that died before writing its minutes left (or one older than roll-ups): a raw
        # row per scan. Minute 0 of web was rolled up already (with other figures): it must stay as it is.
        old = [sample(T0 + 10 * i, name, cpu=float(i % 7) + (5 if name == "db" else 0), rss=(40 + i) * MiB,
                      latency=1.0 + i, ok=i % 3 != 0, pid=100 + i // 9)
               for i in range(18) for name in ("web", "db")]
        await records.store.write_many(SAMPLE_INSERT, [_sample_row(s) for s in old])
        earlier = rollup.Bucket("web", rollup.bucket_of(T0, 60))
        earlier.add(sample(T0, cpu=99.0))
        records._flush([earlier])
        recent = sample(T0 + DAY, "web")
        await records.store.write_many(SAMPLE_INSERT, [_sample_row(recent)])
        await committed(records)

        records.prune_samples(T0 + 180 + 30, now=T0 + DAY)  # the cutoff falls mid-minute: taken back to T0 + 180
        await committed(records)

        assert await raw_count(records) == 1  # only the recent one is left
        expected = rollup.MinuteRollups(period=60)
        buckets = expected.add(old, T0) + expected.close_all()
        want = {(b.service, b.minute * 60.0): b.row(60) for b in buckets}
        got = await stored_minutes(records)
        assert got[("web", T0)].cpu_max == 99.0 and got[("web", T0)].samples == 1  # not rolled up again
        for key, row in want.items():
            if key != ("web", T0):
                assert got[key] == row, key
        assert set(got) == set(want)
    finally:
        await records.close()


@pytest.mark.asyncio
async def test_rollups_older_than_thirty_days_are_pruned(tmp_path):
    records = await opened(tmp_path / "a.db", "web")
    try:
        now = T0
        for age_days in (31, 29.9, 1):
            ts = now - age_days * DAY
            bucket = rollup.Bucket("web", rollup.bucket_of(ts, 60))
            bucket.add(sample(ts))
            records._flush([bucket])
        await committed(records)
        records.prune_samples(now - 24 * 3600, now=now)
        await committed(records)
        ages = sorted(round((now - start) / DAY, 1) for (_, start) in await stored_minutes(records))
        assert ages == [1.0, 29.9]
    finally:
        await records.close()


@pytest.mark.asyncio
async def test_history_pages_are_bounded_and_validated(tmp_path):
    records = await opened(tmp_path / "a.db", "web", "db")
    try:
        for i in range(10):
            ts = T0 + 60 * i
            records.add_samples([sample(ts, "web"), sample(ts, "db")], host(ts))
        await committed(records)
        rows = await records.history(None, 5, until=T0 + 60 * 9 + 1)
        assert [(r.service, r.start) for r in rows] == [(n, T0 + 60 * i) for n in ("db", "web") for i in range(5, 10)]
        assert [r.still_open for r in rows if r.start == T0 + 540] == [True, True]
        assert [r.start for r in await records.history("web", 2, until=T0 + 60 * 3 + 1)] == [T0 + 120, T0 + 180]
        for bad in (0, -1, rollup.MAX_HISTORY_MINUTES + 1):
            with pytest.raises(ValueError, match="minutes must be"):
                await records.history("web", bad)
        with pytest.raises(ValueError, match="finite"):
            await records.history("web", 5, until=math.inf)
    finally:
        await records.close()


@pytest.mark.asyncio
async def test_an_existing_database_is_upgraded_and_its_samples_stay_valid(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for version, _, sql in migrations():
        if version <= 5:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    conn.execute("INSERT INTO services(name, config_json, first_seen, last_seen) VALUES ('web', '{}', 0, 0)")
    old = [sample(T0 + 15 * i, cpu=float(i)) for i in range(8)]
    conn.executemany(SAMPLE_INSERT, [_sample_row(s) for s in old])
    conn.commit()
    conn.row_factory = sqlite3.Row
    assert incident_minutes(conn, "web", T0, T0 + 120) == ([], 0)  # `aurora incident` on a database not upgraded yet
    conn.close()

    records = Records(db)
    await records.open()
    try:
        assert await raw_count(records) == 8
        records.prune_samples(T0 + 120, now=T0 + 120)
        await committed(records)
        got = await stored_minutes(records)
        assert [(m.samples, m.cpu_min, m.cpu_avg, m.cpu_max) for _, m in sorted(got.items())] == [(4, 0.0, 1.5, 3.0), (4, 4.0, 5.5, 7.0)]
    finally:
        await records.close()


# --- read back: the engine over its socket, and `aurora incident` ------------------------------------


@pytest.mark.asyncio
async def test_history_over_the_socket_returns_minute_rows_and_survives_a_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(rollup, "PERIOD", 1)  # one-second "minutes": closed ones within a few scans
    port = free_port()
    config = script_fleet(tmp_path, {"web": {"script": http_service(port), "port": port, "health": {"http": "/"}}}, interval=0.25)
    async with running(config) as engine:
        async with RemoteEngine(engine.db_path) as remote:
            async def closed_minutes() -> list[MinuteRow]:
                rows = await remote.history("web", 60)
                closed = [r for r in rows if not r.still_open and r.samples]
                return closed if len(closed) >= 3 else []

            rows = await async_wait_until(closed_minutes, timeout=30, what="three minutes of web in the history")
            assert all(isinstance(r, MinuteRow) and r.service == "web" and r.seconds == 1 for r in rows)
            steady = rows[1:]  # the first minute may hold samples from before the service answered
            assert all(r.healthy == r.samples and r.cpu_avg is not None and r.rss_max > 0 and r.latency_avg is not None for r in steady), rows
            everything = await remote.history(None, 60)
            assert {r.service for r in everything} == {"web"} and everything[-1].still_open
            with pytest.raises(ControlError, match="minutes must be"):
                await remote.history("web", 0)
            with pytest.raises(ControlError, match="no service"):
                await remote.history("nope")
            with pytest.raises(ControlError, match="bad params"):
                await remote._call("history", 5, service="web", minutes="many")
        before = [(r.start, r.samples) for r in await engine.history("web", 600) if not r.still_open]
    # A new engine (a console attached after a restart) reads back what the last one kept, its last
    # minute included (written as it closed).
    async with Engine(config) as again:
        after = [(r.start, r.samples) for r in await again.history("web", 600)]
    assert set(before) <= set(after) and len(after) > len(before)


def test_aurora_incident_shows_the_minutes_around_it(tmp_path):
    import asyncio

    db = tmp_path / "a.db"
    opened_at, resolved_at = T0 + 20 * 60, T0 + 24 * 60

    async def build() -> int:
        records = await opened(db, "web")
        try:
            for i in range(30 * 4):  # half an hour of scans, 15 s apart; cpu climbs during the incident
                ts = T0 + 15 * i
                busy = opened_at - 120 <= ts < resolved_at
                records.add_samples([sample(ts, cpu=80.0 + i % 4 if busy else 2.0, latency=250.0 if busy else 3.0)], host(ts))
            return await records.store.write(
                "INSERT INTO incidents(service, pattern, status, severity, confidence, summary, onset_at, opened_at, last_seen, "
                "resolved_at, detect_seconds) VALUES ('web', 'high_cpu', 'resolved', 'warning', 7, 'web burns cpu', ?, ?, ?, ?, 1.0)",
                (opened_at, opened_at, resolved_at, resolved_at), ack=True,
            )
        finally:
            await records.close()

    incident_id = asyncio.run(build())

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "aurora_tui", *args, "--db", str(db)], capture_output=True, text=True, timeout=60)

    shown = cli("incident", str(incident_id))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "per minute, from 10 minutes before it opened" in text
    lines = [line for line in text.splitlines() if "/4" in line]
    assert len(lines) == 15  # 10 minutes before it opened, the 4 it lasted, and the minute it ended in
    assert "80.0/81.5/83.0" in text and "250/250/250" in text and "2.0/2.0/2.0" in text
    data = json.loads(cli("incident", str(incident_id), "--json").stdout)
    assert [m["start"] for m in data["minutes"]] == [opened_at - 600 + 60 * i for i in range(15)]
    assert data["minutes"][-2]["cpu_max"] == 83.0 and data["minutes_left_out"] == 0
