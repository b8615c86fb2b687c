"""Measurements: psutil facts of process trees, who holds which port, the host.

The psutil calls block, so the engine runs :meth:`ProcessProber.probe` in a thread; health checks are
coroutines of their own (:mod:`.health`). Every function here reports what it saw and never acts.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .model import HostSample, PortFacts, ProcessFacts


@dataclass
class ConnectionTable:
    """One pass over the host per scan: inet listeners by port, open connections by pid, and each
    process's children. Reading these once, instead of once per service, keeps a scan linear in the
    number of services (psutil's ``children()`` alone rereads every process's parent each call)."""

    listeners: dict[int, list[int | None]]
    connections_by_pid: dict[int, int]
    children: dict[int, list[int]] = field(default_factory=dict)
    groups: dict[int, list[int]] = field(default_factory=dict)

    def descendants(self, pid: int) -> list[int]:
        found: list[int] = []
        stack = list(self.children.get(pid, ()))
        while stack:
            child = stack.pop()
            found.append(child)
            stack.extend(self.children.get(child, ()))
        return found

    @classmethod
    def read(cls) -> "ConnectionTable":
        sockets = _linux_sockets() if sys.platform.startswith("linux") else None
        listeners, by_pid = sockets if sockets is not None else _psutil_sockets()
        children: dict[int, list[int]] = {}
        groups: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            ppid = proc.info["ppid"]
            if ppid:
                children.setdefault(ppid, []).append(proc.pid)
            try:
                groups.setdefault(os.getpgid(proc.pid), []).append(proc.pid)
            except OSError:
                pass
        return cls(listeners, by_pid, children, groups)


def _psutil_sockets() -> tuple[dict[int, list[int | None]], dict[int, int]]:
    listeners: dict[int, list[int | None]] = {}
    by_pid: dict[int, int] = {}
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError):
        conns = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr:
            holders = listeners.setdefault(c.laddr.port, [])
            if c.pid not in holders:
                holders.append(c.pid)
        elif c.pid is not None and c.status != psutil.CONN_NONE:
            by_pid[c.pid] = by_pid.get(c.pid, 0) + 1
    return listeners, by_pid


def _linux_sockets() -> tuple[dict[int, list[int | None]], dict[int, int]] | None:
    """TCP listeners and per-process connection counts straight from /proc.

    psutil builds a Python object for every socket in the table, including the TIME_WAIT entries that
    health checks leave behind by the thousand on a busy host; those have no owner (inode 0) and are
    skipped here before any parsing. Sockets of processes we may not inspect have no known pid."""
    inode_pid: dict[int, int] = {}
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                fds = os.scandir(f"/proc/{entry.name}/fd")
            except OSError:
                continue
            with fds:
                for fd in fds:
                    try:
                        target = os.readlink(fd.path)
                    except OSError:
                        continue
                    if target.startswith("socket:["):
                        inode_pid[int(target[8:-1])] = int(entry.name)
    listeners: dict[int, list[int | None]] = {}
    by_pid: dict[int, int] = {}
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            handle = open(table, "rb")
        except OSError:
            continue
        found_table = True
        with handle:
            next(handle, None)
            for line in handle:
                fields = line.split(None, 10)
                if len(fields) < 10 or fields[9] == b"0":
                    continue
                pid = inode_pid.get(int(fields[9]))
                if fields[3] == b"0A":  # LISTEN
                    port = int(fields[1].rsplit(b":", 1)[1], 16)
                    holders = listeners.setdefault(port, [])
                    if pid not in holders:
                        holders.append(pid)
                elif pid is not None:
                    by_pid[pid] = by_pid.get(pid, 0) + 1
    return (listeners, by_pid) if found_table else None


class ProcessProber:
    """Keeps psutil.Process objects between scans so CPU percentages cover the time since the last scan."""

    def __init__(self) -> None:
        self._cache: dict[int, psutil.Process] = {}

    def _process(self, pid: int) -> psutil.Process:
        proc = self._cache.get(pid)
        if proc is not None and proc.is_running():
            return proc
        proc = psutil.Process(pid)
        proc.cpu_percent(None)  # prime: the first reading of a new process is always 0.0
        self._cache[pid] = proc
        return proc

    def forget_dead(self, live_pids: set[int]) -> None:
        for pid in list(self._cache):
            if pid not in live_pids:
                del self._cache[pid]

    def tree(self, pid: int, create_time: float | None, table: ConnectionTable) -> ProcessFacts | None:
        """Facts for ``pid`` and its descendants, or None when it is gone or the pid now belongs to
        another program (a different create time)."""
        try:
            leader = self._process(pid)
            with leader.oneshot():
                if create_time is not None and abs(leader.create_time() - create_time) > 0.05:
                    return None
                facts = ProcessFacts(
                    pid=pid,
                    status=leader.status(),
                    cpu_percent=leader.cpu_percent(None),
                    rss=leader.memory_info().rss,
                    fds=_num_fds(leader),
                    threads=leader.num_threads(),
                    connections=table.connections_by_pid.get(pid, 0),
                    children=0,
                    zombies=0,
                    create_time=leader.create_time(),
                    cmdline=leader.cmdline(),
                    pids=[pid],
                    fd_limit=_fd_limit(leader),
                )
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None
        for child_pid in table.descendants(pid):
            # A child can vanish between listing and reading; it simply no longer counts.
            try:
                try:
                    proc = self._process(child_pid)
                except psutil.ZombieProcess:
                    facts.children += 1
                    facts.zombies += 1
                    facts.pids.append(child_pid)
                    continue
                facts.children += 1
                facts.pids.append(child_pid)
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        facts.zombies += 1
                        continue
                    facts.cpu_percent += proc.cpu_percent(None)
                    facts.rss += proc.memory_info().rss
                    facts.fds += _num_fds(proc)
                    facts.threads += proc.num_threads()
                facts.connections += table.connections_by_pid.get(child_pid, 0)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
        in_tree = set(facts.pids)
        facts.orphans = [p for p in table.groups.get(pid, ()) if p not in in_tree and _alive(p)]
        return facts


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _fd_limit(proc: psutil.Process) -> int | None:
    try:
        soft, _ = proc.rlimit(psutil.RLIMIT_NOFILE)
    except (psutil.Error, AttributeError, OSError):
        return None
    return soft if soft > 0 else None


def _num_fds(proc: psutil.Process) -> int:
    try:
        return proc.num_fds()
    except (psutil.AccessDenied, AttributeError):
        return 0


def port_facts(port: int, table: ConnectionTable, service_pids: set[int]) -> PortFacts:
    holders = table.listeners.get(port, [])
    if not holders:
        return PortFacts(port=port, listening=False)
    # Prefer reporting a holder that is not the service: that is the one an operator needs to see.
    known = [p for p in holders if p is not None]
    foreign = [p for p in known if p not in service_pids]
    pid = (foreign or known or [None])[0]
    facts = PortFacts(port=port, listening=True, holder_pid=pid)
    if pid is None:
        return facts
    facts.holder_is_service = pid in service_pids
    try:
        proc = psutil.Process(pid)
        facts.holder_cmdline = proc.cmdline()
        facts.holder_username = proc.username()
    except psutil.Error:
        pass
    return facts


def host_sample(data_dir: Path) -> HostSample:
    vm = psutil.virtual_memory()
    try:
        load1, load5, load15 = os.getloadavg()
    except OSError:
        load1 = load5 = load15 = 0.0
    probe_dir = data_dir if data_dir.exists() else Path("/")
    disk = psutil.disk_usage(str(probe_dir))
    return HostSample(
        ts=time.time(),
        cpu_percent=psutil.cpu_percent(None),
        mem_percent=vm.percent,
        mem_available=vm.available,
        load1=load1,
        load5=load5,
        load15=load15,
        disk_percent=disk.percent,
        disk_free=disk.free,
        cpu_count=psutil.cpu_count() or 1,
    )
