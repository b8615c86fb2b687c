"""The monitor: the scan loop, probing, and detection.

Samples are built on one path (:meth:`Monitor._take_samples`), whether a full scan asks, a re-check
before a fix, a verification after one, or a process exit. Blocking work (psutil, /proc) runs in a
thread; health checks run concurrently on the loop. Scans never overlap: the next is scheduled after
the previous one finished. Detection passes never interleave, so an incident opens once even when an
exit and a scan ask at the same moment.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Awaitable, Callable

from .config import Config, ServiceConfig
from .detect import DependencyState, HostView, ServiceView, detect_host, detect_service
from .detect_storage import detect_storage
from .diagnose import Diagnosis, diagnose
from .events import EventBus
from .fleet import THROTTLE_EVERY, Fleet
from .incidents import Change
from .lineage import owner_of
from .monitor_only import locate, pid_change
from .model import Event, HealthResult, HostSample, ServiceSample, ServiceState, ServiceStatus, StorageProblem
from . import procfs
from .patterns import HOST, pattern_params
from .health import health_check
from .probes import ConnectionTable, ProcessProber, host_sample, port_facts
from .records import Records

log = logging.getLogger(__name__)

PRUNE_EVERY = 600.0
# Samples kept in memory per service for detection (the store keeps the full history).
HISTORY = 120
# Passes one asking task runs before it hands over to a fresh one.
ASKED_PASSES = 100

AfterDetect = Callable[[list[Change], list[Diagnosis]], Awaitable[None]]


class Monitor:
    def __init__(self, config: Config, fleet: Fleet, records: Records, bus: EventBus, db_path: Path) -> None:
        self.config = config
        self.fleet = fleet
        self.records = records
        self.bus = bus
        self.db_path = db_path
        self.interval = config.settings.interval
        self.samples: dict[str, ServiceSample] = {}
        self.history: dict[str, deque[ServiceSample]] = {s.name: deque(maxlen=HISTORY) for s in config.services}
        # The newest samples of the process each service runs now, kept as samples arrive (detection
        # starts from them; walking the history back on every pass cost more than most detectors).
        self.runs: dict[str, deque[ServiceSample]] = {s.name: deque(maxlen=HISTORY) for s in config.services}
        self._params_cache: dict[tuple[str | None, str], dict[str, float]] = {}
        self.host: HostSample | None = None
        self.host_history: deque[HostSample] = deque(maxlen=HISTORY)
        self.scans = 0
        self.last_scan_at: float | None = None
        # Whoever acts on what was detected (the healer); None while the engine is closing.
        self.after_detect: AfterDetect | None = None
        self._down_since: dict[str, float] = {}
        # How each monitor-only service's process was found at the last probe, or why it was not.
        self.lookups: dict[str, str] = {}
        self._detect_lock = asyncio.Lock()
        self._service_names = {s.name for s in config.services}
        self._prober = ProcessProber()
        self._wake = asyncio.Event()
        self._last_prune = 0.0
        self._background: set[asyncio.Task[Any]] = set()
        self._asked: dict[str, bool] = {}  # service -> whether to probe it first, for the next asked pass
        self._asking: asyncio.Future[None] | None = None
        fleet.on_down = self._service_down
        fleet.on_ready = self.detect_soon

    async def close(self) -> None:
        self.after_detect = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # --- the loop -----------------------------------------------------------------------------------

    async def scan_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.scan()
            except Exception as exc:  # a failed scan must not end supervision
                log.exception("scan failed")
                self.bus.emit(Event("scan_failed", None, f"scan failed: {exc!r}"))
            self._wake.clear()
            remaining = self.interval - (time.monotonic() - started)
            if remaining > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)

    def wake(self) -> None:
        self._wake.set()

    async def scan(self) -> None:
        """Probe every service once, store the samples, and detect."""
        self.fleet.retry_logs()  # a log that failed is tried again even if its service is quiet
        samples, host = await self._take_samples(None)
        assert host is not None  # a full scan looks at the host too
        self.host = host
        self.host_history.append(host)
        self.scans += 1
        self.last_scan_at = host.ts
        self.records.add_samples(samples, host)
        if host.ts - self._last_prune > PRUNE_EVERY:
            self._last_prune = host.ts
            self.records.prune_samples(host.ts - self.config.settings.retention_hours * 3600)
        await self.detect(host=True)
        self.bus.emit(Event("scan", None, f"scan {self.scans} done", {"scans": self.scans}))

    async def probe_service(self, name: str) -> None:
        """A scan of one service, now (verification and re-checks cannot wait for the next scan)."""
        await self._take_samples({name})
        await self.detect([name])

    async def _take_samples(self, only: set[str] | None) -> tuple[list[ServiceSample], HostSample | None]:
        """Process trees and ports in a thread, health checks concurrently; the one place samples are made."""
        services = [svc for svc in self.config.services if only is None or svc.name in only]
        targets = {svc.name: (r.identity if (r := self.fleet.runners.get(svc.name)) and r.alive else None) for svc in services}
        began = {name: (r.state, r.pid) for name, r in self.fleet.runners.items()}
        (facts, ports, host), healths = await asyncio.gather(
            asyncio.to_thread(self._probe_blocking, targets, only),
            asyncio.gather(*(self._check(svc) for svc in services)),
        )
        now = time.time()
        taken = []
        for svc, health in zip(services, healths):
            runner = self.fleet.runners.get(svc.name)
            was, pid = began.get(svc.name, (ServiceState.UNMANAGED, None))
            # An answer to a check begun during a start that has ended since (its own readiness check
            # decided it), or on an earlier process, does not stand for what runs now.
            current = runner is None or (
                runner.alive and runner.pid == pid and (was is not ServiceState.STARTING or runner.state is ServiceState.STARTING)
            )
            if current:
                self.fleet.health[svc.name] = health
            if current and runner is not None and health is not None and health.ok:
                runner.healthy_since_start = True
            state = (was if was is ServiceState.STARTING else runner.state) if runner else ServiceState.UNMANAGED
            errors = runner.sink.error_lines if runner else 0
            sample = ServiceSample(svc.name, now, str(state), facts.get(svc.name), ports.get(svc.name), health, errors)
            if runner is None:
                self._note_outside_restart(self.samples.get(svc.name), sample)
            self.samples[svc.name] = sample
            self.history[svc.name].append(sample)
            self._extend_run(svc.name, sample)
            taken.append(sample)
        return taken, host

    def _extend_run(self, name: str, sample: ServiceSample) -> None:
        run = self.runs[name]
        if sample.process is None:
            run.clear()
            return
        if run and run[-1].process is not None and run[-1].process.pid != sample.process.pid:
            run.clear()  # another process: a new series
        run.append(sample)

    def _note_outside_restart(self, previous: ServiceSample | None, sample: ServiceSample) -> None:
        # Someone else restarted a monitor-only service: worth a record, not an incident.
        change = pid_change(previous, sample)
        if change is not None:
            old, new = change
            message = f"{sample.service} now runs as pid {new} (was {old}): restarted outside Aurora"
            self.bus.emit(Event("pid_changed", sample.service, message, {"old_pid": old, "new_pid": new}))

    def _service_down(self, name: str) -> None:
        """Look at the port right away: whether someone else holds it decides between "crashed" and
        "could not bind", and the next scan may be a long way off."""
        self._ask(name, probe=self.config.service(name).port is not None)

    def detect_soon(self, name: str) -> None:
        if self.fleet.active:
            self._ask(name, probe=False)

    def _ask(self, name: str, probe: bool) -> None:
        """A pass for ``name`` soon. What is asked while a pass runs is gathered into the next one, so
        ten services dying at once make two passes, not ten queued one behind the other."""
        self._asked[name] = self._asked.get(name, False) or probe
        if self._asking is None or self._asking.done():
            self._start_asking()

    def _start_asking(self) -> None:
        self._asking = asyncio.ensure_future(self._asked_passes())
        self._background.add(self._asking)
        self._asking.add_done_callback(self._background.discard)

    async def _asked_passes(self) -> None:
        for _ in range(ASKED_PASSES):  # bounded: each pass takes everything asked so far
            if not self._asked:
                return
            asked, self._asked = self._asked, {}
            try:
                probe = {name for name, wanted in asked.items() if wanted}
                if probe:
                    await self._take_samples(probe)
                await self.detect(list(asked))
            except Exception:  # one failed pass must not leave the rest unlooked at
                log.exception("detection pass for %s failed", ", ".join(asked))
        if self._asked:
            self._start_asking()  # what is still asked goes to a fresh task

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _probe_blocking(self, targets: dict[str, Any], only: set[str] | None) -> tuple[dict[str, Any], dict[str, Any], HostSample | None]:
        table = ConnectionTable.read(self._prober.owners)
        # The engine's children that lead no service: daemons re-parented to it (it is their subreaper).
        leaders = {r.pid for r in self.fleet.runners.values()}
        adopted = [p for p in table.children.get(os.getpid(), ()) if p not in leaders]
        facts: dict[str, Any] = {}
        ports: dict[str, Any] = {}
        for svc in self.config.services:
            if only is not None and svc.name not in only:
                continue
            identity = targets.get(svc.name)
            runner = self.fleet.runners.get(svc.name)
            if identity is not None:
                facts[svc.name] = tree = self._prober.tree(identity.pid, identity.create_time, table)
                if tree is not None and runner is not None and runner.descendants is not None:
                    # Descendants that left the process group or session are orphans all the same.
                    tree.orphans += runner.descendants.strays({tree.pid, *tree.pids, *tree.orphans}, adopted)
            elif not svc.managed:
                pid, self.lookups[svc.name] = locate(svc, table.holders)
                facts[svc.name] = self._prober.tree(pid, None, table) if pid is not None else None
            if svc.port is not None:
                tree = facts.get(svc.name)
                mine = set(tree.pids) if tree else set()
                if runner is not None:
                    mine.update(pid for pid, _ in runner.previous)
                    # Workers of a dead master still holding the port are the service's own, not a stranger.
                    if runner.descendants is not None:
                        mine.update(p for p in table.holders(svc.port) if p is not None and p not in mine and runner.descendants.owns(p))
                ports[svc.name] = port = port_facts(svc.port, table, mine)
                if port.holder_pid is not None and port.holder_is_service is False:
                    # Another Aurora engine's service (or another of ours) is no stale copy to kill.
                    owner = owner_of(port.holder_pid)
                    if owner is not None:
                        port.holder_engine, port.holder_service, port.holder_owner = owner.db or owner.key, owner.service, owner.describe()
        if only is not None:
            return facts, ports, None  # one service looked at: the others' CPU baselines and the host stand
        self._prober.forget_dead({p for f in facts.values() if f for p in f.pids})
        self._prober.owners.forget(table.listening)
        return facts, ports, host_sample(self.db_path.parent)

    async def _check(self, svc: ServiceConfig) -> HealthResult | None:
        runner = self.fleet.runners.get(svc.name)
        if runner is not None and not runner.alive:
            return None
        if self.fleet.is_throttled(svc.name, time.time()) and self.scans % THROTTLE_EVERY:
            return self.fleet.health.get(svc.name)  # throttled: the last answer stands for this scan
        return await health_check(svc.port, svc.health)

    # --- detection ----------------------------------------------------------------------------------

    async def detect(self, names: list[str] | None = None, host: bool = False) -> None:
        """One detection pass: findings -> diagnoses -> incidents, then the healer looks."""
        incidents = self.records.incidents
        async with self._detect_lock:
            now = time.time()
            full = names is None
            names = names if names is not None else [svc.name for svc in self.config.services]
            # A pass over a few services (an exit, a verification) needs only theirs and their
            # dependencies' statuses; a full pass looks at everyone, and keeps downtimes.
            wanted = self.config.services if full else [
                self.config.service(n) for n in dict.fromkeys(x for name in names for x in (name, *self.config.service(name).depends_on))
                if n in self._service_names
            ]
            statuses = {svc.name: self.status(svc, now) for svc in wanted}
            self._track_downtime(statuses, now)
            findings = []
            for name in names:
                svc = self.config.service(name)
                if (not self.history[name] and not self.fleet.exit_history[name]) or name in self.fleet.not_started:
                    continue  # nothing seen yet, or not started yet: waiting for its dependencies
                findings += detect_service(self._view(svc, statuses, now), lambda pattern, svc=svc: self._params(svc, pattern), now)
            scope = set(names)
            if host and self.host_history:
                view = HostView(list(self.host_history), self.storage_problems())
                findings += detect_host(view, lambda pid: self._params(None, pid), now)
                findings += detect_storage(view, lambda pid: self._params(None, pid), now)
                scope.add(HOST)
            diagnoses = diagnose(findings, self.records.learning.mean_for_pattern)
            changes = await incidents.record(diagnoses, scope, now)
        for change in changes:
            data = {"incident": change.incident_id, "pattern": change.pattern, "service": change.service}
            # The event log's service column names configured services; host incidents have none.
            self.bus.emit(Event(f"incident_{change.kind}", None if change.service == HOST else change.service, change.message, data))
        if self.after_detect is not None:
            await self.after_detect(changes, diagnoses)

    def _params(self, svc: ServiceConfig | None, pattern: str) -> dict[str, float]:
        # The config does not change under a running engine: each service's parameters are merged once.
        key = (svc.name if svc else None, pattern)
        params = self._params_cache.get(key)
        if params is None:
            params = self._params_cache[key] = pattern_params(
                pattern, self.config.settings.pattern_overrides(), svc.pattern_overrides() if svc else None,
            )
        return params

    def _view(self, svc: ServiceConfig, statuses: dict[str, ServiceStatus], now: float) -> ServiceView:
        runner = self.fleet.runners.get(svc.name)
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
            run=self.runs[svc.name],
            exits=list(self.fleet.exit_history[svc.name]),
            started_at=runner.started_at if runner and runner.alive else None,
            healthy_since_start=runner.healthy_since_start if runner else bool(status.healthy),
            log_tail=runner.sink.tail(20) if runner else [],
            recent_errors=list(runner.sink.recent_errors) if runner else [],
            dependencies=deps,
            lookup=self.lookups.get(svc.name, ""),
        )

    def _track_downtime(self, statuses: dict[str, ServiceStatus], now: float) -> None:
        for name, status in statuses.items():
            if status.healthy:
                self._down_since.pop(name, None)
            else:
                self._down_since.setdefault(name, now)

    # --- what the fleet looks like now --------------------------------------------------------------

    def status(self, svc: ServiceConfig, now: float) -> ServiceStatus:
        """Where ``svc`` stands now. Its pid and health come from the process the kernel shows now, not
        from the bookkeeping alone: a leader that is gone or a zombie (exited, its exit not collected
        yet) has no pid and is not healthy, whatever the last health answer said; a stopped one
        (SIGSTOP) keeps its pid and is not healthy, since it cannot answer anything."""
        runner = self.fleet.runners.get(svc.name)
        sample = self.samples.get(svc.name)
        health = self.fleet.health.get(svc.name)
        facts = sample.process if sample else None
        stat = runner.leader_stat() if runner is not None else None  # one look at /proc, used below
        leader_alive = stat is not None and stat.state not in procfs.ENDED_STATES
        if runner is not None:
            pid = runner.pid if leader_alive else None
        else:
            pid = facts.pid if facts and _still_there(facts.pid, facts.create_time) else None
            stat = procfs.read_stat(pid) if pid is not None else None
        if facts is not None and facts.pid != pid:
            facts = None  # the last sample describes an earlier process
        alive = pid is not None
        # No answer: for a managed service, whether this run has passed a check or, with nothing to
        # check, stayed up long enough (see Fleet._ready_when_settled); not yet known counts as not healthy.
        unanswered = runner.healthy_since_start if runner else svc.health.kind == "none" or svc.port is None
        healthy = alive and (health.ok if health is not None else unanswered)
        error = health.error if health else None
        if alive and stat is not None and stat.state in procfs.STOPPED_STATES:
            healthy, error = False, f"pid {pid} is stopped (SIGSTOP or a tracer): it cannot answer"
        elif runner is not None and not leader_alive and runner.exited_unreaped:
            error = f"pid {runner.pid} has exited; its exit is not collected yet"
        return ServiceStatus(
            name=svc.name,
            state=str(runner.state) if runner else (ServiceState.RUNNING if alive else ServiceState.UNMANAGED).value,
            managed=svc.managed,
            pid=pid,
            port=svc.port,
            healthy=bool(healthy),
            restarts=runner.restarts if runner else 0,
            uptime=max(0.0, now - runner.started_at) if leader_alive and runner.started_at is not None else None,
            cpu=facts.cpu_percent if facts else None,
            rss=facts.rss if facts else None,
            started_at=runner.started_at if leader_alive else None,
            latency_ms=health.latency_ms if health else None,
            health_error=error,
            last_exit=runner.last_exit if runner else None,
            depends_on=list(svc.depends_on),
            next_try_at=self.fleet.next_try.get(svc.name),
        )

    def storage_problems(self) -> list[StorageProblem]:
        """What Aurora cannot write right now: services' logs, then the database."""
        logs = [p for runner in self.fleet.runners.values() if (p := runner.sink.problem()) is not None]
        return logs + self.records.storage_problems()

    def status_of(self, name: str) -> ServiceStatus | None:
        try:
            return self.status(self.config.service(name), time.time())
        except KeyError:
            return None

    def owned_pids(self) -> set[int]:
        """Every process that belongs to a service Aurora runs: the trees and process groups it started."""
        owned: set[int] = set()
        for name, runner in self.fleet.runners.items():
            if runner.alive and runner.pid is not None:
                owned.add(runner.pid)
                sample = self.samples.get(name)
                if sample is not None and sample.process is not None and sample.process.pid == runner.pid:
                    owned.update(sample.process.pids)
                    owned.update(sample.process.orphans)
        return owned

    def exits_seen(self, name: str) -> int:
        return len(self.fleet.exit_history[name])


def _still_there(pid: int, create_time: float) -> bool:
    """Whether the process a sample saw still runs (not gone, not a zombie, the pid not reused)."""
    stat = procfs.read_stat(pid)
    return stat is not None and stat.state not in procfs.ENDED_STATES and abs(procfs.create_time(stat.starttime) - create_time) < 0.05
