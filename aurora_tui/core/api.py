"""The engine's API, declared once.

Everything that reaches an engine goes through :class:`EngineAPI`: the console, the CLI, the
dispatcher, and the control socket. The in-process facade (:class:`~aurora_tui.core.engine.Engine`)
implements it; the socket's method table (:func:`rpc_methods`) and the remote client
(:class:`~aurora_tui.core.remote.RemoteEngine`) are derived from it, so a method added here is
reachable over the socket with no second list to edit.

Results are the dataclasses below. They cross the socket as JSON (``model.to_jsonable``) and are
rebuilt from their type hints on the other side (``model.from_jsonable``).
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, AsyncContextManager, AsyncIterator, Callable, TypeVar, get_type_hints

from .model import Event, FleetSnapshot

#: The version of the socket protocol; every answer carries it as ``"api"``.
API_VERSION = 1


# --- results -----------------------------------------------------------------------------------------


@dataclass
class EngineInfo:
    pid: int
    db: str


@dataclass
class ActionResult:
    """Where a service stands after an operator's restart, stop or start."""

    service: str
    state: str
    pid: int | None
    healthy: bool


@dataclass
class ChaosResult:
    fault: str
    service: str
    pid: int | None
    # The demo service's own answer to a fault switch; None for a signal.
    answer: dict[str, Any] | None = None


@dataclass
class EventRow:
    id: int
    ts: float
    kind: str
    service: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimelineEntry:
    ts: float
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class IncidentRow:
    id: int
    service: str
    pattern: str
    status: str
    severity: str
    confidence: int
    summary: str
    evidence: dict[str, Any]
    onset_at: float | None
    opened_at: float
    last_seen: float | None
    resolved_at: float | None
    count: int
    detect_seconds: float | None
    recover_seconds: float | None
    caused_by: int | None
    acknowledged_by: str | None
    # Filled only by :meth:`EngineAPI.incident`; lists leave it empty.
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


# Every status a plan can have, in the order a plan moves through them. "superseded": approved or
# executing when the engine died, and judged again by the next engine as already done (see rejudge.py).
PLAN_STATUSES = (
    "pending", "approved", "executing", "executed", "verified", "failed", "rejected", "blocked", "expired", "escalated", "superseded",
)


@dataclass
class PlanRow:
    id: int
    incident_id: int | None
    service: str
    pattern: str
    fix: str
    actions: list[dict[str, Any]]
    confidence: int
    risk: str
    verdicts: list[dict[str, Any]]
    decision: str
    status: str
    summary: str
    evidence: dict[str, Any]
    evidence_at: float | None
    created_at: float
    decided_at: float | None
    decided_by: str | None
    grade: int | None
    comment: str | None
    reason: str | None
    executed_at: float | None
    finished_at: float | None
    outcome: str | None


@dataclass
class BeliefRow:
    """What was learned about one fix for one pattern (a Beta belief)."""

    pattern: str
    fix: str
    alpha: float
    beta: float
    successes: int = 0
    failures: int = 0
    rejections: int = 0
    mean: float = 0.0
    refused: bool = False


@dataclass
class ImportResult:
    imported: int


@dataclass
class SilenceRow:
    service: str
    until: float
    reason: str


@dataclass
class UnsilenceResult:
    service: str
    removed: bool


@dataclass
class HealStats:
    """Outcomes of automatic plans: the console's auto-heal rate."""

    verified: int
    failed: int
    rate: float | None
    pending: int


@dataclass
class MinuteRow:
    """One service over one roll-up period (a minute): what its samples were, in natural units. Figures
    are None when no sample of the minute had them (the service was down, or has no health check)."""

    service: str
    start: float  # epoch seconds the minute began
    seconds: float  # its length
    samples: int
    healthy: int  # samples whose health check passed
    cpu_min: float | None = None  # percent
    cpu_avg: float | None = None
    cpu_max: float | None = None
    rss_min: int | None = None  # bytes (stored to the KiB)
    rss_avg: int | None = None
    rss_max: int | None = None
    latency_min: float | None = None  # milliseconds
    latency_avg: float | None = None
    latency_max: float | None = None
    fds_max: int | None = None
    threads_max: int | None = None
    connections_max: int | None = None
    state: str | None = None  # at the minute's last sample
    pid: int | None = None
    # The minute still being taken (kept in memory by the engine, not stored yet).
    still_open: bool = False


@dataclass
class Confirmation:
    token: str
    question: str


@dataclass
class Reply:
    """The dispatcher's answer to one chat message, with how it was classified and routed."""

    reply: str
    type: str
    confidence: float
    score: int
    program: dict[str, Any] | None = None
    tiers: list[dict[str, Any]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    action: str | None = None
    target: str | None = None
    confirm: Confirmation | None = None
    usage: dict[str, int] = field(default_factory=dict)
    active_modules: list[str] = field(default_factory=list)


# --- the declaration ---------------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])

QUERY = "query"
ACTION = "action"


@dataclass(frozen=True)
class RpcMethod:
    """One API method as the socket knows it."""

    name: str  # the Python method on EngineAPI
    wire: str  # the socket's method name
    aliases: tuple[str, ...]
    kind: str  # query (answers fast) or action (may wait for a stop timeout and a start grace)
    signature: inspect.Signature
    returns: Any  # the resolved return annotation, for rebuilding the result


def rpc(wire: str, kind: str = QUERY, aliases: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Mark an :class:`EngineAPI` method as reachable over the control socket under ``wire``."""

    def mark(fn: F) -> F:
        fn.__rpc__ = (wire, kind, aliases)  # type: ignore[attr-defined]
        return fn

    return mark


class EngineAPI(ABC):
    """What an engine offers, whether it runs in this process or behind a socket."""

    @rpc("ping")
    @abstractmethod
    async def ping(self) -> EngineInfo: ...

    # --- the fleet ---

    @rpc("status", aliases=("snapshot",))
    @abstractmethod
    async def snapshot(self) -> FleetSnapshot: ...

    @rpc("restart", ACTION)
    @abstractmethod
    async def restart(self, service: str) -> ActionResult: ...

    @rpc("stop", ACTION)
    @abstractmethod
    async def stop_service(self, service: str) -> ActionResult: ...

    @rpc("start", ACTION)
    @abstractmethod
    async def start_service(self, service: str) -> ActionResult: ...

    @rpc("scan", ACTION)
    @abstractmethod
    async def scan_now(self) -> FleetSnapshot: ...

    @rpc("chaos", ACTION)
    @abstractmethod
    async def chaos(self, fault: str, service: str, params: dict[str, str] | None = None) -> ChaosResult: ...

    @rpc("logs")
    @abstractmethod
    async def logs(self, service: str, lines: int = 50) -> list[str]: ...

    @rpc("events")
    @abstractmethod
    async def recent_events(self, limit: int = 50, service: str | None = None) -> list[EventRow]: ...

    @rpc("history")
    @abstractmethod
    async def history(self, service: str | None = None, minutes: int = 60, until: float | None = None) -> list[MinuteRow]:
        """The per-minute roll-ups of one service (or all) over the ``minutes`` ending at ``until``
        (default: now, the still-open minute included), ordered by service then minute. At most
        ``rollup.MAX_HISTORY_ROWS`` rows: the newest are kept."""

    # --- incidents ---

    @rpc("incidents")
    @abstractmethod
    async def list_incidents(
        self, open_only: bool = False, service: str | None = None, pattern: str | None = None,
        since: float | None = None, limit: int = 50, before_id: int | None = None,
    ) -> list[IncidentRow]: ...

    @rpc("incident")
    @abstractmethod
    async def incident(self, incident_id: int) -> IncidentRow: ...

    @rpc("acknowledge", ACTION)
    @abstractmethod
    async def acknowledge(self, incident_id: int, by: str = "operator") -> IncidentRow: ...

    @rpc("silence", ACTION)
    @abstractmethod
    async def silence(self, service: str, duration_s: float, reason: str = "", by: str = "operator") -> SilenceRow: ...

    @rpc("unsilence", ACTION)
    @abstractmethod
    async def unsilence(self, service: str, by: str = "operator") -> UnsilenceResult: ...

    @rpc("silences")
    @abstractmethod
    async def silences(self) -> list[SilenceRow]: ...

    # --- the approval queue and what was learned ---

    @rpc("plans")
    @abstractmethod
    async def list_plans(self, status: str | None = "pending", limit: int = 50, before_id: int | None = None) -> list[PlanRow]: ...

    @rpc("plan")
    @abstractmethod
    async def plan(self, plan_id: int) -> PlanRow: ...

    @rpc("approve", ACTION)
    @abstractmethod
    async def approve(self, plan_id: int, grade: int | None = None, comment: str = "", by: str = "operator") -> PlanRow: ...

    @rpc("reject", ACTION)
    @abstractmethod
    async def reject(self, plan_id: int, reason: str, by: str = "operator") -> PlanRow: ...

    @rpc("grade", ACTION)
    @abstractmethod
    async def grade(self, plan_id: int, grade: int, by: str = "operator") -> PlanRow: ...

    @rpc("learning")
    @abstractmethod
    async def learning(self) -> list[BeliefRow]: ...

    @rpc("import_learning", ACTION)
    @abstractmethod
    async def import_learning(self, entries: list[dict[str, Any]]) -> ImportResult: ...

    @rpc("heal_stats")
    @abstractmethod
    async def heal_stats(self) -> HealStats: ...

    # --- the dispatcher ---

    @rpc("ask", ACTION)
    @abstractmethod
    async def ask(self, message: str, session: str = "default") -> Reply: ...

    @rpc("confirm", ACTION)
    @abstractmethod
    async def confirm(self, token: str) -> Reply: ...

    # --- not over request/answer ---

    @abstractmethod
    def subscribe(self) -> AsyncContextManager[AsyncIterator[Event]]:
        """The event stream; the iterator ends when the engine goes away."""

    def supports(self, method: str) -> bool:
        """Whether the engine offers ``method``. Always true in process; an older remote engine may not."""
        return method in _NAMES


def rpc_methods() -> list[RpcMethod]:
    """Every socket-reachable method of :class:`EngineAPI`, in declaration order."""
    return list(_RPC)


def _collect() -> list[RpcMethod]:
    found = []
    for name, fn in EngineAPI.__dict__.items():
        mark = getattr(fn, "__rpc__", None)
        if mark is None:
            continue
        wire, kind, aliases = mark
        hints = get_type_hints(fn)
        found.append(RpcMethod(name, wire, tuple(aliases), kind, inspect.signature(fn), hints.get("return")))
    return found


_RPC = _collect()
_NAMES = {m.name for m in _RPC}
