"""The fleet: the runners of the managed services, their start-up in dependency order, the restart
policy, and every actuator a fix plan uses (restart, start, stop, back off, reap, throttle, rotate,
roll back).

Each :class:`~aurora_tui.core.supervisor.ServiceRunner` owns its state machine; the fleet decides when
its transitions happen. The fleet does not probe or detect: it tells whoever listens (the monitor)
that a service went down or became ready, through two callbacks.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import psutil

from . import reclaim, restart_policy
from .config import Config, ServiceConfig
from .events import EventBus
from .model import Event, ExitInfo, HealthResult, ProcessIdentity, ServiceState, to_jsonable
from .patterns import HOST
from .health import health_check
from .lineage import Lineage
from .records import Records
from .supervisor import KILL_WAIT, ServiceRunner

log = logging.getLogger(__name__)

# Readiness is polled quickly at first: the time from spawn to "healthy" is most of a recovery.
READY_POLL_FAST = 0.02
READY_POLL = 0.1
READY_FAST_FOR = 2.0
# A service whose probes are throttled is health-checked on one scan in this many.
THROTTLE_EVERY = 4
THROTTLE_FOR = 600.0
EXIT_HISTORY = 20
# How long a stale process from a dead engine gets to end after SIGTERM.
STALE_STOP_WAIT = 5.0
# How long reap_zombies gives a service to reap after SIGCHLD.
REAP_WAIT = 1.0
BACKOFF_POLL = 0.25
# How long to wait for a new leader's command line to become readable, and how often to look.
IDENTITY_WAIT = 2.0
IDENTITY_POLL = 0.005

ServiceCallback = Callable[[str], None]


def _ignore(name: str) -> None:
    return None


class Fleet:
    def __init__(self, config: Config, records: Records, bus: EventBus) -> None:
        self.config = config
        self.records = records
        self.bus = bus
        self.log_dir = Path(config.settings.log_dir)
        self.runners: dict[str, ServiceRunner] = {}
        # The last health answer per service (None: not known, or not running).
        self.health: dict[str, HealthResult | None] = {s.name: None for s in config.services}
        self.exit_history: dict[str, deque[ExitInfo]] = {s.name: deque(maxlen=EXIT_HISTORY) for s in config.services}
        self.throttled: dict[str, float] = {}
        self._short_runs: dict[str, int] = {}
        # When a service that is down will next be tried (a back-off, or a fix slowed by a rate limit).
        self.next_try: dict[str, float] = {}
        # Services with nothing to health-check, waiting to count as started (see _ready_when_settled).
        self._settling: dict[str, asyncio.TimerHandle] = {}
        # Set by whoever watches the fleet: a service went down / a service became ready.
        self.on_down: ServiceCallback = _ignore
        self.on_ready: ServiceCallback = _ignore
        self.lineage = Lineage(Path(config.settings.db))
        self.active = False  # False before the fleet starts and once it is closing: exits are then expected
        # Services the first start-up has not tried yet (waiting for their dependencies): nothing is
        # wrong with them, so nothing is detected about them.
        self.not_started: set[str] = set()

    def create_runners(self) -> None:
        for svc in self.config.services:
            if svc.managed:
                self.runners[svc.name] = ServiceRunner(svc, self.log_dir, self._on_exit, self._on_state, self.lineage.service(svc.name))

    def close_runners(self) -> None:
        for runner in self.runners.values():
            runner.close()
        self.lineage.close()

    # --- lookups ------------------------------------------------------------------------------------

    def service_config(self, service: str) -> ServiceConfig:
        try:
            return self.config.service(service)
        except KeyError:
            raise KeyError(f"unknown service {service!r}; known: {', '.join(s.name for s in self.config.services)}") from None

    def managed(self, service: str) -> ServiceRunner:
        svc = self.service_config(service)
        if not svc.managed:
            raise ValueError(f"{service} is monitor-only (managed = false): Aurora does not start, stop or signal it")
        return self.runners[service]

    def short_runs(self, name: str) -> int:
        return self._short_runs.get(name, 0)

    def is_throttled(self, name: str, now: float) -> bool:
        return self.throttled.get(name, 0.0) > now

    # --- the whole fleet ----------------------------------------------------------------------------

    async def start_all(self) -> None:
        """Start every managed service as soon as its own dependencies answer (or their start grace
        runs out), so dependants never start against a dependency that is not up, and one slow
        starter holds up only what depends on it."""
        self.active = True
        level = {name: i for i, names in enumerate(self.config.start_levels()) for name in names}
        tasks: dict[str, asyncio.Task[None]] = {}

        async def start_after_dependencies(name: str) -> None:
            # Only dependencies of an earlier level: a cycle in a hand-built config must not deadlock.
            waits = [tasks[d] for d in self.config.service(name).depends_on if d in tasks and level[d] < level[name]]
            if waits:
                await asyncio.wait(waits)  # not gather: a dependant cancelled must not cancel its dependency
            self.not_started.discard(name)
            if not self.runners[name].alive:  # an operator may have started it meanwhile
                await self.start_and_wait(name)

        self.not_started = {name for name in level if name in self.runners}
        for name in sorted(self.not_started, key=lambda n: level[n]):
            tasks[name] = asyncio.create_task(start_after_dependencies(name), name=f"start-{name}")
        await asyncio.gather(*tasks.values())

    async def stop_all(self) -> None:
        """Dependants first. Exits from here on are expected and nobody heals them."""
        self.active = False
        self._cancel_settling()
        for level in reversed(self.config.start_levels()):
            await asyncio.gather(*(self.runners[n].stop() for n in level if n in self.runners), return_exceptions=True)

    async def stop_stale_processes(self) -> None:
        """Stop everything an engine that died without cleaning up left running (see :mod:`.reclaim`),
        say exactly what, and close the records of the processes it never saw end."""
        rows = await self.records.unended_processes()
        recorded = [(service, identity) for _, service, identity in rows]
        leftovers = await asyncio.to_thread(lambda: reclaim.stop(reclaim.find(recorded, self.lineage), self.lineage, STALE_STOP_WAIT))
        for service, stopped in reclaim.report(leftovers).items():
            leaders = [x.pid for x in stopped if x.role == "leader"]
            what = ", ".join(x.describe() for x in stopped)
            count = f"{len(stopped)} process{'es' if len(stopped) != 1 else ''}"
            message = f"stopped {count} of {service} left by an engine that did not shut down cleanly: {what}"
            await self.bus.acknowledged(Event("stale_stopped", service if service in self.health else None, message, {
                "pid": leaders[0] if leaders else None, "pids": [x.pid for x in stopped],
                "commands": [list(x.cmdline) for x in stopped], "ended_by": [x.ended_by or "still running" for x in stopped],
            }))
        for row_id, _, _ in rows:
            await self.records.process_gone(row_id)

    # --- starting and exits -------------------------------------------------------------------------

    async def start_and_wait(self, name: str) -> None:
        runner = self.runners[name]
        self.health[name] = None
        self.next_try.pop(name, None)
        # A leader that just exited is collected first: a new one must not inherit its exit.
        await runner.reaped(KILL_WAIT)
        await runner.clear_descendants()
        if not runner.spawn():
            self.bus.emit(Event("spawn_failed", name, runner.spawn_error or f"{name} could not be started"))
            # A command that cannot even be spawned is a start-up failure, diagnosed and healed as one.
            info = ExitInfo(time.time(), 127, None, False, 0.0, False)
            runner.last_exit = info
            self.exit_history[name].append(info)
            self._short_runs[name] = restart_policy.consecutive_short_runs(self._short_runs.get(name, 0), 0.0)
            if self.active:
                self.on_down(name)
            return
        identity = await self._settled_identity(runner)
        self.records.process_started(name, identity, runner.started_at)
        self.bus.emit(Event("started", name, f"{name} started as pid {identity.pid}", {"pid": identity.pid}))
        await self._wait_ready(runner)

    async def _settled_identity(self, runner: ServiceRunner) -> ProcessIdentity:
        """The leader's identity once it has exec'd (see ServiceRunner.read_identity). One that has not
        within IDENTITY_WAIT is recorded without a command line or executable: its pid and exact start
        time, which exec does not change, still name it, where a command line read too early would
        name the engine's own python."""
        deadline = time.monotonic() + IDENTITY_WAIT
        settled = runner.read_identity()
        while not settled and runner.alive and time.monotonic() < deadline:
            await asyncio.sleep(IDENTITY_POLL)
            settled = runner.read_identity()
        assert runner.identity is not None  # set by a successful spawn
        if not settled and runner.alive:
            log.warning("%s: pid %d has not finished exec after %.1fs; recording it by pid and start time only",
                        runner.name, runner.identity.pid, IDENTITY_WAIT)
        return runner.identity

    async def _wait_ready(self, runner: ServiceRunner) -> None:
        svc = runner.config
        started = time.monotonic()
        deadline = started + svc.start_grace
        while runner.alive and runner.state is ServiceState.STARTING:
            result = await health_check(svc.port, svc.health)
            self.health[svc.name] = result
            if result is None:
                self._ready_when_settled(runner)
                return
            if result.ok:
                self._ready(runner)
                return
            if time.monotonic() >= deadline:
                # Not ready within its grace: it counts as running and its health speaks for itself.
                runner.set_state(ServiceState.RUNNING)
                self.bus.emit(Event("start_grace_expired", svc.name, f"{svc.name} not healthy {svc.start_grace:g}s after start: {result.error}"))
                return
            fast = time.monotonic() - started < READY_FAST_FOR
            await asyncio.sleep(READY_POLL_FAST if fast else READY_POLL)

    def _ready(self, runner: ServiceRunner) -> None:
        runner.healthy_since_start = True
        runner.set_state(ServiceState.RUNNING)
        self.records.mark_healthy_config(runner.config)
        self.on_ready(runner.name)  # a crash incident can close the moment the service is back

    def _ready_when_settled(self, runner: ServiceRunner) -> None:
        """With nothing to check, staying up is the only sign of a good start: the run counts as healthy
        once it has lasted its settle time, so an exit before then is a failed start. Nobody waits for
        it (dependants and restarts go on at once, as they always did for such services)."""
        pid = runner.pid

        def settled() -> None:
            self._settling.pop(runner.name, None)
            if runner.alive and runner.pid == pid and runner.state is ServiceState.STARTING:
                self._ready(runner)

        remaining = restart_policy.settle_time(runner.config.start_grace) - (runner.uptime() or 0.0)
        self._cancel_settling(runner.name)
        self._settling[runner.name] = asyncio.get_running_loop().call_later(max(0.0, remaining), settled)

    def _cancel_settling(self, name: str | None = None) -> None:
        for key in [name] if name is not None else list(self._settling):
            handle = self._settling.pop(key, None)
            if handle is not None:
                handle.cancel()

    def _on_exit(self, runner: ServiceRunner, info: ExitInfo) -> None:
        name = runner.name
        self.health[name] = None
        self.records.process_ended(name, info.ts, info.code, info.signal)
        self.bus.emit(Event("exited" if info.expected else "crashed", name, f"{name} {info.describe()}", to_jsonable(info)))
        if info.expected or not self.active:
            return
        self._short_runs[name] = restart_policy.consecutive_short_runs(self._short_runs.get(name, 0), info.runtime)
        # Down and not yet being restarted: the healer decides what happens next, through the guardians.
        runner.set_state(ServiceState.FAILED)
        self.exit_history[name].append(info)
        self.on_down(name)

    def _on_state(self, runner: ServiceRunner, old: ServiceState, new: ServiceState) -> None:
        self.bus.publish(Event("state", runner.name, f"{runner.name}: {old} -> {new}", {"from": str(old), "to": str(new)}))

    # --- actuators (what fix plans and operators do) --------------------------------------------------

    async def restart(self, name: str) -> str:
        runner = self.managed(name)
        if runner.alive:
            await runner.stop()
            runner.restarts += 1
            await self.start_and_wait(name)
            return f"{name} restarted as pid {runner.pid}"
        return await self.start(name)

    async def start(self, name: str) -> str:
        """Start a service that is down, after the back-off its recent short runs call for."""
        runner = self.managed(name)
        if runner.alive:
            return f"{name} already running as pid {runner.pid}"
        delay = restart_policy.restart_delay(runner.config.restart_delay, self._short_runs.get(name, 0))
        if delay > 0:
            await self.hold(name, delay)
        if runner.last_exit is not None and not runner.last_exit.expected:
            runner.restarts += 1  # a recovery; starting what an operator stopped is not a restart
        await self.start_and_wait(name)
        return f"{name} started as pid {runner.pid}" + (f" after {delay:.1f}s back-off" if delay else "")

    async def stop(self, name: str) -> str:
        await self.managed(name).stop()
        self.health[name] = None
        return f"{name} stopped"

    async def backoff_until_stable(self, name: str) -> str:
        """Keep starting the service with growing back-off until it has run healthily for a while.
        It never gives up on its own; an operator's restart, stop or start, or the engine stopping,
        ends it."""
        runner = self.managed(name)
        tries = 0
        while True:
            if runner.alive:
                uptime = runner.uptime() or 0.0
                if runner.healthy_since_start and uptime >= restart_policy.SHORT_RUN:
                    return f"{name} stable for {uptime:.0f}s after {tries} back-off starts"
                await asyncio.sleep(BACKOFF_POLL)
                continue
            # Each try waits longer than the one before, even when the back-off began after a single
            # failed start (a start-up failure is diagnosed at once, a crash loop only after several).
            delay = restart_policy.restart_delay(runner.config.restart_delay, max(2 + tries, self._short_runs.get(name, 0)))
            self.bus.emit(Event("backoff", name, f"{name} retried in {delay:.1f}s (back-off, attempt {tries + 1})", {"delay": delay}))
            await self.hold(name, delay)
            tries += 1
            runner.restarts += 1
            await self.start_and_wait(name)

    async def hold(self, name: str, delay: float) -> None:
        """Wait ``delay`` before the next try on a service, showing it as backing off (if it is down)
        with the time of that try, so nobody mistakes the wait for giving up."""
        runner = self.runners.get(name)
        if runner is not None and not runner.alive:
            runner.set_state(ServiceState.BACKOFF)
        self.next_try[name] = time.time() + delay
        try:
            await asyncio.sleep(delay)
        finally:
            self.next_try.pop(name, None)

    async def reap_zombies(self, name: str) -> str:
        runner = self.managed(name)
        if not runner.alive:
            return f"{name} is not running; its zombies went with it"
        runner.send_signal(signal.SIGCHLD)
        await asyncio.sleep(REAP_WAIT)
        left = await asyncio.to_thread(_zombie_children, runner.pid)
        if not left:
            return f"{name} reaped its zombies after SIGCHLD"
        await runner.stop()
        runner.restarts += 1
        await self.start_and_wait(name)
        return f"{name} ignored SIGCHLD ({left} zombies left): restarted so that they were reaped"

    def throttle_probes(self, name: str | None) -> str:
        until = time.time() + THROTTLE_FOR
        if not name or name == HOST:
            for svc in self.config.services:
                self.throttled[svc.name] = until
            return f"health probes of every service throttled to one scan in {THROTTLE_EVERY} for {THROTTLE_FOR / 60:.0f} min"
        self.throttled[name] = until
        return f"{name}'s health probes throttled to one scan in {THROTTLE_EVERY} for {THROTTLE_FOR / 60:.0f} min"

    def retry_logs(self) -> None:
        """Try the logs that could not be written again (each when its retry is due)."""
        for runner in self.runners.values():
            runner.sink.retry()

    def rotate_logs(self) -> str:
        for runner in self.runners.values():
            runner.sink.rotate_now()
        return f"rotated the logs of {len(self.runners)} services"

    async def rollback(self, name: str) -> str:
        """Restart the service with the last other configuration it ran healthily with."""
        runner = self.managed(name)
        previous = await self.records.previous_healthy_config(runner.config)
        if previous is None:
            raise RuntimeError(f"no earlier configuration of {name} that ran healthily is recorded")
        await runner.stop()
        runner.config = previous
        runner.restarts += 1
        await self.start_and_wait(name)
        return f"{name} rolled back to its previous configuration ({' '.join(previous.command)[:80]})"

    def signal(self, name: str, sig: int) -> int | None:
        """Send a signal to a running service's leader (chaos); returns its pid."""
        runner = self.managed(name)
        if not runner.alive:
            raise ValueError(f"{name} is not running")
        runner.send_signal(sig)
        return runner.pid


def _zombie_children(pid: Any) -> int:
    try:
        return sum(1 for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return 0

