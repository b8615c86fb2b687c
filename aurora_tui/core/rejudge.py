"""Judging again a plan that was approved or executing when the engine died, against what is there now.

Running such a plan again as it stands would repeat what may already be done: the crashed engine may
have restarted the service before it died, and the new engine has just started the whole fleet. What an
on-call engineer expects instead, action by action:

* a restart, start, back-off or zombie reaping is moot once the service runs a process started after
  the plan was decided (whoever started it, the new engine included); if the service is down, it is
  still needed;
* an action on an identified process (terminate, kill, free_port) is moot once that process is gone
  or the pid belongs to another program; without a target it counts as a restart;
* a stop is moot once the service is not running; still needed if the new engine started it;
* anything else (a rollback, a monitor-only service's programs, telling the operator) is still needed.

A plan with nothing left to do is superseded; one with something left runs that part, judged by the
guardians as any approved plan is. Pure: the facts arrive already gathered.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .plans import Action

RESTARTS = frozenset({"restart", "start", "backoff", "reap_zombies"})
ON_TARGET = frozenset({"terminate", "kill", "free_port"})


@dataclass(frozen=True)
class Now:
    """What is there now, for one plan's service."""

    service: str
    since: float  # when the plan was decided (approved, or judged to run)
    starts: tuple[tuple[float, int], ...]  # the service's process starts recorded since: (started at, pid)
    running: int | None  # the service's leader now (None: down, or not one Aurora runs)
    running_since: float | None  # when that leader started
    gone: tuple[str | None, ...]  # per action: why its target is no longer that process (None: it is)


def moot(actions: Sequence[Action], now: Now) -> list[str | None]:
    """Per action, why it is no longer needed; None where it still is."""
    return [_why(action, gone, now) for action, gone in zip(actions, now.gone)]


def _why(action: Action, gone: str | None, now: Now) -> str | None:
    if action.kind in ON_TARGET and action.target is not None:
        return f"{action.kind}: {gone}" if gone else None
    if action.kind in RESTARTS or action.kind in ON_TARGET:
        if now.running is None or now.running_since is None or now.running_since <= now.since:
            return None
        recorded = len(now.starts)
        return (f"{action.kind}: {now.service} already restarted since the plan was decided "
                f"(now pid {now.running}; {recorded} start{'s' if recorded != 1 else ''} recorded since)")
    if action.kind == "stop":
        return None if now.running is not None else f"stop: {now.service} is not running"
    return None


def summary(reasons: Sequence[str | None]) -> str:
    return "judged again after the engine restarted: " + "; ".join(r for r in reasons if r)
