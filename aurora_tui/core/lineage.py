"""Every descendant of a managed service, even one that left its process group or session.

A daemon that double-forks into a new session, or a worker that calls ``setpgid``, escapes the
process-group signals the supervisor sends. Two ways to keep hold of them, best first:

* **cgroup v2**, where its hierarchy can be written: each service runs in its own cgroup under a
  group named from the engine's database, ``aurora-<hash>/<service>``. A process cannot leave a
  cgroup by forking or by ``setsid``, so the cgroup's ``cgroup.procs`` is the service's whole
  lineage; ``cgroup.kill`` ends it at once. The name depends only on the database, so a new engine
  after ``kill -9`` of the old one finds the groups it left and empties them.
* **otherwise**, the engine becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``): a daemon that
  double-forks re-parents to the engine instead of PID 1, so it stays a descendant. Every service is
  spawned with an environment tag that its descendants inherit; the tag names the engine's lineage
  and the service (a second variable carries the database's path), so a later engine recognises them
  too, and an engine on another database can say whose they are. Adopted children are reaped by pid
  (never ``waitpid(-1)``, which would steal a leader's exit status from its supervisor).

``AURORA_NO_CGROUP=1`` forces the second way (tests use it to cover both on one machine).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import psutil

from . import procfs
from .probes import _alive

log = logging.getLogger(__name__)

TAG_VAR = "AURORA_LINEAGE"
# The database path itself: the tag holds only a hash of it, which names no file to an operator.
DB_VAR = "AURORA_LINEAGE_DB"
PR_SET_CHILD_SUBREAPER = 36
GONE_POLL = 0.02
RMDIR_WAIT = 1.0


def engine_key(db_path: Path) -> str:
    """The name of an engine's lineage: the same for every engine that opens this database."""
    digest = hashlib.sha1(str(Path(db_path).resolve()).encode()).hexdigest()[:12]
    return f"aurora-{digest}"


def cgroup2_base() -> Path | None:
    """The cgroup v2 directory this process lives in, when cgroup v2 is mounted; None otherwise."""
    mount = None
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                mount = Path(left.split(" ")[4])
                break
        own = next((l[3:] for l in Path("/proc/self/cgroup").read_text().splitlines() if l.startswith("0::")), "/")
    except OSError:
        return None
    if mount is None:
        return None
    nested = mount / own.lstrip("/")
    # In a cgroup namespace whose root is not the mount's root, the own path does not resolve.
    return nested if nested.is_dir() else mount


def set_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _signal(pid: int, sig: int) -> bool:
    if pid in (0, 1, os.getpid()):
        return False  # never PID 1 nor Aurora itself, whatever a tag or a group claims
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _tagged(proc: psutil.Process, tag: str, uid: int) -> bool:
    try:
        return proc.uids().real == uid and proc.environ().get(TAG_VAR) == tag
    except (psutil.Error, OSError):
        return False


class Descendants:
    """One service's lineage: who belongs to it, and ending all of them."""

    def __init__(self, lineage: "Lineage", name: str) -> None:
        self.lineage = lineage
        self.tag = f"{lineage.key}/{name}"
        self.cgroup = lineage.group / _safe(name) if lineage.group is not None else None
        # The current leader: its supervisor reaps it, so it is never reaped here.
        self.leader: int | None = None

    def started(self, leader: int) -> None:
        """Called once the leader runs (Popen returns after exec, so after the preexec join)."""
        self.leader = leader
        if self.cgroup is not None and leader not in _read_procs(self.cgroup) and _alive(leader):
            # e.g. a parent cgroup with domain controllers on, which refuses members in a child group
            log.warning("pid %d could not join cgroup %s; tracking %s by its environment tag", leader, self.cgroup, self.tag)
            self.cgroup = None
            set_subreaper()

    @property
    def env(self) -> dict[str, str]:
        return {TAG_VAR: self.tag, DB_VAR: self.lineage.db}

    def preexec(self) -> Callable[[], None] | None:
        """Run in the forked child before exec: join the service's cgroup, so nothing it forks escapes."""
        if self.cgroup is None:
            return None
        try:
            self.cgroup.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("cannot create cgroup %s (%s); tracking %s by its environment tag", self.cgroup, exc, self.tag)
            return None
        procs = str(self.cgroup / "cgroup.procs")

        def join() -> None:
            try:
                fd = os.open(procs, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            except OSError:
                pass  # the environment tag still marks the lineage

        return join

    def members(self) -> list[int]:
        """Every live process of the lineage, the leader included."""
        pids: set[int] = set()
        if self.cgroup is not None:
            pids.update(_read_procs(self.cgroup))
        else:
            uid = os.getuid()
            pids.update(p.pid for p in psutil.process_iter() if _tagged(p, self.tag, uid))
        pids.discard(os.getpid())
        self._note_adopted(pids)
        return sorted(p for p in pids if _alive(p))

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is of this lineage, cheaply (for a port holder or an orphan)."""
        if self.cgroup is not None and pid in _read_procs(self.cgroup):
            return True
        try:
            return _tagged(psutil.Process(pid), self.tag, os.getuid())
        except psutil.Error:
            return False

    def strays(self, known: set[int], adopted: Iterable[int] | None = None) -> list[int]:
        """Live members outside ``known`` (the leader's tree and group), cheaply: the cgroup's list, or
        without one the engine's adopted children (a double-forked daemon re-parents to the subreaper).
        ``adopted``: the engine's children that lead no service, when the caller has them already
        (a scan does, for every service at once); only those need their environment read."""
        if self.cgroup is not None:
            candidates = _read_procs(self.cgroup)
        else:
            if adopted is None:
                try:
                    adopted = [p.pid for p in psutil.Process(os.getpid()).children()]
                except psutil.Error:
                    adopted = []
            uid = os.getuid()
            candidates = set()
            for pid in adopted:
                with contextlib.suppress(psutil.Error):
                    if pid != self.leader and _tagged(psutil.Process(pid), self.tag, uid):
                        candidates.add(pid)
        self._note_adopted(candidates)
        return sorted(p for p in candidates - known if _alive(p))

    def signal(self, sig: int) -> int:
        """Send ``sig`` to every member; the number signalled."""
        if sig == signal.SIGKILL and self.cgroup is not None and _cgroup_kill(self.cgroup):
            return len(self.members())
        return sum(_signal(pid, sig) for pid in self.members())

    def clear(self, timeout: float) -> list[int]:
        """SIGKILL every member left (the leader is gone or going) and wait until none is alive.
        Returns who was still there. Blocking: call it from a thread."""
        left = [p for p in self.members() if p != self.leader]
        if not left:
            return []
        self.signal(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        # Adopted members are gone only once reaped: until then they are zombies in the engine's table.
        while ([p for p in self.members() if p != self.leader] or self.lineage.adopted & set(left)) and time.monotonic() < deadline:
            time.sleep(GONE_POLL)
        return left

    def _note_adopted(self, pids: set[int]) -> None:
        """Remember members re-parented to the engine while they can still be recognised (a zombie's
        environment is gone), then reap those that ended."""
        if self.cgroup is not None:
            return  # not a subreaper: nothing is re-parented to the engine
        me = os.getpid()
        for pid in pids:
            try:
                if pid != self.leader and psutil.Process(pid).ppid() == me:
                    self.lineage.adopted.add(pid)
            except psutil.Error:
                pass
        self.lineage.reap()


class Lineage:
    """The engine's hold on the descendants of all its services."""

    def __init__(self, db_path: Path) -> None:
        self.key = engine_key(db_path)
        self.db = str(Path(db_path).resolve())
        self.group: Path | None = None
        base = None if os.environ.get("AURORA_NO_CGROUP") == "1" else cgroup2_base()
        # The groups themselves are made at the first spawn (see Descendants.preexec): an engine that
        # never starts a service leaves nothing behind in the hierarchy.
        if base is not None and os.access(base, os.W_OK):
            self.group = base / self.key
        elif base is not None:
            log.info("cgroup v2 at %s is not writable: falling back to a child subreaper", base)
        self.mode = "cgroup" if self.group is not None else "subreaper"
        if self.group is None and not set_subreaper():
            log.warning("cannot become a child subreaper: double-forked daemons re-parent to PID 1 (still found by their tag)")
        self._services: dict[str, Descendants] = {}
        # Service descendants re-parented to the engine (subreaper): theirs is the only exit status the
        # engine collects itself; leaders are reaped by their supervisor.
        self.adopted: set[int] = set()

    def service(self, name: str) -> Descendants:
        if name not in self._services:
            self._services[name] = Descendants(self, name)
        return self._services[name]

    def reap(self) -> None:
        for pid in list(self.adopted):
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG) is None:
                    continue  # still running
            except ChildProcessError:
                pass
            self.adopted.discard(pid)

    def leftovers(self) -> dict[str, list[int]]:
        """What an earlier engine on this database left running, by service (its own children excluded):
        the members of its cgroups and, whatever the mode (the last engine may have run without
        cgroups), every process of ours carrying its tag."""
        found: dict[str, set[int]] = {}
        if self.group is not None:
            for sub in _subgroups(self.group):
                found.setdefault(sub.name, set()).update(self.service(sub.name).members())
        for name, pids in self.tagged().items():
            found.setdefault(name, set()).update(pids)
        return {name: sorted(pids) for name, pids in found.items() if pids}

    def tagged(self) -> dict[str, list[int]]:
        """Our own user's live processes that carry this lineage's tag, by service."""
        found: dict[str, list[int]] = {}
        uid, me, prefix = os.getuid(), os.getpid(), self.key + "/"
        for proc in psutil.process_iter():
            try:
                tag = proc.environ().get(TAG_VAR, "") if proc.pid != me and proc.uids().real == uid else ""
            except (psutil.Error, OSError):
                continue
            if tag.startswith(prefix) and _alive(proc.pid):
                found.setdefault(tag[len(prefix):], []).append(proc.pid)
        return found

    def close(self) -> None:
        """Remove the (empty) cgroups; a group still populated stays for the next engine to find."""
        if self.group is None:
            return
        for child in _subgroups(self.group):
            _rmdir(child)
        _rmdir(self.group)


@dataclass(frozen=True)
class Owner:
    """The Aurora engine a process belongs to, as its lineage tag or its cgroup says."""

    key: str
    service: str
    db: str | None  # the database's path, when the process's environment could be read

    def describe(self) -> str:
        engine = f"the Aurora engine on {self.db}" if self.db else f"another Aurora engine ({self.key})"
        return f"service {self.service} of {engine}"


_KEY = re.compile(r"aurora-[0-9a-f]{12}")


def owner_of(pid: int) -> Owner | None:
    """Whose Aurora lineage ``pid`` is of, if any: the environment tag first (readable for our own
    user's processes, or by root), else a cgroup named ``aurora-<hash>/<service>``."""
    env = procfs.environ(pid) or {}
    key, sep, service = env.get(TAG_VAR, "").partition("/")
    if sep and _KEY.fullmatch(key):
        return Owner(key, service, env.get(DB_VAR))
    parts = (procfs.cgroup(pid) or "").strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if _KEY.fullmatch(part):
            return Owner(part, parts[i + 1], env.get(DB_VAR))
    return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def _subgroups(group: Path) -> list[Path]:
    try:
        return [p for p in group.iterdir() if p.is_dir()]
    except OSError:
        return []


def _read_procs(group: Path) -> set[int]:
    try:
        return {int(x) for x in (group / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def _cgroup_kill(group: Path) -> bool:
    try:
        (group / "cgroup.kill").write_text("1")
        return True
    except OSError:
        return False  # kernels before 5.14 have no cgroup.kill: each member is signalled instead


def _rmdir(path: Path) -> None:
    # A killed member stays counted in its group until its new parent has reaped it: a moment.
    deadline = time.monotonic() + RMDIR_WAIT
    while True:
        try:
            path.rmdir()
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                    log.info("cannot remove cgroup %s: %s", path, exc.strerror)
                return
        time.sleep(GONE_POLL)
