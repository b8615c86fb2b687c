"""What an engine that died without cleaning up (``kill -9``, a crash, a power cut of the engine alone)
left running, found and stopped by the next engine on the same database before it starts anything.

Two sources, merged by pid:

* the recorded leaders (``owned_processes`` rows that never saw their end), each still there only if
  its identity matches exactly (see :func:`procfs.matches`); one still leading its own process group
  is stopped with its group;
* the lineage (:mod:`.lineage`): everything in the services' cgroups, or carrying their environment
  tag. That catches what no row names: a leader spawned a moment before the crash, the workers of a
  leader that died while no engine was watching, daemons that double-forked away.

Never PID 1, never the engine itself, never another user's process by pid; a cgroup of our own
lineage holds only what this engine's predecessors put there, so it is emptied whole. Blocking:
call from a thread.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Iterable

from . import procfs
from .lineage import Lineage
from .model import ProcessIdentity

log = logging.getLogger(__name__)

POLL = 0.02
KILL_WAIT = 5.0


@dataclass
class Leftover:
    service: str
    pid: int
    cmdline: tuple[str, ...]
    role: str  # "leader" (a recorded leader) or "descendant" (found through the lineage)
    group: int | None = None  # a process group to signal with it (a recorded leader still leading one)
    ended_by: str = ""  # "SIGTERM", "SIGKILL", or "" while it still runs

    def describe(self) -> str:
        return f"pid {self.pid} ({' '.join(self.cmdline)[:160] or '?'})"


def _may_touch(pid: int, me: int, uid: int) -> bool:
    return pid not in (0, 1, me) and procfs.uid(pid) == uid


def find(recorded: Iterable[tuple[str, ProcessIdentity]], lineage: Lineage) -> list[Leftover]:
    """Everything of ours still running that no live engine supervises, leaders first."""
    me, uid = os.getpid(), os.getuid()
    found: dict[int, Leftover] = {}
    for service, identity in recorded:
        now = procfs.current(identity.pid)
        if now is None or not procfs.matches(identity, now) or not _may_touch(identity.pid, me, uid):
            continue
        group = identity.pid if now.pgid == identity.pid else None  # spawned into its own session
        found[identity.pid] = Leftover(service, identity.pid, now.cmdline, "leader", group)
    for service, pids in lineage.leftovers().items():
        for pid in pids:
            if pid in found or pid in (0, 1, me):
                continue
            if lineage.group is None and not _may_touch(pid, me, uid):
                continue  # outside a cgroup of our own, only our own user's tagged processes
            found[pid] = Leftover(service, pid, procfs.cmdline(pid) or (), "descendant")
    for leftover in list(found.values()):
        if leftover.group is not None:
            for pid in _group_members(leftover.group, uid):
                if pid not in found and pid != me:
                    found[pid] = Leftover(leftover.service, pid, procfs.cmdline(pid) or (), "descendant")
    return sorted(found.values(), key=lambda x: (x.role != "leader", x.service, x.pid))


def _group_members(pgid: int, uid: int) -> list[int]:
    members = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if name.isdigit() and (stat := procfs.read_stat(int(name))) is not None and stat.pgid == pgid:
            if stat.state not in procfs.ENDED_STATES and procfs.uid(int(name)) == uid:
                members.append(int(name))
    return members


def stop(leftovers: list[Leftover], lineage: Lineage, wait: float) -> list[Leftover]:
    """SIGTERM (and SIGCONT, for a stopped one) everything, give it ``wait`` seconds, then SIGKILL what
    is left, the lineage's cgroups whole. Returns ``leftovers``, each marked with what ended it;
    anything that appeared meanwhile in the lineage (a master respawning a worker) is added."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        _signal(leftovers, sig)
    _wait_gone(leftovers, wait, "SIGTERM")
    known = {x.pid for x in leftovers}
    leftovers += [x for x in find((), lineage) if x.pid not in known]
    services = {x.service for x in leftovers if not x.ended_by}
    _signal([x for x in leftovers if not x.ended_by], signal.SIGKILL)
    for service in services:
        lineage.service(service).signal(signal.SIGKILL)
    _wait_gone(leftovers, KILL_WAIT, "SIGKILL")
    return leftovers


def _signal(leftovers: list[Leftover], sig: int) -> None:
    me = os.getpid()
    for x in leftovers:
        if x.ended_by or x.pid in (0, 1, me):
            continue
        try:
            if x.group is not None and x.group not in (0, 1, me):
                os.killpg(x.group, sig)
            else:
                os.kill(x.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(leftovers: list[Leftover], timeout: float, by: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for x in leftovers:
            if not x.ended_by and not procfs.running(x.pid):
                x.ended_by = by
        if all(x.ended_by for x in leftovers) or time.monotonic() >= deadline:
            return
        time.sleep(POLL)


def report(leftovers: list[Leftover]) -> dict[str, list[Leftover]]:
    """Log exactly what was stopped (and what would not stop), by service."""
    by_service: dict[str, list[Leftover]] = {}
    for x in leftovers:
        by_service.setdefault(x.service, []).append(x)
        if x.ended_by:
            log.info("stopped %s %s of %s, left by an engine that did not shut down cleanly (%s)", x.role, x.describe(), x.service, x.ended_by)
        else:
            log.warning("%s %s of %s, left by an engine that did not shut down cleanly, is still running after SIGKILL", x.role, x.describe(), x.service)
    return by_service
