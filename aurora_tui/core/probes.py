"""Measurements: facts of process trees, who holds which port, the host.

Process trees are read from /proc itself (one stat read and one descriptor listing per process),
the TCP table from the kernel's socket diagnostics (:mod:`.sockdiag`); psutil serves the host-wide
figures. These reads block, so the engine runs them in a thread; health checks are coroutines of
their own (:mod:`.health`). Every function here reports what it saw and never acts.
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import procfs
from .model import HostSample, PortFacts, ProcessFacts
from .sockdiag import TcpSockets, tcp_sockets


@dataclass
class ConnectionTable:
    """One look at the host per scan: every process's stat line (parent, group, state and what it
    uses) and the TCP sockets. Which process owns a socket is found from the descriptors of the
    processes a scan reads anyway (the services' trees); only a listener on a watched port that none
    of them holds sends it looking further (see :class:`SocketOwners`). Reading the host once, instead
    of once per service, keeps a scan linear in the number of services."""

    procs: dict[int, procfs.Stat]
    sockets: TcpSockets
    owners: "SocketOwners | None" = None
    children: dict[int, list[int]] = field(default_factory=dict)
    groups: dict[int, list[int]] = field(default_factory=dict)
    # Socket inode -> its owner, as the descriptors read this scan say.
    owner: dict[int, int] = field(default_factory=dict)
    listening: set[int] = field(default_factory=set)  # inodes of every listener

    def __post_init__(self) -> None:
        self.listening = {inode for inodes in self.sockets.listening.values() for inode in inodes}

    def descendants(self, pid: int) -> list[int]:
        found: list[int] = []
        stack = list(self.children.get(pid, ()))
        while stack:
            child = stack.pop()
            found.append(child)
            stack.extend(self.children.get(child, ()))
        return found

    def holders(self, port: int) -> list[int | None]:
        """The pids listening on ``port`` (None for a listener whose owner cannot be seen)."""
        found: list[int | None] = []
        for inode in self.sockets.listening.get(port, ()):
            pid = self.owner.get(inode)
            if pid is None and self.owners is not None:
                pid = self.owners.find(inode, self)
            if pid not in found:
                found.append(pid)
        return found

    def saw(self, pid: int, sockets: dict[int, str]) -> int:
        """Note whose sockets these are; how many of them are connections (not listeners)."""
        connected = self.sockets.connected
        count = 0
        for inode, fd in sockets.items():
            if inode in connected:
                count += 1
            elif inode in self.listening:
                self.owner[inode] = pid
                if self.owners is not None:
                    self.owners.remember(inode, pid, fd)
        return count

    @classmethod
    def read(cls, owners: "SocketOwners | None" = None) -> "ConnectionTable":
        procs = procfs.all_stats()
        children: dict[int, list[int]] = {}
        groups: dict[int, list[int]] = {}
        for pid, stat in procs.items():
            if stat.ppid:
                children.setdefault(stat.ppid, []).append(pid)
            groups.setdefault(stat.pgid, []).append(pid)
        return cls(procs, tcp_sockets(), owners if owners is not None else SocketOwners(), children, groups)


class SocketOwners:
    """Which process holds a listener, remembered across scans and checked with one readlink each time.

    A listener that no service's tree holds (a squatter, a monitor-only server, another engine's
    service) is looked for once among every process's descriptors; its owner is remembered by
    (pid, descriptor) and confirmed cheaply on later scans. One that cannot be found (another user's
    process, for a non-root engine) is not looked for again for a while."""

    UNSEEN_FOR = 30.0

    def __init__(self) -> None:
        self._known: dict[int, tuple[int, str]] = {}  # listener inode -> (pid, fd)
        self._unseen: dict[int, float] = {}  # inode -> when it was last looked for in vain

    def remember(self, inode: int, pid: int, fd: str) -> None:
        self._known[inode] = (pid, fd)

    def find(self, inode: int, table: ConnectionTable) -> int | None:
        known = self._known.get(inode)
        if known is not None and procfs.holds_socket(known[0], known[1], inode):
            table.owner[inode] = known[0]
            return known[0]
        now = time.monotonic()
        if now - self._unseen.get(inode, -self.UNSEEN_FOR) < self.UNSEEN_FOR:
            return None
        self._search(table)
        pid = table.owner.get(inode)
        if pid is None:
            self._unseen[inode] = now
        return pid

    def _search(self, table: ConnectionTable) -> None:
        """Every process's descriptors, once per scan at most: who holds each listener."""
        listening = table.listening
        for pid in table.procs:
            found = procfs.fd_sockets(pid)
            if found is None:
                continue
            for inode, fd in found[1].items():
                if inode in listening:
                    table.owner.setdefault(inode, pid)
                    self._known[inode] = (pid, fd)
        table.owners = None  # searched: what is still unknown this scan stays unknown

    def forget(self, listening: set[int]) -> None:
        """Drop what is remembered of listeners that are gone."""
        self._known = {i: v for i, v in self._known.items() if i in listening}
        self._unseen = {i: t for i, t in self._unseen.items() if i in listening}


class ProcessProber:
    """Reads process trees from /proc; keeps each process's last CPU time between scans so CPU
    percentages cover the time since the last scan (psutil's ``cpu_percent(None)``, without a
    psutil object and its several reads per process)."""

    def __init__(self) -> None:
        self._cpu: dict[int, tuple[int, int, float]] = {}  # pid -> (starttime, cpu ticks, when)
        self.owners = SocketOwners()

    def forget_dead(self, live_pids: set[int]) -> None:
        for pid in list(self._cpu):
            if pid not in live_pids:
                del self._cpu[pid]

    def _cpu_percent(self, pid: int, stat: procfs.Stat) -> float:
        ticks, now = stat.utime + stat.stime, time.monotonic()
        before = self._cpu.get(pid)
        self._cpu[pid] = (stat.starttime, ticks, now)
        if before is None or before[0] != stat.starttime or now <= before[2]:
            return 0.0  # a new process: the first reading is a baseline, as psutil's is
        return max(0.0, (ticks - before[1]) / procfs.clock_ticks() / (now - before[2]) * 100.0)

    def tree(self, pid: int, create_time: float | None, table: ConnectionTable) -> ProcessFacts | None:
        """Facts for ``pid`` and its descendants, or None when it is gone, a zombie, or the pid now
        belongs to another program (a different create time)."""
        stat = table.procs.get(pid) or procfs.read_stat(pid)
        if stat is None or stat.state in procfs.ENDED_STATES:
            return None
        started = procfs.create_time(stat.starttime)
        if create_time is not None and abs(started - create_time) > 0.05:
            return None
        args = procfs.cmdline(pid)
        if args is None:
            return None  # gone since the table was read
        page = procfs.page_size()
        fds, sockets = procfs.fd_sockets(pid) or (0, {})
        facts = ProcessFacts(
            pid=pid,
            status=procfs.STATUS_WORDS.get(stat.state, stat.state),
            cpu_percent=self._cpu_percent(pid, stat),
            rss=stat.rss_pages * page,
            fds=fds,
            threads=stat.threads,
            connections=table.saw(pid, sockets),
            children=0,
            zombies=0,
            create_time=started,
            cmdline=list(args),
            pids=[pid],
            fd_limit=_fd_limit(pid),
        )
        for child_pid in table.descendants(pid):
            child = table.procs.get(child_pid)
            if child is None:
                continue  # a child can vanish between listing and reading: it no longer counts
            facts.children += 1
            facts.pids.append(child_pid)
            if child.state in procfs.ENDED_STATES:
                facts.zombies += 1
                continue
            facts.cpu_percent += self._cpu_percent(child_pid, child)
            facts.rss += child.rss_pages * page
            facts.threads += child.threads
            found = procfs.fd_sockets(child_pid)
            if found is not None:
                facts.fds += found[0]
                facts.connections += table.saw(child_pid, found[1])
        in_tree = set(facts.pids)
        facts.orphans = [
            p for p in table.groups.get(pid, ())
            if p not in in_tree and (s := table.procs.get(p)) is not None and s.state not in procfs.ENDED_STATES
        ]
        return facts


def _alive(pid: int) -> bool:
    return procfs.running(pid)


def _fd_limit(pid: int) -> int | None:
    try:
        soft, _ = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return soft if soft > 0 else None


def port_facts(port: int, table: ConnectionTable, service_pids: set[int]) -> PortFacts:
    holders = table.holders(port)
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
