"""The engine's facade: implements :class:`~aurora_tui.core.api.EngineAPI` by composing its four parts.

- :class:`~aurora_tui.core.fleet.Fleet`: the runners, their state machines and every actuator;
- :class:`~aurora_tui.core.monitor.Monitor`: the scan loop, probes and detection;
- :class:`~aurora_tui.core.records.Records`: every SQL statement, returning typed rows;
- this facade, which also owns the lifecycle (open, launch, close) and the control socket.

The healer and the dispatcher hang off the same parts: the healer is given the fleet, the records and
the monitor (as its observer), never this facade. Everything runs on one asyncio loop (the console's,
or its own when headless); blocking work happens in threads.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, AsyncIterator

from .actuators import check_registry
from .api import (
    ActionResult, BeliefRow, ChaosResult, EngineAPI, EngineInfo, EventRow, HealStats, ImportResult, IncidentRow,
    MinuteRow, PlanRow, Reply, SilenceRow, UnsilenceResult,
)
from .config import Config
from .control import ControlServer, socket_path
from .enginelock import EngineLock
from .events import EventBus
from .fleet import Fleet
from .healer import Healer
from .health import http_get
from .model import Event, FleetSnapshot
from .monitor import Monitor
from .patterns import HOST
from .records import Records

log = logging.getLogger(__name__)

DEMO_MODULE = "aurora_tui.demo.service"
SIGNAL_FAULTS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "cont": signal.SIGCONT}
MAX_SILENCE = 7 * 86400
CHAOS_TIMEOUT = 5.0


class Engine(EngineAPI):
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db_path = Path(config.settings.db)
        self.interval = config.settings.interval
        self.bus = EventBus()
        self.records = Records(self.db_path)
        self.fleet = Fleet(config, self.records, self.bus)
        self.monitor = Monitor(config, self.fleet, self.records, self.bus, self.db_path)
        self.healer = Healer(config, self.fleet, self.records, self.monitor, self.bus)
        self.monitor.after_detect = self.healer.after_detect
        self._lock = EngineLock(self.db_path)
        self._control = ControlServer(self, socket_path(self.db_path))
        self._dispatcher: Any = None
        self._dispatcher_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._scan_task: asyncio.Task[None] | None = None
        self._resume: list[int] = []
        self._opened = False

    # --- lifecycle: open -> launch -> close ----------------------------------------------------------

    async def open(self) -> None:
        """Take the database, recover from an unclean predecessor and serve the control socket.
        Services are not started yet: see :meth:`launch`."""
        check_registry()
        self._lock.acquire()
        try:
            await self.records.open()
            self.bus.attach(self.records)
            await self.fleet.stop_stale_processes()
            self._resume = await self.healer.load()
            await self.records.start_run(self.config.source, os.getpid(), self.config.services)
            self.fleet.create_runners()
            await self._control.start()
        except BaseException:
            await self._release()
            raise
        self._opened = True
        self.bus.emit(Event("engine_started", None, f"engine started (pid {os.getpid()})", {"config": self.config.source}))

    def launch(self) -> asyncio.Task[None]:
        """Start the fleet in dependency order, then scan forever. Returns the task doing it."""
        task = asyncio.create_task(self._run(), name="engine-run")
        self._scan_task = task
        return task

    async def _run(self) -> None:
        self._spawn(self._chat())  # warm the dispatcher while the fleet starts
        # Scanning starts at once, alongside the start-up: a slow starter must not blind the engine.
        scanning = asyncio.create_task(self.monitor.scan_loop(), name="scan-loop")
        try:
            await self.start_fleet()
            # Approved or executing when the last engine died: judged again now that the fleet runs
            # (superseded where this start already did it), never simply run a second time.
            resume, self._resume = self._resume, []
            await self.healer.resume(resume)
            await scanning
        finally:
            scanning.cancel()
            await asyncio.gather(scanning, return_exceptions=True)

    async def start_fleet(self) -> None:
        await self.fleet.start_all()

    async def close(self) -> None:
        """Stop scanning, stop every owned service (dependants first) and release the database."""
        if not self._opened:
            return
        self.fleet.active = False
        self.monitor.after_detect = None
        if self._scan_task is not None:
            self._scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan_task
        await self.healer.close()
        await self.monitor.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.fleet.stop_all()
        # Never held up by the storage: what cannot be committed now is tried once more as the store closes.
        await self.bus.acknowledged(Event("engine_stopped", None, "engine stopped cleanly"), ack=False)
        await self.records.end_run()
        self.bus.close()
        await self._release()
        self._opened = False

    async def _release(self) -> None:
        await self._control.close()
        self.bus.attach(None)
        await self.records.close()
        self.fleet.close_runners()
        self._lock.release()

    async def __aenter__(self) -> "Engine":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the fleet -----------------------------------------------------------------------------------

    async def ping(self) -> EngineInfo:
        return EngineInfo(os.getpid(), str(self.db_path))

    async def snapshot(self) -> FleetSnapshot:
        now = time.time()
        monitor = self.monitor
        return FleetSnapshot(
            ts=now,
            services=[monitor.status(svc, now) for svc in self.config.services],
            host=monitor.host,
            last_scan_at=monitor.last_scan_at,
            scans=monitor.scans,
            interval=self.interval,
            engine_pid=os.getpid(),
            db=str(self.db_path),
            config_source=self.config.source,
            storage=self.monitor.storage_problems(),
        )

    async def restart(self, service: str, requested_by: str = "operator") -> ActionResult:
        self.records.refuse_decisions()
        return await self._operator_action("restart", service, requested_by)

    async def stop_service(self, service: str, requested_by: str = "operator") -> ActionResult:
        self.records.refuse_decisions()
        return await self._operator_action("stop", service, requested_by)

    async def start_service(self, service: str, requested_by: str = "operator") -> ActionResult:
        self.records.refuse_decisions()
        runner = self.fleet.managed(service)
        if runner.alive:
            raise ValueError(f"{service} is already running (pid {runner.pid})")
        return await self._operator_action("start", service, requested_by)

    async def _operator_action(self, kind: str, service: str, by: str) -> ActionResult:
        """A restart, stop or start asked for by a person: recorded, judged by the guardians, done; and
        refused (StorageUnavailable) without anything done when it cannot be recorded."""
        self.fleet.managed(service)
        await self.bus.acknowledged(Event(kind, service, f"{service} {kind} requested by {by}", {"by": by}))
        await self.healer.run_manual(kind, service, by)
        status = self.monitor.status(self.config.service(service), time.time())
        return ActionResult(service, status.state, status.pid, status.healthy)

    async def scan_now(self) -> FleetSnapshot:
        await self.monitor.scan()
        return await self.snapshot()

    async def chaos(self, fault: str, service: str, params: dict[str, str] | None = None) -> ChaosResult:
        """Cause a real fault: a signal for any owned service, or a demo service's own fault switch."""
        runner = self.fleet.managed(service)
        if not runner.alive:
            raise ValueError(f"{service} is not running")
        if fault in SIGNAL_FAULTS:
            result = ChaosResult(fault, service, self.fleet.signal(service, SIGNAL_FAULTS[fault]))
        else:
            if DEMO_MODULE not in runner.config.command or runner.config.port is None:
                raise ValueError(f"{service} is not a demo service: only kill, stop and cont apply to it")
            query = "&".join(f"{k}={v}" for k, v in (params or {}).items() if str(k).isidentifier())
            path = f"/fault/{fault}" + (f"?{query}" if query else "")
            try:
                status, body, _ = await http_get(runner.config.port, path, CHAOS_TIMEOUT, method="POST")
            except (OSError, asyncio.TimeoutError, ValueError) as exc:
                raise RuntimeError(f"{service} did not accept the fault: {exc}") from None
            if status != 200:
                raise ValueError(f"{service} refused fault {fault!r}: HTTP {status} {body.strip()[:300]}")
            result = ChaosResult(fault, service, runner.pid, json.loads(body or "{}"))
        # The fault is caused already: its record is not a decision to refuse.
        await self.bus.acknowledged(Event("chaos", service, f"chaos: {fault} caused in {service}", _chaos_data(result)), ack=False)
        return result

    async def logs(self, service: str, lines: int = 50) -> list[str]:
        self.config.service(service)
        runner = self.fleet.runners.get(service)
        return runner.sink.tail(int(lines)) if runner else []

    async def recent_events(self, limit: int = 50, service: str | None = None) -> list[EventRow]:
        return await self.records.recent_events(limit=limit, service=service)

    async def history(self, service: str | None = None, minutes: int = 60, until: float | None = None) -> list[MinuteRow]:
        if service is not None and service not in self.config.names:
            raise KeyError(f"no service {service!r}")  # an error, not an empty history
        return await self.records.history(service, minutes, until)

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]:
        return self.bus.subscribe()

    # --- incidents -----------------------------------------------------------------------------------

    async def list_incidents(
        self, open_only: bool = False, service: str | None = None, pattern: str | None = None,
        since: float | None = None, limit: int = 50, before_id: int | None = None,
    ) -> list[IncidentRow]:
        return await self.records.list_incidents(open_only, service, pattern, since, limit, before_id)

    async def incident(self, incident_id: int) -> IncidentRow:
        return await self.records.incident(incident_id)

    async def acknowledge(self, incident_id: int, by: str = "operator") -> IncidentRow:
        self.records.refuse_decisions()
        await self.records.incidents.acknowledge(int(incident_id), by)
        self.bus.emit(Event("incident_acknowledged", None, f"incident #{incident_id} acknowledged by {by}", {"incident": int(incident_id)}))
        return await self.incident(incident_id)

    async def silence(self, service: str, duration_s: float, reason: str = "", by: str = "operator") -> SilenceRow:
        self.records.refuse_decisions()
        if service != HOST:
            self.fleet.service_config(service)
        duration = float(duration_s)
        if not 0 < duration <= MAX_SILENCE:
            raise ValueError("a silence lasts more than 0 seconds and at most 7 days")
        until = time.time() + duration
        silence = await self.records.incidents.silence(service, until, reason or "no reason given", by)
        await self.bus.acknowledged(Event(
            "silenced", service if service != HOST else None, f"{service} silenced for {duration:g}s by {by}: {silence.reason}", {"until": until}
        ))
        return SilenceRow(service, until, silence.reason)

    async def unsilence(self, service: str, by: str = "operator") -> UnsilenceResult:
        self.records.refuse_decisions()
        removed = await self.records.incidents.unsilence(service)
        if removed:
            await self.bus.acknowledged(Event("unsilenced", service if service != HOST else None, f"{service} silence lifted by {by}"))
        return UnsilenceResult(service, removed)

    async def silences(self) -> list[SilenceRow]:
        now = time.time()
        return [SilenceRow(s.service, s.until, s.reason) for s in self.records.incidents.silences.values() if s.until > now]

    # --- the approval queue and what was learned -----------------------------------------------------

    async def list_plans(self, status: str | None = "pending", limit: int = 50, before_id: int | None = None) -> list[PlanRow]:
        return await self.records.list_plans(status=status, limit=limit, before_id=before_id)

    async def plan(self, plan_id: int) -> PlanRow:
        return await self.records.plan(plan_id)

    async def approve(self, plan_id: int, grade: int | None = None, comment: str = "", by: str = "operator") -> PlanRow:
        self.records.refuse_decisions()
        return await self.healer.approve(plan_id, grade=grade, comment=comment, by=by)

    async def reject(self, plan_id: int, reason: str, by: str = "operator") -> PlanRow:
        self.records.refuse_decisions()
        return await self.healer.reject(plan_id, reason=reason, by=by)

    async def grade(self, plan_id: int, grade: int, by: str = "operator") -> PlanRow:
        self.records.refuse_decisions()
        return await self.healer.grade(plan_id, grade=grade, by=by)

    async def learning(self) -> list[BeliefRow]:
        return self.records.learning.export()

    async def import_learning(self, entries: list[dict[str, Any]]) -> ImportResult:
        return ImportResult(await self.records.learning.import_(entries))

    async def heal_stats(self) -> HealStats:
        return await self.records.heal_stats()

    # --- the dispatcher (chat) -----------------------------------------------------------------------

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

    async def ask(self, message: str, session: str = "default") -> Reply:
        """A chat message to the dispatcher. Anything that would change the fleet comes back as a
        question to confirm, and then goes through the guardians like any other action."""
        return await (await self._chat()).ask(message, session=session)

    async def confirm(self, token: str) -> Reply:
        return await (await self._chat()).confirm(token)


def _chaos_data(result: ChaosResult) -> dict[str, Any]:
    data: dict[str, Any] = {"fault": result.fault, "service": result.service, "pid": result.pid}
    if result.answer is not None:
        data["answer"] = result.answer
    return data
