"""The records: every SQL statement of the engine and the healer, returning typed rows.

The open incidents (:class:`IncidentBook`) and the learned beliefs (:class:`Learning`) are kept here
too, so that whatever writes the database goes through this one part. Writes go through the store's
single batching writer; a write that nobody awaits still has its failure logged.

Samples (see :mod:`.rollup`): every one is folded into its service's minute in memory, and the minute
is written when it closes (and when the records close); a raw row is written only when the sample says
something new. Pruning deletes raw rows older than the retention, rolling up first, in the same
transaction, the minutes among them that have no roll-up (an engine that died before writing them),
and deletes roll-ups older than :data:`~.rollup.KEEP_DAYS`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

from . import rollup
from .api import PLAN_STATUSES, EventRow, HealStats, IncidentRow, MinuteRow, PlanRow, TimelineEntry
from .config import ServiceConfig
from .incidents import IncidentBook, incident_query, incident_row
from .learning import Learning
from .model import Event, HostSample, ProcessIdentity, ServiceSample, StorageProblem, to_jsonable
from .store import Store, StorageUnavailable, dumps

log = logging.getLogger(__name__)

PLAN_FIELDS = (
    "id, incident_id, service, pattern, fix, actions_json, confidence, risk, verdicts_json, decision, status, summary, "
    "evidence_json, evidence_at, created_at, decided_at, decided_by, grade, comment, reason, executed_at, finished_at, outcome"
)
SAMPLE_INSERT = (
    "INSERT INTO samples(service, ts, state, pid, status, cpu_percent, rss, fds, threads, connections, children, zombies, "
    "port_listening, port_holder_pid, healthy, http_status, latency_ms, health_error, data_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
HOST_SAMPLE_INSERT = (
    "INSERT INTO host_samples(ts, cpu_percent, mem_percent, mem_available, load1, disk_percent, disk_free) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def plan_row(row: Any) -> PlanRow:
    data = dict(row)
    data["actions"] = json.loads(data.pop("actions_json"))
    data["verdicts"] = json.loads(data.pop("verdicts_json"))
    data["evidence"] = json.loads(data.pop("evidence_json"))
    return PlanRow(**data)


def process_identity(row: Any) -> ProcessIdentity:
    return ProcessIdentity(
        row["pid"], row["create_time"], tuple(json.loads(row["cmdline"])), row["starttime"], row["exe"], row["pgid"], row["sid"],
        row["cgroup"], row["boot_id"],
    )


def config_key(svc: ServiceConfig) -> str:
    """A service's configuration as stored: equal text means the same configuration."""
    return dumps(to_jsonable(svc))


def config_from_key(text: str) -> ServiceConfig:
    from .config import HealthCheck, Limits

    data = json.loads(text)
    data["command"] = tuple(data["command"])
    data["env"] = tuple(tuple(pair) for pair in data.get("env", ()))
    data["depends_on"] = tuple(data.get("depends_on", ()))
    for key in ("start_command", "stop_command"):
        data[key] = tuple(data.get(key, ()))
    data["health"] = HealthCheck.from_jsonable(data["health"])
    data["limits"] = Limits(**data["limits"])
    data["patterns"] = tuple((p, tuple(tuple(kv) for kv in params)) for p, params in data.get("patterns", ()))
    return ServiceConfig(**data)


class Records:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id: int | None = None
        self._store: Store | None = None
        self._incidents: IncidentBook | None = None
        self._learning: Learning | None = None
        # Plan ids are given here, not by SQLite: a plan exists (and can be acted on) even while the
        # storage refuses its commit, and its row lands with that id once it can.
        self._last_plan_id = 0
        # Every sample's minute, in memory until it closes; the last raw row written per service (what
        # the next sample is compared with); minutes handed to the store and not committed yet (so
        # that history never misses them while they wait).
        self.rollups = rollup.MinuteRollups()
        self._last_written: dict[str, ServiceSample] = {}
        self._unflushed: dict[tuple[str, int], rollup.Bucket] = {}

    async def open(self) -> None:
        store = await Store.open(self.path)
        incidents, learning = IncidentBook(store), Learning(store)
        try:
            await incidents.load()
            await learning.load()
            row = await store.fetch_one("SELECT coalesce(max(id), 0) AS n FROM plans")
            self._last_plan_id = int(row["n"]) if row else 0
        except BaseException:
            await store.close()
            raise
        self._store, self._incidents, self._learning = store, incidents, learning

    async def close(self) -> None:
        if self._store is not None:
            self._flush(self.rollups.close_all())  # the open minutes; the store commits them as it closes
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    @property
    def is_open(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the database is not open")
        return self._store

    @property
    def incidents(self) -> IncidentBook:
        """The open incidents and silences (kept in memory, written through)."""
        if self._incidents is None:
            raise RuntimeError("the database is not open")
        return self._incidents

    @property
    def learning(self) -> Learning:
        """The beliefs per (pattern, fix)."""
        if self._learning is None:
            raise RuntimeError("the database is not open")
        return self._learning

    def background(self, future: "asyncio.Future[Any]") -> None:
        """A write nobody awaits; its failure must not vanish silently."""
        future.add_done_callback(_report_write_failure)

    def refuse_decisions(self) -> None:
        """Raise StorageUnavailable once the database was deleted or replaced under the engine: what is
        decided now would be written to a file nobody will read again."""
        if self._store is not None and self._store.moved is not None:
            raise StorageUnavailable(self._store.moved_message())

    # --- runs and configurations ---------------------------------------------------------------------

    async def start_run(self, config_source: str, pid: int, services: Sequence[ServiceConfig]) -> None:
        now = time.time()
        self.run_id = await self.store.write(
            "INSERT INTO engine_runs(started_at, pid, config_source) VALUES (?, ?, ?)", (now, pid, config_source), ack=True
        )
        await self.store.write_many(
            "INSERT INTO services(name, config_json, first_seen, last_seen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET config_json = excluded.config_json, last_seen = excluded.last_seen",
            [(s.name, dumps(to_jsonable(s)), now, now) for s in services], ack=True,
        )
        await self.store.write_many(
            "INSERT INTO service_configs(service, config_json, first_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(s.name, config_key(s), now) for s in services if s.managed], ack=True,
        )

    async def end_run(self) -> None:
        await self.store.write("UPDATE engine_runs SET stopped_at = ?, clean_exit = 1 WHERE id = ?", (time.time(), self.run_id))

    def storage_problems(self) -> list[StorageProblem]:
        return self._store.problems() if self._store is not None else []

    def mark_healthy_config(self, svc: ServiceConfig) -> None:
        self.background(self.store.submit(
            "UPDATE service_configs SET last_healthy_at = ? WHERE service = ? AND config_json = ?",
            (time.time(), svc.name, config_key(svc)),
        ))

    async def previous_healthy_config(self, svc: ServiceConfig) -> ServiceConfig | None:
        """The last other configuration of ``svc`` that ran healthily."""
        row = await self.store.fetch_one(
            "SELECT config_json FROM service_configs WHERE service = ? AND config_json != ? AND last_healthy_at IS NOT NULL "
            "ORDER BY last_healthy_at DESC LIMIT 1",
            (svc.name, config_key(svc)),
        )
        return config_from_key(row["config_json"]) if row is not None else None

    # --- processes Aurora owns -------------------------------------------------------------------------

    def process_started(self, service: str, identity: ProcessIdentity, started_at: float | None) -> None:
        i = identity
        self.background(self.store.submit(
            "INSERT INTO owned_processes(run_id, service, pid, create_time, cmdline, started_at, starttime, exe, pgid, sid, cgroup, boot_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, service, i.pid, i.create_time, dumps(list(i.cmdline)), started_at, i.starttime, i.exe, i.pgid, i.sid, i.cgroup, i.boot_id),
        ))

    def process_ended(self, service: str, ts: float, code: int | None, sig: str | None) -> None:
        self.background(self.store.submit(
            "UPDATE owned_processes SET ended_at = ?, exit_code = ?, exit_signal = ? WHERE run_id = ? AND service = ? AND ended_at IS NULL",
            (ts, code, sig, self.run_id, service),
        ))

    async def unended_processes(self) -> list[tuple[int, str, ProcessIdentity]]:
        """Processes a previous engine started and never saw end: (row id, service, identity). Rows
        written before start times were kept have None for what they lack."""
        rows = await self.store.fetch(
            "SELECT id, service, pid, create_time, cmdline, starttime, exe, pgid, sid, cgroup, boot_id FROM owned_processes WHERE ended_at IS NULL"
        )
        return [(r["id"], r["service"], process_identity(r)) for r in rows]

    async def processes(self, service: str, since: float = 0.0) -> list[tuple[float, ProcessIdentity]]:
        """The processes started for ``service`` after ``since``, oldest first: (started at, identity)."""
        rows = await self.store.fetch(
            "SELECT started_at, pid, create_time, cmdline, starttime, exe, pgid, sid, cgroup, boot_id FROM owned_processes "
            "WHERE service = ? AND started_at > ? ORDER BY started_at, id",
            (service, since),
        )
        return [(r["started_at"], process_identity(r)) for r in rows]

    async def process_gone(self, row_id: int) -> None:
        await self.store.write("UPDATE owned_processes SET ended_at = ? WHERE id = ?", (time.time(), row_id))

    # --- samples ---------------------------------------------------------------------------------------

    def add_samples(self, samples: Sequence[ServiceSample], host: HostSample) -> None:
        """A scan's samples: into their minutes, and raw where they say something new. Host samples
        are written raw every scan: one row a scan (86 400 a day at 1 s, a few MB) fits the budget."""
        keep = [s for s in samples if rollup.worth_keeping(self._last_written.get(s.service), s)]
        for s in keep:
            self._last_written[s.service] = s
        if keep:
            self.background(self.store.submit_many(SAMPLE_INSERT, [_sample_row(s) for s in keep], droppable=True))
        self.background(self.store.submit(
            HOST_SAMPLE_INSERT,
            (host.ts, host.cpu_percent, host.mem_percent, host.mem_available, host.load1, host.disk_percent, host.disk_free),
            droppable=True,
        ))
        self._flush(self.rollups.add(samples, host.ts))

    def _flush(self, buckets: Sequence[rollup.Bucket]) -> None:
        """Closed minutes as one write (their services' ids made first, in the same transaction)."""
        if not buckets:
            return
        keys = [(b.service, b.minute) for b in buckets]
        for key, bucket in zip(keys, buckets):
            self._unflushed[key] = bucket
        future = self.store.submit_group([
            (rollup.SERVICE_ID_INSERT, [(name,) for name in dict.fromkeys(b.service for b in buckets)]),
            (rollup.ROLLUP_UPSERT, [b.stored() for b in buckets]),
        ], droppable=True)

        def landed(_: "asyncio.Future[Any]") -> None:
            for key, bucket in zip(keys, buckets):
                if self._unflushed.get(key) is bucket:
                    del self._unflushed[key]

        future.add_done_callback(landed)
        self.background(future)

    def prune_samples(self, cutoff: float, now: float | None = None) -> None:
        """Delete raw samples older than ``cutoff`` and roll-ups older than KEEP_DAYS before ``now``.
        The cutoff is taken back to a minute's start, so a minute is never rolled up from half its rows."""
        period = self.rollups.period
        edge = math.floor(cutoff / period) * period
        oldest = rollup.bucket_of((time.time() if now is None else now) - rollup.KEEP_DAYS * 86400, period)
        self.background(self.store.submit_group([
            (rollup.SERVICE_IDS_FROM_RAW, [{"cutoff": edge}]),
            (rollup.ROLLUP_FROM_RAW, [{"period": period, "cutoff": edge}]),
            ("DELETE FROM samples WHERE ts < ?", [(edge,)]),
            ("DELETE FROM sample_minutes WHERE minute < ?", [(oldest,)]),
        ], droppable=True))
        self.background(self.store.submit("DELETE FROM host_samples WHERE ts < ?", (cutoff,), droppable=True))

    async def history(self, service: str | None = None, minutes: int = 60, until: float | None = None) -> list[MinuteRow]:
        """The roll-ups of ``service`` (or every service) over ``minutes`` periods ending at ``until``
        (default now), with the minutes still in memory: the open one, and closed ones not committed yet."""
        if isinstance(minutes, bool) or not 1 <= int(minutes) <= rollup.MAX_HISTORY_MINUTES:
            raise ValueError(f"minutes must be from 1 to {rollup.MAX_HISTORY_MINUTES}")
        if until is not None and not math.isfinite(until):
            raise ValueError("until must be a finite time")
        period = self.rollups.period
        first, last = rollup.window(int(minutes), time.time() if until is None else float(until), period)

        def wanted(b: rollup.Bucket) -> bool:
            return first <= b.minute <= last and (service is None or b.service == service)

        # Taken before the read: a minute whose write lands during it is then found in one or the other.
        waiting = {key: b for key, b in self._unflushed.items() if wanted(b)}
        current = [b for b in self.rollups.open.values() if wanted(b)]
        sql, params = rollup.history_query(first, last, service)
        rows = {(r["service"], r["minute"]): rollup.minute_row(r, period) for r in await self.store.fetch(sql, params)}
        for key, bucket in waiting.items():
            rows.setdefault(key, bucket.row(period))
        for bucket in current:
            key, row = (bucket.service, bucket.minute), bucket.row(period, still_open=True)
            # A part of this minute may be stored already, by an engine that stopped within it.
            rows[key] = rollup.merged(rows[key], row) if key in rows else row
        newest = sorted(rows.items(), key=lambda kv: kv[0][1], reverse=True)[: rollup.MAX_HISTORY_ROWS]
        return rollup.sorted_rows([row for _, row in newest])

    # --- events ----------------------------------------------------------------------------------------

    def add_event(self, event: Event) -> "asyncio.Future[int | None]":
        return self.store.submit(EVENT_INSERT, _event_row(event, self.run_id))

    async def write_event(self, event: Event, ack: bool = True) -> None:
        """An event committed before this returns; with ``ack``, StorageUnavailable when it cannot be."""
        await self.store.write(EVENT_INSERT, _event_row(event, self.run_id), ack=ack)

    async def recent_events(self, limit: int = 50, service: str | None = None) -> list[EventRow]:
        where, params = ("WHERE service = ?", [service]) if service else ("", [])
        rows = await self.store.fetch(
            f"SELECT id, ts, kind, service, message, data_json FROM events {where} ORDER BY id DESC LIMIT ?",
            (*params, int(limit)),
        )
        return [EventRow(r["id"], r["ts"], r["kind"], r["service"], r["message"], json.loads(r["data_json"])) for r in rows]

    # --- incidents -------------------------------------------------------------------------------------

    async def list_incidents(
        self, open_only: bool = False, service: str | None = None, pattern: str | None = None,
        since: float | None = None, limit: int = 50, before_id: int | None = None,
    ) -> list[IncidentRow]:
        sql, params = incident_query(service=service, pattern=pattern, open_only=open_only, since=since, limit=limit, before_id=before_id)
        return [incident_row(r) for r in await self.store.fetch(sql, params)]

    async def incident(self, incident_id: int) -> IncidentRow:
        rows = await self.list_incidents(limit=1, before_id=int(incident_id) + 1)
        if not rows or rows[0].id != int(incident_id):
            raise KeyError(f"no incident #{incident_id}")
        events = await self.store.fetch(
            "SELECT ts, kind, message, data_json FROM incident_events WHERE incident_id = ? ORDER BY ts, id", (int(incident_id),)
        )
        rows[0].timeline = [TimelineEntry(e["ts"], e["kind"], e["message"], json.loads(e["data_json"])) for e in events]
        return rows[0]

    async def add_timeline(self, incident_id: int, ts: float, kind: str, message: str, data: dict[str, Any], ack: bool = False) -> None:
        await self.store.write(
            "INSERT INTO incident_events(incident_id, ts, kind, message, data_json) VALUES (?, ?, ?, ?, ?)",
            (incident_id, ts, kind, message, dumps(data)), ack=ack,
        )

    # --- plans -----------------------------------------------------------------------------------------

    async def plan(self, plan_id: int) -> PlanRow:
        row = await self.store.fetch_one(f"SELECT {PLAN_FIELDS} FROM plans WHERE id = ?", (int(plan_id),))
        if row is None:
            if self.store.failure is not None and 0 < int(plan_id) <= self._last_plan_id:
                raise self.store.unavailable()  # proposed while the storage refused: not on disk yet
            raise KeyError(f"no plan #{plan_id}")
        return plan_row(row)

    async def list_plans(self, status: str | None = "pending", limit: int = 50, before_id: int | None = None) -> list[PlanRow]:
        where, params = [], []
        if status and status not in PLAN_STATUSES:
            raise ValueError(f"unknown plan status {status!r}; known: {', '.join(PLAN_STATUSES)}")
        if status:
            where.append("status = ?")
            params.append(status)
        if before_id is not None:
            where.append("id < ?")
            params.append(int(before_id))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.store.fetch(f"SELECT {PLAN_FIELDS} FROM plans {clause} ORDER BY id DESC LIMIT ?", (*params, int(limit)))
        return [plan_row(r) for r in rows]

    async def plan_index(self) -> tuple[dict[int, int], set[int], list[int]]:
        """The incident -> latest plan map, the pending plans, and the approved plans a crash interrupted."""
        rows = await self.store.fetch("SELECT id, incident_id, status FROM plans WHERE incident_id IS NOT NULL ORDER BY id")
        planned = {r["incident_id"]: r["id"] for r in rows}
        pending = {r["id"] for r in rows if r["status"] == "pending"}
        resume = await self.store.fetch("SELECT id FROM plans WHERE status IN ('approved', 'executing') ORDER BY id")
        return planned, pending, [r["id"] for r in resume]

    async def insert_plan(self, values: dict[str, Any], ack: bool = False) -> int:
        """A plan with its judgement and its id. With ``ack`` (an operator's) it is committed before this
        returns, or StorageUnavailable is raised and the plan does not exist; without (the healer's),
        it is committed first while the storage works, and queued when it does not, so healing goes on."""
        self._last_plan_id += 1
        values = {"id": self._last_plan_id, **values}
        columns = ", ".join(values)
        await self.store.write(f"INSERT INTO plans({columns}) VALUES ({', '.join('?' for _ in values)})", tuple(values.values()), ack=ack)
        return values["id"]

    async def set_plan(self, plan_id: int, only_if_status: str | None = None, ack: bool = False, **values: Any) -> int | None:
        """Update a plan's columns; with ``only_if_status`` only while it has that status.
        Returns the number of rows changed (0: someone else decided first; None: not known, the
        storage refuses commits and this is not ``ack``)."""
        sets = ", ".join(f"{column} = ?" for column in values)
        sql = f"UPDATE plans SET {sets} WHERE id = ?"
        params: list[Any] = [*values.values(), int(plan_id)]
        if only_if_status is not None:
            sql += " AND status = ?"
            params.append(only_if_status)
        return await self.store.update(sql, params, ack=ack)

    async def log_action(self, plan_id: int, kind: str, service: str | None, target: tuple[int, str, bool] | None,
                         approved_by: str | None, result: str) -> None:
        pid, cmd, owned = target if target is not None else (None, None, None)
        await self.store.write(
            "INSERT INTO actions_log(plan_id, ts, kind, service, target_pid, target_cmd, owned, approved_by, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (plan_id, time.time(), kind, service, pid, cmd, None if owned is None else int(owned), approved_by, result),
        )

    async def heal_stats(self) -> HealStats:
        rows = await self.store.fetch(
            "SELECT status, count(*) AS n FROM plans WHERE pattern != 'manual' AND decided_by = 'guardians' GROUP BY status"
        )
        counts = {r["status"]: r["n"] for r in rows}
        verified, failed = counts.get("verified", 0), counts.get("failed", 0)
        pending = await self.store.fetch_one("SELECT count(*) AS n FROM plans WHERE status = 'pending'")
        return HealStats(verified, failed, (verified / (verified + failed)) if verified + failed else None, pending["n"] if pending else 0)


def _sample_row(s: ServiceSample) -> tuple[Any, ...]:
    p, port, h = s.process, s.port, s.health
    # Who holds the port is worth its command line only when it is someone else: the service's own
    # command line is in its configuration, and would otherwise be the largest part of every row.
    foreign = port is not None and port.holder_pid is not None and port.holder_is_service is not True
    extra = {"holder_cmdline": port.holder_cmdline, "holder_username": port.holder_username} if foreign else {}
    return (
        s.service, s.ts, s.state,
        p.pid if p else None, p.status if p else None, p.cpu_percent if p else None, p.rss if p else None,
        p.fds if p else None, p.threads if p else None, p.connections if p else None,
        p.children if p else None, p.zombies if p else None,
        int(port.listening) if port else None, port.holder_pid if port else None,
        None if h is None or h.ok is None else int(h.ok), h.status_code if h else None,
        h.latency_ms if h else None, h.error if h else None, dumps(extra),
    )


EVENT_INSERT = "INSERT INTO events(ts, run_id, kind, service, message, data_json) VALUES (?, ?, ?, ?, ?, ?)"


def _event_row(event: Event, run_id: int | None) -> tuple[Any, ...]:
    return (event.ts, run_id, event.kind, event.service, event.message, dumps(event.data))


def _report_write_failure(future: "asyncio.Future[Any]") -> None:
    # A write dropped because the storage refused it for long is counted by the store, not told one by one.
    if not future.cancelled() and future.exception() is not None and not isinstance(future.exception(), StorageUnavailable):
        log.error("store write failed: %r", future.exception())
