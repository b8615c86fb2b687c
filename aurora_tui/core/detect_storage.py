"""Host detectors about Aurora's own storage: a log or the database it cannot write, and a database
deleted or replaced under the running engine. Same shape as the host detectors of :mod:`.detect`: pure
functions of a :class:`~aurora_tui.core.detect.HostView` in a registry; the monitor runs both registries.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from .detect import Finding, HostView, Params
from .model import StorageProblem
from .patterns import HOST

MOVED = ("deleted", "replaced")


def _evidence(problems: Sequence[StorageProblem]) -> dict[str, Any]:
    return {
        "paths": [p.path for p in problems],
        "problems": [
            {"kind": p.kind, "path": p.path, "error": p.error, "cause": p.cause, "since": p.since,
             "dropped_bytes": p.dropped_bytes, "dropped_lines": p.dropped_lines, "queued": p.queued, "dropped_writes": p.dropped_writes}
            for p in problems
        ],
    }


def _cost(p: StorageProblem) -> str:
    if p.kind == "log":
        return f"{p.dropped_bytes} bytes ({p.dropped_lines} lines) of output dropped"
    return f"{p.queued} writes kept in memory" + (f", {p.dropped_writes} dropped" if p.dropped_writes else "")


def storage_unwritable(view: HostView, p: Params, now: float) -> Finding | None:
    problems = sorted((s for s in view.storage if s.cause not in MOVED), key=lambda s: s.since)
    if not problems:
        return None
    first = problems[0]
    more = f"; and {len(problems) - 1} more path{'s' if len(problems) > 2 else ''}" if len(problems) > 1 else ""
    summary = f"Aurora cannot write {first.path}: {first.error} ({_cost(first)}){more}"
    return Finding("storage_unwritable", HOST, summary, _evidence(problems), first.since)


def database_replaced(view: HostView, p: Params, now: float) -> Finding | None:
    moved = [s for s in view.storage if s.cause in MOVED]
    if not moved:
        return None
    first = moved[0]
    summary = (f"the database {first.path} was {first.cause} while the engine ran: operator decisions are refused "
               "until the engine is restarted; supervision goes on")
    return Finding("database_replaced", HOST, summary, _evidence(moved), first.since)


STORAGE_DETECTORS: dict[str, Callable[[HostView, Params, float], Finding | None]] = {
    f.__name__: f for f in (storage_unwritable, database_replaced)
}


def detect_storage(view: HostView, params: Callable[[str], Params], now: float) -> list[Finding]:
    return [f for pattern, detector in STORAGE_DETECTORS.items() if (f := detector(view, params(pattern), now))]
