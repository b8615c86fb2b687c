"""Snapshot tests of every console screen at 80×24 and 120×40.

Snapshots need the same pixels every time, so this is the one place the console runs on a fake engine:
an in-memory object with the engine's async methods and FIXED data, a frozen clock, UTC, and no cursor
blink. Everything else in the console's tests runs on the real engine and the real demo fleet.

Update the pictures after a deliberate change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at them (tests/snapshots/) before committing.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_textual_snapshot
from pytest_textual_snapshot import SVGImageExtension

from aurora_tui.app import AuroraApp
from aurora_tui.core.api import (
    ActionResult, BeliefRow, ChaosResult, EngineAPI, EngineInfo, EventRow, HealStats, ImportResult, IncidentRow,
    PlanRow, Reply, SilenceRow, TimelineEntry, UnsilenceResult,
)
from aurora_tui.core.model import Event, ExitInfo, FleetSnapshot, ServiceStatus, from_jsonable
from aurora_tui.core.remote import Unsupported

from .helpers import async_wait_until

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


class AuroraSVG(SVGImageExtension):
    """Keep the pictures in tests/snapshots/<module>/ rather than syrupy's __snapshots__."""

    @classmethod
    def dirname(cls, *, test_location) -> str:  # type: ignore[override]
        return str(Path(test_location.filepath).parent / "snapshots" / test_location.basename)


@pytest.fixture(autouse=True)
def frozen_world(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    # snap_compare picks the extension up by this name when it is set up (autouse fixtures come first).
    monkeypatch.setattr(pytest_textual_snapshot, "SVGImageExtension", AuroraSVG)
    yield
    monkeypatch.undo()
    time.tzset()


def _status(name: str, state: str, pid: int | None, port: int, healthy: bool, restarts: int, uptime: float | None,
            cpu: float | None, rss: int | None, latency: float | None, **extra: Any) -> ServiceStatus:
    return ServiceStatus(name=name, state=state, managed=True, pid=pid, port=port, healthy=healthy, restarts=restarts,
                         uptime=uptime, cpu=cpu, rss=rss, started_at=NOW - uptime if uptime else None, latency_ms=latency, **extra)


SERVICES = [
    _status("aurora_ui", "running", 31337, 5000, True, 0, 5400.0, 1.4, 24_900_000, 4.0),
    _status("bridge_api", "running", 31402, 5001, False, 2, 42.0, 0.3, 21_700_000, None, health_error="HTTP 503", depends_on=["learning_api"]),
    _status("learning_api", "backoff", None, 5002, False, 5, None, None, None, None, last_exit=ExitInfo(NOW - 3, 1, None, False, 0.8)),
    _status("file_server", "running", 31366, 8080, True, 1, 720.0, 12.6, 38_200_000, 11.0),
]

INCIDENTS = [
    {"id": 12, "service": "learning_api", "pattern": "crash_loop", "status": "awaiting_approval", "severity": "critical", "confidence": 8,
     "summary": "learning_api exited 5 times in 2 minutes, each within 1s of starting", "evidence": {"exits": 5, "window_s": 120, "last_exit": "exited with status 1 after 0.8s"},
     "onset_at": NOW - 130, "opened_at": NOW - 125, "last_seen": NOW - 5, "resolved_at": None, "count": 9, "detect_seconds": 0.4,
     "recover_seconds": None, "caused_by": None, "acknowledged_by": None},
    {"id": 11, "service": "bridge_api", "pattern": "dependency_down", "status": "open", "severity": "warning", "confidence": 7,
     "summary": "bridge_api answers 503 because learning_api, which it depends on, is down", "evidence": {"dependencies_down": {"learning_api": "backoff"}},
     "onset_at": NOW - 124, "opened_at": NOW - 120, "last_seen": NOW - 5, "resolved_at": None, "count": 8, "detect_seconds": 4.0,
     "recover_seconds": None, "caused_by": 12, "acknowledged_by": None},
    {"id": 10, "service": "file_server", "pattern": "high_cpu", "status": "acknowledged", "severity": "warning", "confidence": 6,
     "summary": "file_server has used more than 90% CPU for 3 scans", "evidence": {"cpu_percent": [93.1, 95.0, 97.2]},
     "onset_at": NOW - 900, "opened_at": NOW - 870, "last_seen": NOW - 60, "resolved_at": None, "count": 4, "detect_seconds": 30.0,
     "recover_seconds": None, "caused_by": None, "acknowledged_by": "operator"},
    {"id": 9, "service": "aurora_ui", "pattern": "crashed", "status": "resolved", "severity": "critical", "confidence": 9,
     "summary": "aurora_ui killed by SIGKILL after 3600.2s", "evidence": {"signal": "SIGKILL", "runtime_s": 3600.2},
     "onset_at": NOW - 5500, "opened_at": NOW - 5500, "last_seen": NOW - 5500, "resolved_at": NOW - 5499, "count": 1, "detect_seconds": 0.01,
     "recover_seconds": 0.9, "caused_by": None, "acknowledged_by": None},
] + [
    {"id": i, "service": "file_server", "pattern": "slow_responses", "status": "resolved", "severity": "warning", "confidence": 5,
     "summary": f"file_server answered in {900 + i * 10} ms on average", "evidence": {"latency_ms": 900 + i * 10},
     "onset_at": NOW - 86400 + i * 600, "opened_at": NOW - 86400 + i * 600, "last_seen": NOW - 86000 + i * 600,
     "resolved_at": NOW - 85000 + i * 600, "count": 3, "detect_seconds": 30.0, "recover_seconds": 1400.0, "caused_by": None, "acknowledged_by": None}
    for i in range(8, 0, -1)
]

TIMELINE = {
    12: [
        {"ts": NOW - 130, "kind": "detected", "message": "first evidence of crash loop", "data": {}},
        {"ts": NOW - 125, "kind": "diagnosed", "message": "learning_api exited 5 times in 2 minutes (confidence 8/10)", "data": {}},
        {"ts": NOW - 125, "kind": "proposed", "message": "plan #3: backoff + notify (risk medium, confidence 8/10)", "data": {}},
        {"ts": NOW - 125, "kind": "judged", "message": "wait: L1 pass, L2 warn, L3 pass", "data": {}},
    ],
}

PLANS = [
    {"id": 3, "incident_id": 12, "service": "learning_api", "pattern": "crash_loop", "fix": "restart_with_backoff",
     "actions": [{"kind": "restart", "target": "learning_api", "detail": "stop the process group, wait 30 s, start it again"},
                 {"kind": "notify", "target": None, "detail": "tell the operator with the last 20 log lines"}],
     "confidence": 8, "risk": "medium",
     "verdicts": [{"level": "L1", "name": "safety", "outcome": "pass", "reasons": ["only Aurora's own process group is touched"]},
                  {"level": "L2", "name": "blast radius", "outcome": "warn", "reasons": ["bridge_api depends on learning_api and will see errors for ~30 s"]},
                  {"level": "L3", "name": "history", "outcome": "pass", "reasons": ["this fix worked 4 times out of 5"]}],
     "decision": "wait", "status": "pending", "summary": "learning_api keeps dying within a second of starting: ImportError in the log",
     "evidence": {"exits": 5, "log": "ImportError: No module named 'numpy'"}, "evidence_at": NOW - 125, "created_at": NOW - 125, "decided_at": None,
     "decided_by": None, "grade": None, "comment": "", "reason": None, "executed_at": None, "finished_at": None, "outcome": None},
    {"id": 2, "incident_id": 10, "service": "file_server", "pattern": "high_cpu", "fix": "restart",
     "actions": [{"kind": "restart", "target": "file_server", "detail": "graceful restart"}],
     "confidence": 6, "risk": "medium",
     "verdicts": [{"level": "L1", "name": "safety", "outcome": "pass", "reasons": ["owned process"]},
                  {"level": "L2", "name": "blast radius", "outcome": "pass", "reasons": ["nothing depends on file_server"]},
                  {"level": "L3", "name": "history", "outcome": "skipped", "reasons": ["never tried before"]}],
     "decision": "wait", "status": "verified", "summary": "file_server spins at 95% CPU", "evidence": {"cpu_percent": 95.0},
     "evidence_at": NOW - 860, "created_at": NOW - 860, "decided_at": NOW - 800, "decided_by": "operator", "grade": 8, "comment": "", "reason": None,
     "executed_at": NOW - 800, "finished_at": NOW - 798.8, "outcome": "healthy again after 1.2s"},
]


# What the fake dispatcher reports with every answer: fixed usage counts and active modules (those of
# program 61, Error Detection, in the order the registry resolves them).
ACTIVE_MODULES = [
    "python.core", "psutil.process", "aurora.process-scan", "health.http-checks", "aurora.health-probes", "math.ewma",
    "aurora.issue-detection", "posix.pidfd", "posix.signals", "posix.process-groups", "python.asyncio",
    "aurora.supervise", "aurora.exit-watch", "math.statistics", "math.anomaly-zscore", "systemd.units",
    "journald.logging", "prometheus.scraping", "prometheus.promql", "prometheus.alertmanager",
]
USAGE = {"program:61": 3, "program:62": 1, "tier:183": 3, "tier:2": 3, "tier:186": 3, "tier:5": 1} | {f"module:{m}": 3 for m in ACTIVE_MODULES}


#: What an engine older than the approval queue does not offer.
APPROVAL_METHODS = {"list_plans", "plan", "approve", "reject", "grade"}
#: What an engine without a dispatcher does not offer.
CHAT_METHODS = {"ask", "confirm"}


class FakeEngine(EngineAPI):
    """The engine's API over fixed data (snapshots only: the pilot tests use the real engine). Without
    ``approvals`` or ``chat`` it is an older remote engine: it says it does not offer them."""

    def __init__(self, approvals: bool = True, chat: bool = True) -> None:
        self.incidents = [from_jsonable(IncidentRow, r) for r in copy.deepcopy(INCIDENTS)]
        self.plans = [from_jsonable(PlanRow, p) for p in copy.deepcopy(PLANS)]
        self.missing = (set() if approvals else APPROVAL_METHODS) | (set() if chat else CHAT_METHODS)

    def supports(self, method: str) -> bool:
        return super().supports(method) and method not in self.missing

    def _offers(self, method: str) -> None:
        if method in self.missing:
            raise Unsupported(f"the engine does not offer {method!r}")

    async def ping(self) -> EngineInfo:
        return EngineInfo(pid=4242, db="/var/lib/aurora/aurora.db")

    async def snapshot(self) -> FleetSnapshot:
        return FleetSnapshot(ts=NOW, services=copy.deepcopy(SERVICES), host=None, last_scan_at=NOW - 4, scans=321,
                             interval=15.0, engine_pid=4242, db="/var/lib/aurora/aurora.db", config_source="<demo fleet>")

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        async def nothing() -> AsyncIterator[Event]:
            await asyncio.Event().wait()
            yield Event("never", None, "")

        yield nothing()

    async def restart(self, service: str) -> ActionResult:
        return ActionResult(service=service, state="running", pid=1, healthy=True)

    stop_service = start_service = restart

    async def scan_now(self) -> FleetSnapshot:
        return await self.snapshot()

    async def chaos(self, fault: str, service: str, params: dict[str, str] | None = None) -> ChaosResult:
        raise AssertionError("snapshots never inject faults")

    async def logs(self, service: str, lines: int = 50) -> list[str]:
        return [f"2023-11-14 22:1{i % 10}:0{i % 6} {service} INFO request {i} served in {3 + i % 4} ms" for i in range(40)][-lines:]

    async def recent_events(self, limit: int = 50, service: str | None = None) -> list[EventRow]:
        return []

    async def list_incidents(self, open_only: bool = False, service: str | None = None, pattern: str | None = None,
                             since: float | None = None, limit: int = 50, before_id: int | None = None) -> list[IncidentRow]:
        rows = [r for r in self.incidents
                if (not open_only or r.is_open) and (service is None or r.service == service)
                and (pattern is None or r.pattern == pattern) and (before_id is None or r.id < before_id)]
        return copy.deepcopy(rows[:limit])

    async def incident(self, incident_id: int) -> IncidentRow:
        row = copy.deepcopy(next(r for r in self.incidents if r.id == incident_id))
        row.timeline = [from_jsonable(TimelineEntry, e) for e in TIMELINE.get(incident_id, [])]
        return row

    async def acknowledge(self, incident_id: int, by: str = "operator") -> IncidentRow:
        row = next(r for r in self.incidents if r.id == incident_id)
        row.status, row.acknowledged_by = "acknowledged", by
        return await self.incident(incident_id)

    async def silence(self, service: str, duration_s: float, reason: str = "", by: str = "operator") -> SilenceRow:
        raise AssertionError("snapshots never silence")

    async def unsilence(self, service: str, by: str = "operator") -> UnsilenceResult:
        raise AssertionError("snapshots never silence")

    async def silences(self) -> list[SilenceRow]:
        return []

    async def list_plans(self, status: str | None = "pending", limit: int = 50, before_id: int | None = None) -> list[PlanRow]:
        self._offers("list_plans")
        return copy.deepcopy([p for p in self.plans if status is None or p.status == status][:limit])

    async def plan(self, plan_id: int) -> PlanRow:
        self._offers("plan")
        return copy.deepcopy(next(p for p in self.plans if p.id == plan_id))

    async def approve(self, plan_id: int, grade: int | None = None, comment: str = "", by: str = "operator") -> PlanRow:
        raise AssertionError("snapshots never decide")

    async def reject(self, plan_id: int, reason: str, by: str = "operator") -> PlanRow:
        raise AssertionError("snapshots never decide")

    async def grade(self, plan_id: int, grade: int, by: str = "operator") -> PlanRow:
        raise AssertionError("snapshots never decide")

    async def learning(self) -> list[BeliefRow]:
        return []

    async def import_learning(self, entries: list[dict[str, Any]]) -> ImportResult:
        raise AssertionError("snapshots never import")

    async def heal_stats(self) -> HealStats:
        return HealStats(verified=4, failed=1, rate=0.8, pending=1)

    async def history(self, service: str | None = None, minutes: int = 60, until: float | None = None) -> list:
        return []  # the console does not read roll-ups yet

    async def ask(self, message: str, session: str = "default") -> Reply:
        self._offers("ask")
        return Reply(
            reply="**learning_api** is in a crash loop: it exits within a second of starting.\n\n"
                  "- the log says `ImportError: No module named 'numpy'`\n- plan #3 waits for your approval",
            type="debugging", confidence=0.86, score=9, program={"id": 61, "name": "Error Detection"},
            tiers=[{"id": 183, "name": "Automatic Error Detection"}], modules=list(ACTIVE_MODULES), action=None,
            target=None, confirm=None, usage=dict(USAGE), active_modules=list(ACTIVE_MODULES),
        )

    async def confirm(self, token: str) -> Reply:
        raise AssertionError("snapshots never confirm")


def app(**kwargs: Any) -> AuroraApp:
    return AuroraApp(FakeEngine(**kwargs), clock=lambda: NOW, blink=False, refresh_every=3600.0)


# Workers that follow the engine for as long as their screen lives: never "done", so not waited for.
FOLLOWERS = frozenset({"engine-events", "engine-snapshot", "service-log", "logs"})
SETTLE_TIMEOUT = 60.0


async def settle(pilot) -> None:
    """Wait until the console is quiet: every short-lived worker has brought its (instant, fixed) answer
    and two idle frames in a row are the same picture."""
    app = pilot.app
    deadline = time.monotonic() + SETTLE_TIMEOUT
    previous = None
    while True:
        await pilot.pause()
        busy = [w for w in app.workers if not w.is_finished and w.group not in FOLLOWERS]
        frame = None if busy else app.export_screenshot()
        if frame is not None and frame == previous:
            return
        previous = frame
        if time.monotonic() >= deadline:
            raise AssertionError(f"the console did not settle within {SETTLE_TIMEOUT:g}s (busy: {[w.name for w in busy]})")
        await asyncio.sleep(0.01)


def fill_history(pilot) -> None:
    """Eight scans' worth of CPU and RSS, so the sparklines have something to draw."""
    from aurora_tui.screens.services import ServicesScreen

    screen = pilot.app.screen_stack[0]
    assert isinstance(screen, ServicesScreen)
    for n in range(8):
        for status in SERVICES:
            moved = copy.deepcopy(status)
            if moved.cpu is not None:
                moved.cpu = moved.cpu * (0.4 + 0.15 * ((n * 3 + len(status.name)) % 7))
            if moved.rss is not None:
                moved.rss = moved.rss + n * 350_000
            screen.history.setdefault(status.name, type(next(iter(screen.history.values())))()).add(moved)


@pytest.mark.parametrize("size", SIZES)
def test_services(snap_compare, size):
    async def before(pilot):
        await settle(pilot)
        fill_history(pilot)
        pilot.app.state_signal.publish(pilot.app.state)
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_incidents(snap_compare, size):
    assert snap_compare(app(), terminal_size=SIZES[size], press=["2"], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_incident_timeline(snap_compare, size):
    async def before(pilot):
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_approvals(snap_compare, size):
    assert snap_compare(app(), terminal_size=SIZES[size], press=["3"], run_before=settle)


def test_approvals_without_a_queue(snap_compare):
    assert snap_compare(app(approvals=False), terminal_size=SIZES["80x24"], press=["3"], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_chat(snap_compare, size):
    async def before(pilot):
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        from aurora_tui.widgets.chat_input import ChatInput

        await pilot.press("enter")  # into the input
        pilot.app.screen.query_one(ChatInput).value = "why is learning_api down?"
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=before)


def test_chat_without_a_dispatcher(snap_compare):
    assert snap_compare(app(chat=False), terminal_size=SIZES["80x24"], press=["4"], run_before=settle)


async def catalogue_ready(pilot) -> None:
    """The explorer's catalogue is read in a thread: wait for it, so the picture never shows it loading."""
    await settle(pilot)
    pilot.app.load_catalogue()
    await async_wait_until(lambda: pilot.app.catalogue is not None, timeout=60, what="the catalogue loaded")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_explorer(snap_compare, size):
    assert snap_compare(app(), terminal_size=SIZES[size], press=["5", "down", "down"], run_before=catalogue_ready)


@pytest.mark.parametrize("size", SIZES)
def test_service_details_with_chat_pane(snap_compare, size):
    async def before(pilot):
        await settle(pilot)
        fill_history(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=before)


def test_help(snap_compare):
    assert snap_compare(app(), terminal_size=SIZES["80x24"], press=["question_mark"], run_before=settle)


def test_confirmation_has_no_focused(snap_compare):
    assert snap_compare(app(), terminal_size=SIZES["80x24"], press=["down", "r"], run_before=settle)


@pytest.mark.parametrize("theme", ["textual-light", "ansi-dark"])
def test_services_in_other_themes(snap_compare, theme):
    async def before(pilot):
        pilot.app.theme = theme
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES["80x24"], press=["2"], run_before=before)
