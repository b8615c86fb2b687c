"""The engine: owns the supervised services, scans them, stores what it sees and publishes events.

It runs on an asyncio loop (the console's own, or its own when headless). Blocking work, namely psutil and
SQLite, happens in threads; the loop only awaits. Scans never overlap: the next one is scheduled after
the previous one finished. A process exit is handled the moment the kernel reports it.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any, AsyncIterator

import psutil

from . import restart_policy
from .config import Config, ServiceConfig
from .control import ControlServer, socket_path
from .detect import DependencyState, HostView, ServiceView, detect_host, detect_service
from .diagnose import diagnose
from .enginelock import EngineLock
from .healer import Healer
from .incidents import IncidentBook, incident_query, incident_row
from .patterns import HOST, pattern_params
from .model import (
    Event,
    ExitInfo,
    FleetSnapshot,
    HealthResult,
    HostSample,
    ServiceSample,
    ServiceState,
    ServiceStatus,
    to_jsonable,
)
from .probes import ConnectionTable, ProcessProber, health_check, host_sample, http_get, port_facts
from .store import Store, dumps
from .supervisor import ServiceRunner, signal_group

# Readiness is polled quickly at first: the time from spawn to "healthy" is most of a recovery.
READY_POLL_FAST = 0.02
READY_POLL = 0.1
READY_FAST_FOR = 2.0
# A service whose probes are throttled is health-checked on one scan in this many.
THROTTLE_EVERY = 4
THROTTLE_FOR = 600.0
PRUNE_EVERY = 600.0
SUBSCRIBER_QUEUE = 1000
# Samples kept in memory per service for detection (the store keeps the full history).
HISTORY = 120
EXIT_HISTORY = 20
DEMO_MODULE = "aurora_tui.demo.service"
SIGNAL_FAULTS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "cont": signal.SIGCONT}
# Event kinds that only describe the present (the console redraws on them); they are not stored.
TRANSIENT = {"scan", "state", "incident_repeated"}


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db_path = Path(config.settings.db)
        self.log_dir = Path(config.settings.log_dir)
        self.interval = config.settings.interval
        self.runners: dict[str, ServiceRunner] = {}
        self.samples: dict[str, ServiceSample] = {}
        self.health: dict[str, HealthResult | None] = {}
        self.host: HostSample | None = None
        self.scans = 0
        self.last_scan_at: float | None = None
        self.store: Store | None = None
        self.incidents: IncidentBook | None = None
        self.run_id: int | None = None
        self.history: dict[str, deque[ServiceSample]] = {s.name: deque(maxlen=HISTORY) for s in config.services}
        self.host_history: deque[HostSample] = deque(maxlen=HISTORY)
        self.exit_history: dict[str, deque[ExitInfo]] = {s.name: deque(maxlen=EXIT_HISTORY) for s in config.services}
        self._down_since: dict[str, float] = {}
        self._detect_lock = asyncio.Lock()
        self._lock = EngineLock(self.db_path)
        self._control = ControlServer(self, socket_path(self.db_path))
        self._prober = ProcessProber()
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._wake = asyncio.Event()
        self._short_runs: dict[str, int] = {}
        self._throttled: dict[str, float] = {}
        self.healer: Healer | None = None
        self._resume: list[int] = []
        self._dispatcher: Any = None
        self._dispatcher_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._scan_task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self._closing = False
        self._opened = False

    # --- lifecycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Take the database, recover from an unclean predecessor and serve the control socket.
        Services are not started yet: see :meth:`launch`."""
        self._lock.acquire()
        try:
            self.store = await Store.open(self.db_path)
            await self._stop_stale_processes()
            self.incidents = IncidentBook(self.store)
            await self.incidents.load()
            self.healer = Healer(self)
            self._resume = await self.healer.load()
            now = time.time()
            self.run_id = await self.store.write(
                "INSERT INTO engine_runs(started_at, pid, config_source) VALUES (?, ?, ?)",
                (now, os.getpid(), self.config.source),
            )
            await self.store.submit_many(
                "INSERT INTO services(name, config_json, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET config_json = excluded.config_json, last_seen = excluded.last_seen",
                [(s.name, dumps(to_jsonable(s)), now, now) for s in self.config.services],
            )
            await self.store.submit_many(
                "INSERT INTO service_configs(service, config_json, first_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(s.name, _config_key(s), now) for s in self.config.services if s.managed],
            )
            for svc in self.config.services:
                self.health[svc.name] = None
                if svc.managed:
                    self.runners[svc.name] = ServiceRunner(svc, self.log_dir, self._on_exit, self._on_state)
            await self._control.start()
        except BaseException:
            await self._release()
            raise
        self._opened = True
        await self._emit(Event("engine_started", None, f"engine started (pid {os.getpid()})", {"config": self.config.source}))

    def launch(self) -> asyncio.Task[None]:
        """Start the fleet in dependency order, then scan forever. Returns the task doing it."""
        task = asyncio.create_task(self._run(), name="engine-run")
        self._scan_task = task
        return task

    async def _run(self) -> None:
        self._spawn_background(self._chat())  # warm the dispatcher while the fleet starts
        await self.start_fleet()
        assert self.healer is not None
        for plan_id in self._resume:
            # Approved before the last engine stopped, never finished: carried out now, after a re-check.
            self.healer._start_approved(plan_id, None)
        self._resume = []
        await self._scan_loop()

    async def start_fleet(self) -> None:
        for level in self.config.start_levels():
            names = [n for n in level if n in self.runners]
            # Services of one level start together; the next level waits until they answer (or their
            # start grace runs out), so dependants do not start against a dependency that is not up.
            await asyncio.gather(*(self._start_and_wait(n) for n in names))

    async def close(self) -> None:
        """Stop scanning, stop every owned service (dependants first) and release the database."""
        if not self._opened:
            return
        self._closing = True
        if self._scan_task is not None:
            self._scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan_task
        if self.healer is not None:
            await self.healer.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for level in reversed(self.config.start_levels()):
            await asyncio.gather(*(self.runners[n].stop() for n in level if n in self.runners), return_exceptions=True)
        await self._emit(Event("engine_stopped", None, "engine stopped cleanly"))
        assert self.store is not None
        await self.store.write(
            "UPDATE engine_runs SET stopped_at = ?, clean_exit = 1 WHERE id = ?", (time.time(), self.run_id)
        )
        for queue in list(self._subscribers):
            queue.put_nowait(Event("engine_closed", None, "engine closed"))
        await self._release()
        self._opened = False

    async def _release(self) -> None:
        await self._control.close()
        if self.store is not None:
            await self.store.close()
            self.store = None
        for runner in self.runners.values():
            runner.close()
        self._lock.release()

    async def __aenter__(self) -> "Engine":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the EngineAPI ------------------------------------------------------------------------------

    async def snapshot(self) -> FleetSnapshot:
        now = time.time()
        return FleetSnapshot(
            ts=now,
            services=[self._status(svc, now) for svc in self.config.services],
            host=self.host,
            last_scan_at=self.last_scan_at,
            scans=self.scans,
            interval=self.interval,
            engine_pid=os.getpid(),
            db=str(self.db_path),
            config_source=self.config.source,
        )

    async def restart(self, service: str, requested_by: str = "operator") -> dict[str, Any]:
        return await self._operator_action("restart", service, requested_by)

    async def stop_service(self, service: str, requested_by: str = "operator") -> dict[str, Any]:
        return await self._operator_action("stop", service, requested_by)

    async def start_service(self, service: str, requested_by: str = "operator") -> dict[str, Any]:
        runner = self._managed(service)
        if runner.alive:
            raise ValueError(f"{service} is already running (pid {runner.pid})")
        return await self._operator_action("start", service, requested_by)

    async def _operator_action(self, kind: str, service: str, by: str) -> dict[str, Any]:
        """A restart, stop or start asked for by a person: recorded, judged by the guardians, done."""
        self._managed(service)
        assert self.healer is not None
        await self._acknowledged(Event(kind, service, f"{service} {kind} requested by {by}", {"by": by}))
        await self.healer.run_manual(kind, service, by)
        return self._action_result(service)

    # --- the approval queue and what was learned -----------------------------------------------------

    async def list_plans(self, status: str | None = "pending", limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        assert self.healer is not None
        return await self.healer.list_plans(status=status, limit=limit, before_id=before_id)

    async def plan(self, plan_id: int) -> dict[str, Any]:
        assert self.healer is not None
        return await self.healer.plan(plan_id)

    async def approve(self, plan_id: int, grade: int | None = None, comment: str = "", by: str = "operator") -> dict[str, Any]:
        assert self.healer is not None
        return await self.healer.approve(plan_id, grade=grade, comment=comment, by=by)

    async def reject(self, plan_id: int, reason: str, by: str = "operator") -> dict[str, Any]:
        assert self.healer is not None
        return await self.healer.reject(plan_id, reason=reason, by=by)

    async def grade(self, plan_id: int, grade: int, by: str = "operator") -> dict[str, Any]:
        assert self.healer is not None
        return await self.healer.grade(plan_id, grade=grade, by=by)

    async def learning(self) -> list[dict[str, Any]]:
        assert self.healer is not None
        return self.healer.learning.export()

    async def import_learning(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.healer is not None
        return {"imported": await self.healer.learning.import_(entries)}

    # --- the dispatcher (chat) ----------------------------------------------------------------------

    async def _chat(self) -> Any:
        # One dispatcher per engine, even when the warm-up and a first question race: it holds the
        # pending confirmations.
        async with self._dispatcher_lock:
            if self._dispatcher is None:
                from .dispatch.detector import ConversationDetector
                from .dispatch.dispatcher import Dispatcher

                # Training the detector takes a fraction of a second: off the event loop.
                await asyncio.to_thread(ConversationDetector.default)
                self._dispatcher = Dispatcher(self)
        return self._dispatcher

    async def ask(self, message: str, session: str = "default") -> dict[str, Any]:
        """A chat message to the dispatcher. Anything that would change the fleet comes back as a
        question to confirm, and then goes through the guardians like any other action."""
        return await (await self._chat()).ask(message, session=session)

    async def confirm(self, token: str) -> dict[str, Any]:
        return await (await self._chat()).confirm(token)

    async def heal_stats(self) -> dict[str, Any]:
        """Outcomes of automatic plans: the console's auto-heal rate."""
        assert self.store is not None
        rows = await self.store.fetch(
            "SELECT status, count(*) AS n FROM plans WHERE pattern != 'manual' AND decided_by = 'guardians' GROUP BY status"
        )
        counts = {r["status"]: r["n"] for r in rows}
        done = counts.get("verified", 0) + counts.get("failed", 0)
        pending = await self.store.fetch_one("SELECT count(*) AS n FROM plans WHERE status = 'pending'")
        return {"verified": counts.get("verified", 0), "failed": counts.get("failed", 0),
                "rate": (counts.get("verified", 0) / done) if done else None, "pending": pending["n"] if pending else 0}

    async def scan_now(self) -> FleetSnapshot:
        await self.scan()
        return await self.snapshot()

    async def chaos(self, fault: str, service: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """Cause a real fault: a signal for any owned service, or a demo service's own fault switch."""
        runner = self._managed(service)
        if not runner.alive:
            raise ValueError(f"{service} is not running")
        if fault in SIGNAL_FAULTS:
            runner.send_signal(SIGNAL_FAULTS[fault])
            result: dict[str, Any] = {"fault": fault, "service": service, "pid": runner.pid}
        else:
            if DEMO_MODULE not in runner.config.command or runner.config.port is None:
                raise ValueError(f"{service} is not a demo service: only kill, stop and cont apply to it")
            query = "&".join(f"{k}={v}" for k, v in (params or {}).items() if str(k).isidentifier())
            path = f"/fault/{fault}" + (f"?{query}" if query else "")
            try:
                status, body, _ = await http_get(runner.config.port, path, 5.0, method="POST")
            except (OSError, asyncio.TimeoutError, ValueError) as exc:
                raise RuntimeError(f"{service} did not accept the fault: {exc}") from None
            if status != 200:
                raise ValueError(f"{service} refused fault {fault!r}: HTTP {status} {body.strip()[:300]}")
            result = {"fault": fault, "service": service, "pid": runner.pid, "answer": json.loads(body or "{}")}
        await self._acknowledged(Event("chaos", service, f"chaos: {fault} caused in {service}", result))
        return result

    async def logs(self, service: str, lines: int = 50) -> list[str]:
        self.config.service(service)
        runner = self.runners.get(service)
        return runner.sink.tail(int(lines)) if runner else []

    async def recent_events(self, limit: int = 50, service: str | None = None) -> list[dict[str, Any]]:
        assert self.store is not None
        where, params = ("WHERE service = ?", [service]) if service else ("", [])
        rows = await self.store.fetch(
            f"SELECT id, ts, kind, service, message, data_json FROM events {where} ORDER BY id DESC LIMIT ?",
            (*params, int(limit)),
        )
        return [dict(r) | {"data": json.loads(r["data_json"])} for r in rows]

    async def list_incidents(
        self, open_only: bool = False, service: str | None = None, pattern: str | None = None,
        since: float | None = None, limit: int = 50, before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        assert self.store is not None
        sql, params = incident_query(service=service, pattern=pattern, open_only=open_only, since=since, limit=limit, before_id=before_id)
        return [incident_row(r) for r in await self.store.fetch(sql, params)]

    async def incident(self, incident_id: int) -> dict[str, Any]:
        assert self.store is not None
        rows = await self.list_incidents(limit=1, before_id=int(incident_id) + 1)
        if not rows or rows[0]["id"] != int(incident_id):
            raise KeyError(f"no incident #{incident_id}")
        events = await self.store.fetch(
            "SELECT ts, kind, message, data_json FROM incident_events WHERE incident_id = ? ORDER BY ts, id", (int(incident_id),)
        )
        return rows[0] | {"timeline": [dict(e) | {"data": json.loads(e["data_json"])} for e in events]}

    async def acknowledge(self, incident_id: int, by: str = "operator") -> dict[str, Any]:
        assert self.incidents is not None
        await self.incidents.acknowledge(int(incident_id), by)
        await self._emit(Event("incident_acknowledged", None, f"incident #{incident_id} acknowledged by {by}", {"incident": int(incident_id)}))
        return await self.incident(incident_id)

    async def silence(self, service: str, duration_s: float, reason: str = "", by: str = "operator") -> dict[str, Any]:
        assert self.incidents is not None
        if service != HOST:
            self._service_config(service)
        duration = float(duration_s)
        if not 0 < duration <= 7 * 86400:
            raise ValueError("a silence lasts more than 0 seconds and at most 7 days")
        until = time.time() + duration
        silence = await self.incidents.silence(service, until, reason or "no reason given", by)
        await self._acknowledged(Event("silenced", service if service != HOST else None, f"{service} silenced for {duration:g}s by {by}: {silence.reason}", {"until": until}))
        return {"service": service, "until": until, "reason": silence.reason}

    async def unsilence(self, service: str, by: str = "operator") -> dict[str, Any]:
        assert self.incidents is not None
        removed = await self.incidents.unsilence(service)
        if removed:
            await self._acknowledged(Event("unsilenced", service if service != HOST else None, f"{service} silence lifted by {by}"))
        return {"service": service, "removed": removed}

    async def silences(self) -> list[dict[str, Any]]:
        assert self.incidents is not None
        now = time.time()
        return [{"service": s.service, "until": s.until, "reason": s.reason} for s in self.incidents.silences.values() if s.until > now]

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)

        async def iterate() -> AsyncIterator[Event]:
            while True:
                event = await queue.get()
                yield event
                if event.kind == "engine_closed":
                    return

        try:
            yield iterate()
        finally:
            self._subscribers.discard(queue)

    # --- scanning -----------------------------------------------------------------------------------

    async def _scan_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.scan()
            except Exception as exc:  # a failed scan must not end supervision
                await self._emit(Event("scan_failed", None, f"scan failed: {exc!r}"))
            self._wake.clear()
            remaining = self.interval - (time.monotonic() - started)
            if remaining > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)

    def wake(self) -> None:
        self._wake.set()

    async def scan(self) -> None:
        """Probe every service once: process trees and ports in a thread, health checks concurrently."""
        targets = {name: (r.identity if r.alive else None) for name, r in self.runners.items()}
        probe = asyncio.to_thread(self._probe_blocking, targets)
        checks = asyncio.gather(*(self._check(svc) for svc in self.config.services))
        (facts, ports, host), healths = await asyncio.gather(probe, checks)
        now = time.time()
        rows = []
        for svc, health in zip(self.config.services, healths):
            runner = self.runners.get(svc.name)
            state = runner.state if runner else (ServiceState.UNMANAGED)
            if runner is None or runner.alive:
                self.health[svc.name] = health
            errors = runner.sink.error_lines if runner else 0
            sample = ServiceSample(svc.name, now, str(state), facts.get(svc.name), ports.get(svc.name), health, errors)
            if runner is not None and runner.alive and health is not None and health.ok:
                runner.healthy_since_start = True
            self.samples[svc.name] = sample
            self.history[svc.name].append(sample)
            rows.append(_sample_row(sample))
        self.host = host
        self.host_history.append(host)
        self.scans += 1
        self.last_scan_at = now
        assert self.store is not None
        self._background_write(self.store.submit_many(SAMPLE_INSERT, rows))
        self._background_write(
            self.store.submit(
                "INSERT INTO host_samples(ts, cpu_percent, mem_percent, mem_available, load1, disk_percent, disk_free) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (host.ts, host.cpu_percent, host.mem_percent, host.mem_available, host.load1, host.disk_percent, host.disk_free),
            )
        )
        if now - self._last_prune > PRUNE_EVERY:
            self._last_prune = now
            cutoff = now - self.config.settings.retention_hours * 3600
            self._background_write(self.store.submit("DELETE FROM samples WHERE ts < ?", (cutoff,)))
            self._background_write(self.store.submit("DELETE FROM host_samples WHERE ts < ?", (cutoff,)))
        await self.detect(host=True)
        await self._emit(Event("scan", None, f"scan {self.scans} done", {"scans": self.scans}))

    # --- detection ----------------------------------------------------------------------------------

    async def detect(self, names: list[str] | None = None, host: bool = False) -> None:
        """One detection pass: findings -> diagnoses -> incidents. Passes never interleave, so an
        incident is opened once even when an exit and a scan ask at the same moment."""
        if self.incidents is None:
            return
        async with self._detect_lock:
            now = time.time()
            statuses = {svc.name: self._status(svc, now) for svc in self.config.services}
            self._track_downtime(statuses, now)
            names = names if names is not None else [svc.name for svc in self.config.services]
            findings = []
            for name in names:
                svc = self.config.service(name)
                if not self.history[name] and not self.exit_history[name]:
                    continue  # nothing seen yet
                findings += detect_service(self._view(svc, statuses, now), lambda pid, svc=svc: self._params(svc, pid), now)
            scope = set(names)
            if host and self.host_history:
                findings += detect_host(HostView(list(self.host_history)), lambda pid: self._params(None, pid), now)
                scope.add(HOST)
            diagnoses = diagnose(findings, self._belief)
            changes = await self.incidents.record(diagnoses, scope, now)
        for change in changes:
            data = {"incident": change.incident_id, "pattern": change.pattern, "service": change.service}
            # The event log's service column names configured services; host incidents have none.
            service = None if change.service == HOST else change.service
            await self._emit(Event(f"incident_{change.kind}", service, change.message, data))
        if self.healer is not None and not self._closing:
            for change in changes:
                if change.kind == "resolved" and change.incident_id is not None:
                    await self.healer.incident_resolved(change.incident_id)
            await self.healer.consider(diagnoses)

    def _belief(self, pattern: str) -> float | None:
        """What was learned about the usual fix of a pattern: it moves the diagnosis's confidence."""
        return self.healer.learning.mean_for_pattern(pattern) if self.healer else None

    def _params(self, svc: ServiceConfig | None, pattern: str) -> dict[str, float]:
        return pattern_params(pattern, self.config.settings.pattern_overrides(), svc.pattern_overrides() if svc else None)

    def _view(self, svc: ServiceConfig, statuses: dict[str, ServiceStatus], now: float) -> ServiceView:
        runner = self.runners.get(svc.name)
        status = statuses[svc.name]
        deps = {
            name: DependencyState(bool(statuses[name].healthy), statuses[name].state, self._down_since.get(name))
            for name in svc.depends_on
            if name in statuses
        }
        return ServiceView(
            config=svc,
            state=status.state,
            samples=list(self.history[svc.name]),
            exits=list(self.exit_history[svc.name]),
            started_at=runner.started_at if runner and runner.alive else None,
            healthy_since_start=runner.healthy_since_start if runner else bool(status.healthy),
            log_tail=runner.sink.tail(20) if runner else [],
            recent_errors=list(runner.sink.recent_errors) if runner else [],
            dependencies=deps,
        )

    def _track_downtime(self, statuses: dict[str, ServiceStatus], now: float) -> None:
        for name, status in statuses.items():
            if status.healthy:
                self._down_since.pop(name, None)
            else:
                self._down_since.setdefault(name, now)

    async def _after_exit(self, name: str) -> None:
        """Look at the port right away: whether someone else holds it decides between "crashed" and
        "could not bind", and the next scan may be a long way off."""
        svc = self.config.service(name)
        if svc.port is not None:
            _, ports, _ = await asyncio.to_thread(self._probe_blocking, {}, {name})
            runner = self.runners[name]
            errors = runner.sink.error_lines
            self.history[name].append(ServiceSample(name, time.time(), str(runner.state), None, ports.get(name), None, errors))
        await self.detect([name])

    def detect_soon(self, name: str) -> None:
        if not self._closing and self._opened:
            self._spawn_background(self.detect([name]))

    def _probe_blocking(self, targets: dict[str, Any], only: set[str] | None = None) -> tuple[dict[str, Any], dict[str, Any], HostSample]:
        table = ConnectionTable.read()
        facts: dict[str, Any] = {}
        ports: dict[str, Any] = {}
        for svc in self.config.services:
            if only is not None and svc.name not in only:
                continue
            identity = targets.get(svc.name)
            if identity is not None:
                facts[svc.name] = self._prober.tree(identity.pid, identity.create_time, table)
            elif not svc.managed and svc.port is not None:
                # Monitor-only: the service is whoever listens on its port.
                holders = [p for p in table.listeners.get(svc.port, []) if p is not None]
                facts[svc.name] = self._prober.tree(holders[0], None, table) if holders else None
            if svc.port is not None:
                tree = facts.get(svc.name)
                mine = set(tree.pids) if tree else set()
                runner = self.runners.get(svc.name)
                if runner is not None:
                    mine.update(pid for pid, _ in runner.previous)
                ports[svc.name] = port_facts(svc.port, table, mine)
        self._prober.forget_dead({p for f in facts.values() if f for p in f.pids})
        return facts, ports, host_sample(self.db_path.parent)

    async def _check(self, svc: ServiceConfig) -> HealthResult | None:
        runner = self.runners.get(svc.name)
        if runner is not None and not runner.alive:
            return None
        if self._throttled.get(svc.name, 0) > time.time() and self.scans % THROTTLE_EVERY:
            return self.health.get(svc.name)  # throttled: the last answer stands for this scan
        return await health_check(svc.port, svc.health)

    # --- starting and restarting --------------------------------------------------------------------

    async def _start_and_wait(self, name: str) -> None:
        runner = self.runners[name]
        self.health[name] = None
        if not runner.spawn():
            await self._emit(Event("spawn_failed", name, runner.spawn_error or f"{name} could not be started"))
            # A command that cannot even be spawned is a start-up failure, diagnosed and healed as one.
            info = ExitInfo(time.time(), 127, None, False, 0.0, False)
            runner.last_exit = info
            self.exit_history[name].append(info)
            self._short_runs[name] = restart_policy.consecutive_short_runs(self._short_runs.get(name, 0), 0.0)
            if self._opened and not self._closing:
                self._spawn_background(self._after_exit(name))
            return
        identity = runner.identity
        assert identity is not None and self.store is not None
        self._background_write(
            self.store.submit(
                "INSERT INTO owned_processes(run_id, service, pid, create_time, cmdline, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                (self.run_id, name, identity.pid, identity.create_time, dumps(list(identity.cmdline)), runner.started_at),
            )
        )
        await self._emit(Event("started", name, f"{name} started as pid {identity.pid}", {"pid": identity.pid}))
        await self._wait_ready(runner)

    async def _wait_ready(self, runner: ServiceRunner) -> None:
        svc = runner.config
        started = time.monotonic()
        deadline = started + svc.start_grace
        while runner.alive and runner.state is ServiceState.STARTING:
            result = await health_check(svc.port, svc.health)
            self.health[svc.name] = result
            if result is None or result.ok:
                runner.healthy_since_start = True
                runner.set_state(ServiceState.RUNNING)
                self._mark_healthy_config(svc)
                self.detect_soon(svc.name)  # a crash incident can close the moment the service is back
                return
            if time.monotonic() >= deadline:
                # Not ready within its grace: it counts as running and its health speaks for itself.
                runner.set_state(ServiceState.RUNNING)
                await self._emit(Event("start_grace_expired", svc.name, f"{svc.name} not healthy {svc.start_grace:g}s after start: {result.error}"))
                return
            fast = time.monotonic() - started < READY_FAST_FOR
            await asyncio.sleep(READY_POLL_FAST if fast else READY_POLL)

    def _on_exit(self, runner: ServiceRunner, info: ExitInfo) -> None:
        name = runner.name
        self.health[name] = None
        assert self.store is not None
        self._background_write(
            self.store.submit(
                "UPDATE owned_processes SET ended_at = ?, exit_code = ?, exit_signal = ? WHERE run_id = ? AND service = ? AND ended_at IS NULL",
                (info.ts, info.code, info.signal, self.run_id, name),
            )
        )
        kind = "exited" if info.expected else "crashed"
        self._spawn_background(self._emit(Event(kind, name, f"{name} {info.describe()}", to_jsonable(info))))
        if info.expected or self._closing:
            return
        self._short_runs[name] = restart_policy.consecutive_short_runs(self._short_runs.get(name, 0), info.runtime)
        # Down and not yet being restarted: the healer decides what happens next, through the guardians.
        runner.set_state(ServiceState.FAILED)
        self.exit_history[name].append(info)
        if not self._closing and self._opened:
            self._spawn_background(self._after_exit(name))

    # --- what the healer's actions do ----------------------------------------------------------------

    def owned_pids(self) -> set[int]:
        """Every process that belongs to a service Aurora runs: the trees and process groups it started."""
        owned: set[int] = set()
        for name, runner in self.runners.items():
            if runner.alive and runner.pid is not None:
                owned.add(runner.pid)
                sample = self.samples.get(name)
                if sample is not None and sample.process is not None and sample.process.pid == runner.pid:
                    owned.update(sample.process.pids)
                    owned.update(sample.process.orphans)
        return owned

    def status_of(self, name: str) -> ServiceStatus | None:
        try:
            return self._status(self.config.service(name), time.time())
        except KeyError:
            return None

    def short_runs(self, name: str) -> int:
        return self._short_runs.get(name, 0)

    async def probe_service(self, name: str) -> None:
        """A scan of one service, now (verification and re-checks cannot wait for the next scan)."""
        svc = self.config.service(name)
        runner = self.runners.get(name)
        targets = {name: runner.identity if runner and runner.alive else None}
        (facts, ports, _), health = await asyncio.gather(
            asyncio.to_thread(self._probe_blocking, targets, {name}), self._check(svc)
        )
        if runner is None or runner.alive:
            self.health[name] = health
        if runner is not None and runner.alive and health is not None and health.ok:
            runner.healthy_since_start = True
        state = runner.state if runner else ServiceState.UNMANAGED
        errors = runner.sink.error_lines if runner else 0
        sample = ServiceSample(name, time.time(), str(state), facts.get(name), ports.get(name), health, errors)
        self.samples[name] = sample
        self.history[name].append(sample)
        await self.detect([name])

    async def heal_restart(self, name: str) -> str:
        runner = self._managed(name)
        if runner.alive:
            await runner.stop()
            runner.restarts += 1
            await self._start_and_wait(name)
            return f"{name} restarted as pid {runner.pid}"
        return await self.heal_start(name)

    async def heal_start(self, name: str) -> str:
        """Start a service that is down, after the back-off its recent short runs call for."""
        runner = self._managed(name)
        if runner.alive:
            return f"{name} already running as pid {runner.pid}"
        delay = restart_policy.restart_delay(runner.config.restart_delay, self._short_runs.get(name, 0))
        if delay > 0:
            runner.set_state(ServiceState.BACKOFF)
            await asyncio.sleep(delay)
        if runner.last_exit is not None and not runner.last_exit.expected:
            runner.restarts += 1  # a recovery; starting what an operator stopped is not a restart
        await self._start_and_wait(name)
        return f"{name} started as pid {runner.pid}" + (f" after {delay:.1f}s back-off" if delay else "")

    async def stop_runner(self, name: str) -> None:
        await self._managed(name).stop()
        self.health[name] = None

    async def backoff_until_stable(self, name: str) -> str:
        """Keep starting the service with growing back-off until it has run healthily for a while.
        It never gives up on its own; an operator's restart, stop or start, or the engine stopping,
        ends it."""
        runner = self._managed(name)
        tries = 0
        while True:
            if runner.alive:
                uptime = runner.uptime() or 0.0
                if runner.healthy_since_start and uptime >= restart_policy.SHORT_RUN:
                    return f"{name} stable for {uptime:.0f}s after {tries} back-off starts"
                await asyncio.sleep(0.25)
                continue
            delay = restart_policy.restart_delay(runner.config.restart_delay, max(2, self._short_runs.get(name, 0)))
            runner.set_state(ServiceState.BACKOFF)
            await self._emit(Event("backoff", name, f"{name} retried in {delay:.1f}s (back-off, attempt {tries + 1})", {"delay": delay}))
            await asyncio.sleep(delay)
            tries += 1
            runner.restarts += 1
            await self._start_and_wait(name)

    async def reap_zombies(self, name: str) -> str:
        runner = self._managed(name)
        if not runner.alive:
            return f"{name} is not running; its zombies went with it"
        runner.send_signal(signal.SIGCHLD)
        await asyncio.sleep(1.0)
        left = await asyncio.to_thread(_zombie_children, runner.pid)
        if not left:
            return f"{name} reaped its zombies after SIGCHLD"
        await runner.stop()
        runner.restarts += 1
        await self._start_and_wait(name)
        return f"{name} ignored SIGCHLD ({left} zombies left): restarted so that they were reaped"

    def throttle_probes(self, name: str | None) -> str:
        if not name or name == HOST:
            for svc in self.config.services:
                self._throttled[svc.name] = time.time() + THROTTLE_FOR
            return f"health probes of every service throttled to one scan in {THROTTLE_EVERY} for {THROTTLE_FOR / 60:.0f} min"
        self._throttled[name] = time.time() + THROTTLE_FOR
        return f"{name}'s health probes throttled to one scan in {THROTTLE_EVERY} for {THROTTLE_FOR / 60:.0f} min"

    def rotate_logs(self) -> str:
        for runner in self.runners.values():
            runner.sink.rotate_now()
        return f"rotated the logs of {len(self.runners)} services"

    async def rollback(self, name: str) -> str:
        """Restart the service with the last other configuration it ran healthily with."""
        runner = self._managed(name)
        assert self.store is not None
        current = _config_key(runner.config)
        row = await self.store.fetch_one(
            "SELECT config_json FROM service_configs WHERE service = ? AND config_json != ? AND last_healthy_at IS NOT NULL "
            "ORDER BY last_healthy_at DESC LIMIT 1",
            (name, current),
        )
        if row is None:
            raise RuntimeError(f"no earlier configuration of {name} that ran healthily is recorded")
        previous = _config_from_key(row["config_json"])
        await runner.stop()
        runner.config = previous
        runner.restarts += 1
        await self._start_and_wait(name)
        return f"{name} rolled back to its previous configuration ({' '.join(previous.command)[:80]})"

    def _mark_healthy_config(self, svc: ServiceConfig) -> None:
        if self.store is not None:
            self._background_write(self.store.submit(
                "UPDATE service_configs SET last_healthy_at = ? WHERE service = ? AND config_json = ?",
                (time.time(), svc.name, _config_key(svc)),
            ))

    async def emit_acknowledged(self, event: Event) -> None:
        await self._acknowledged(event)

    def _on_state(self, runner: ServiceRunner, old: ServiceState, new: ServiceState) -> None:
        if self._opened:
            self._publish(Event("state", runner.name, f"{runner.name}: {old} -> {new}", {"from": str(old), "to": str(new)}))

    async def _stop_stale_processes(self) -> None:
        """Stop what an engine that died without cleaning up left running, identity permitting."""
        assert self.store is not None
        rows = await self.store.fetch("SELECT id, service, pid, create_time, cmdline FROM owned_processes WHERE ended_at IS NULL")
        for row in rows:
            pid, create_time, cmdline = row["pid"], row["create_time"], json.loads(row["cmdline"])
            alive = False
            try:
                proc = psutil.Process(pid)
                alive = abs(proc.create_time() - create_time) < 0.05 and proc.cmdline() == cmdline and pid != os.getpid()
            except psutil.Error:
                pass
            if alive:
                signal_group(pid, signal.SIGTERM)
                signal_group(pid, signal.SIGCONT)
                with contextlib.suppress(psutil.Error):
                    await asyncio.to_thread(_wait_gone, pid, 5.0)
                signal_group(pid, signal.SIGKILL)
                await self._acknowledged(
                    Event("stale_stopped", row["service"], f"stopped pid {pid} of {row['service']} left by an engine that did not shut down cleanly", {"pid": pid})
                )
            await self.store.write("UPDATE owned_processes SET ended_at = ? WHERE id = ?", (time.time(), row["id"]))

    # --- helpers ------------------------------------------------------------------------------------

    def _service_config(self, service: str) -> ServiceConfig:
        try:
            return self.config.service(service)
        except KeyError:
            raise KeyError(f"unknown service {service!r}; known: {', '.join(s.name for s in self.config.services)}") from None

    def _managed(self, service: str) -> ServiceRunner:
        svc = self._service_config(service)
        if not svc.managed:
            raise ValueError(f"{service} is monitor-only (managed = false): Aurora does not start, stop or signal it")
        return self.runners[service]

    def _status(self, svc: ServiceConfig, now: float) -> ServiceStatus:
        runner = self.runners.get(svc.name)
        sample = self.samples.get(svc.name)
        health = self.health.get(svc.name)
        pid = runner.pid if runner and runner.alive else None
        facts = sample.process if sample else None
        if runner is None:
            pid = facts.pid if facts else None
        if facts is not None and facts.pid != pid:
            facts = None  # the last sample describes an earlier process
        alive = pid is not None
        healthy = alive and (health.ok if health is not None else svc.health.kind == "none" or svc.port is None)
        return ServiceStatus(
            name=svc.name,
            state=str(runner.state) if runner else (ServiceState.RUNNING if alive else ServiceState.UNMANAGED).value,
            managed=svc.managed,
            pid=pid,
            port=svc.port,
            healthy=bool(healthy),
            restarts=runner.restarts if runner else 0,
            uptime=runner.uptime(now) if runner else None,
            cpu=facts.cpu_percent if facts else None,
            rss=facts.rss if facts else None,
            started_at=runner.started_at if runner and runner.alive else None,
            latency_ms=health.latency_ms if health else None,
            health_error=health.error if health else None,
            last_exit=runner.last_exit if runner else None,
            depends_on=list(svc.depends_on),
        )

    def _action_result(self, service: str) -> dict[str, Any]:
        status = self._status(self.config.service(service), time.time())
        return {"service": service, "state": status.state, "pid": status.pid, "healthy": status.healthy}

    def _publish(self, event: Event) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # a slow reader loses the oldest event, never the engine's time
            queue.put_nowait(event)

    async def _emit(self, event: Event) -> None:
        self._publish(event)
        if event.kind not in TRANSIENT and self.store is not None:
            self._background_write(self._event_write(event))

    async def _acknowledged(self, event: Event) -> None:
        """Publish an event and return only once it is committed to the database."""
        self._publish(event)
        assert self.store is not None
        await self._event_write(event)

    def _event_write(self, event: Event) -> asyncio.Future[int | None]:
        assert self.store is not None
        return self.store.submit(
            "INSERT INTO events(ts, run_id, kind, service, message, data_json) VALUES (?, ?, ?, ?, ?, ?)",
            (event.ts, self.run_id, event.kind, event.service, event.message, dumps(event.data)),
        )

    def _background_write(self, future: asyncio.Future[Any]) -> None:
        # Nobody awaits routine writes, but a failure must not vanish silently.
        future.add_done_callback(_report_write_failure)

    def _spawn_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


SAMPLE_INSERT = (
    "INSERT INTO samples(service, ts, state, pid, status, cpu_percent, rss, fds, threads, connections, children, zombies, "
    "port_listening, port_holder_pid, healthy, http_status, latency_ms, health_error, data_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sample_row(s: ServiceSample) -> tuple[Any, ...]:
    p, port, h = s.process, s.port, s.health
    extra = {"holder_cmdline": port.holder_cmdline, "holder_username": port.holder_username} if port and port.holder_pid else {}
    return (
        s.service, s.ts, s.state,
        p.pid if p else None, p.status if p else None, p.cpu_percent if p else None, p.rss if p else None,
        p.fds if p else None, p.threads if p else None, p.connections if p else None,
        p.children if p else None, p.zombies if p else None,
        int(port.listening) if port else None, port.holder_pid if port else None,
        None if h is None or h.ok is None else int(h.ok), h.status_code if h else None,
        h.latency_ms if h else None, h.error if h else None, dumps(extra),
    )


def _config_key(svc: ServiceConfig) -> str:
    return dumps(to_jsonable(svc))


def _config_from_key(text: str) -> ServiceConfig:
    from .config import HealthCheck, Limits

    data = json.loads(text)
    data["command"] = tuple(data["command"])
    data["env"] = tuple(tuple(pair) for pair in data.get("env", ()))
    data["depends_on"] = tuple(data.get("depends_on", ()))
    data["health"] = HealthCheck(**data["health"])
    data["limits"] = Limits(**data["limits"])
    data["patterns"] = tuple((p, tuple(tuple(kv) for kv in params)) for p, params in data.get("patterns", ()))
    return ServiceConfig(**data)


def _zombie_children(pid: int) -> int:
    try:
        return sum(1 for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return 0


def _report_write_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        import sys

        print(f"aurora: store write failed: {future.exception()!r}", file=sys.stderr)


def _wait_gone(pid: int, timeout: float) -> None:
    psutil.Process(pid).wait(timeout)
