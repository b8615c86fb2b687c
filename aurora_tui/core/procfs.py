"""What the kernel says about a process now, read straight from /proc.

psutil answers most questions, but two need /proc itself: the exact start time (``starttime`` in clock
ticks since boot, field 22 of ``/proc/PID/stat``, compared exactly, where psutil's float ``create_time``
needs a tolerance) and the state letter, which tells a zombie (exited, not yet reaped) from a live
process in one read. Every function here only reads; a process that is gone or not ours to read gives
None, never an exception.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from .model import ProcessIdentity

# States in which a pid no longer runs a program: zombie (exited, waiting for its parent) and dead.
ENDED_STATES = frozenset("ZX")
# Stopped by a signal (SIGSTOP, SIGTSTP) or by a tracer: alive, but it cannot answer anything.
STOPPED_STATES = frozenset("Tt")
DELETED = " (deleted)"


@dataclass(frozen=True)
class Stat:
    state: str
    ppid: int
    pgid: int
    sid: int
    starttime: int
    # What a scan measures, from the same read: CPU time in clock ticks, threads, resident pages.
    utime: int = 0
    stime: int = 0
    threads: int = 0
    rss_pages: int = 0


# The state letter in psutil's words, which the detectors and the console speak.
STATUS_WORDS = {
    "R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped", "t": "tracing-stop", "Z": "zombie",
    "X": "dead", "x": "dead", "I": "idle", "W": "waking", "K": "wake-kill", "P": "parked",
}


def read_stat(pid: int) -> Stat | None:
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as handle:
            data = handle.read()
    except (OSError, ValueError):
        return None
    return parse_stat(data)


def parse_stat(data: bytes) -> Stat | None:
    """Fields after the command name, which may itself hold spaces and parentheses: it ends at the
    last ')'. Field N of proc(5) is ``rest[N - 3]``."""
    try:
        rest = data[data.rindex(b")") + 2:].split()
        return Stat(
            rest[0].decode(), int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]),
            int(rest[11]), int(rest[12]), int(rest[17]), int(rest[21]),
        )
    except (ValueError, IndexError):
        return None


def all_stats() -> dict[int, Stat]:
    """Every process's stat line, in one pass over /proc (a process that ends meanwhile is left out)."""
    found: dict[int, Stat] = {}
    try:
        entries = os.scandir("/proc")
    except OSError:
        return found
    with entries:
        for entry in entries:
            name = entry.name
            if name.isdigit() and (stat := read_stat(int(name))) is not None:
                found[int(name)] = stat
    return found


def fd_sockets(pid: int) -> tuple[int, dict[int, str]] | None:
    """How many descriptors ``pid`` has open, and its sockets (inode -> descriptor number); None when
    its descriptors cannot be read (gone, or another user's without the right to look)."""
    try:
        entries = os.scandir(f"/proc/{int(pid)}/fd")
    except (OSError, ValueError):
        return None
    count, sockets = 0, {}
    with entries:
        for entry in entries:
            count += 1
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                sockets[int(target[8:-1])] = entry.name
    return count, sockets


def holds_socket(pid: int, fd: str, inode: int) -> bool:
    """Whether descriptor ``fd`` of ``pid`` is still socket ``inode`` (one readlink)."""
    try:
        return os.readlink(f"/proc/{int(pid)}/fd/{fd}") == f"socket:[{inode}]"
    except (OSError, ValueError):
        return False


@functools.cache
def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


@functools.cache
def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def running(pid: int | None) -> bool:
    """Whether ``pid`` runs a program now: it exists and is neither a zombie nor dead."""
    if pid is None:
        return False
    stat = read_stat(pid)
    return stat is not None and stat.state not in ENDED_STATES


def state(pid: int) -> str | None:
    stat = read_stat(pid)
    return stat.state if stat is not None else None


def exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{int(pid)}/exe")
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as handle:
            raw = handle.read()
    except (OSError, ValueError):
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1]) if raw else ()


def cgroup(pid: int) -> str | None:
    """The process's cgroup v2 path (the ``0::`` line), or None without cgroup v2."""
    try:
        with open(f"/proc/{int(pid)}/cgroup") as handle:
            lines = handle.read().splitlines()
    except (OSError, ValueError):
        return None
    return next((line[3:] for line in lines if line.startswith("0::")), None)


def environ(pid: int) -> dict[str, str] | None:
    """The environment the process started with; readable for our own user's processes (or by root)."""
    try:
        with open(f"/proc/{int(pid)}/environ", "rb") as handle:
            raw = handle.read()
    except (OSError, ValueError):
        return None
    found: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            found[key.decode(errors="replace")] = value.decode(errors="replace")
    return found


def uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{int(pid)}").st_uid
    except (OSError, ValueError):
        return None


@functools.cache
def boot_id() -> str | None:
    """Changes at every boot: a start time in ticks since boot means nothing across a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


@functools.cache
def _boot_time() -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def create_time(starttime: int) -> float:
    """Epoch seconds, computed the way psutil computes ``create_time`` (so the two agree)."""
    return _boot_time() + starttime / clock_ticks()


@functools.cache
def _own_cmdline() -> tuple[str, ...] | None:
    return cmdline(os.getpid())


def identity(pid: int) -> ProcessIdentity | None:
    """The identity of ``pid`` once it runs its own program; None while it does not (yet).

    "Has exec'd" is judged from the kernel's side, since a service may well be the very same Python
    as the engine (same executable, same comm): a child between fork and exec carries the engine's own
    command line, and inside execve, after the old image is gone but before the new one has laid out
    its argv, its command line reads empty. So: the command line is not empty and is not the engine's
    own. (``Popen`` returns only once exec has passed its point of no return, because the error pipe
    it waits on is close-on-exec; this check also covers anyone reading earlier.) The start time,
    process group and session never change at exec; the executable is swapped before the argv
    appears, so once the argv is there, all of them describe the new program."""
    stat = read_stat(pid)
    if stat is None or stat.state in ENDED_STATES:
        return None
    args = cmdline(pid)
    if not args or args == _own_cmdline():
        return None
    return ProcessIdentity(
        pid=pid, create_time=create_time(stat.starttime), cmdline=args, starttime=stat.starttime,
        exe=exe(pid), pgid=stat.pgid, sid=stat.sid, cgroup=cgroup(pid), boot_id=boot_id(),
    )


def early_identity(pid: int, fallback: tuple[str, ...]) -> ProcessIdentity | None:
    """What can be known of ``pid`` at once, before exec is over: its start time, group and session
    (none of which exec changes), with ``fallback`` standing in for the command line until it is read."""
    stat = read_stat(pid)
    if stat is None:
        return None
    return ProcessIdentity(
        pid=pid, create_time=create_time(stat.starttime), cmdline=fallback, starttime=stat.starttime,
        pgid=stat.pgid, sid=stat.sid, boot_id=boot_id(),
    )


def same_exe(a: str | None, b: str | None) -> bool:
    """A binary replaced on disk (a package upgrade) reads as "path (deleted)": still the same program."""
    if a is None or b is None:
        return True  # not known on one side: the other checks decide
    return a.removesuffix(DELETED) == b.removesuffix(DELETED)


def matches(recorded: ProcessIdentity, now: ProcessIdentity | None) -> bool:
    """Whether the process there now is the one ``recorded``: pid and start time exactly (and the same
    boot), then the executable, or the command line where the executable was not recorded. Records
    from before start times were kept fall back to the old check: create time within 0.05 s and the
    same command line."""
    if now is None or now.pid != recorded.pid:
        return False
    if recorded.starttime is None:
        return abs(now.create_time - recorded.create_time) < 0.05 and bool(recorded.cmdline) and now.cmdline == recorded.cmdline
    if now.starttime != recorded.starttime:
        return False
    if recorded.boot_id and now.boot_id and recorded.boot_id != now.boot_id:
        return False
    if recorded.exe is not None and now.exe is not None:
        return same_exe(recorded.exe, now.exe)
    return not recorded.cmdline or now.cmdline == recorded.cmdline


def current(pid: int) -> ProcessIdentity | None:
    """The identity of whatever runs as ``pid`` now, for comparison with a recorded one (no exec
    check: a pid already recorded is compared as it is)."""
    stat = read_stat(pid)
    if stat is None or stat.state in ENDED_STATES:
        return None
    return ProcessIdentity(
        pid=pid, create_time=create_time(stat.starttime), cmdline=cmdline(pid) or (), starttime=stat.starttime,
        exe=exe(pid), pgid=stat.pgid, sid=stat.sid, cgroup=cgroup(pid), boot_id=boot_id(),
    )
