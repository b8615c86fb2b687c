"""Plain data passed between the engine, the store, the control socket and the console.

Everything here is a dataclass that round-trips through JSON, because the same values travel over the
control socket to an attached console or the CLI.
"""
from __future__ import annotations

import dataclasses
import functools
import time
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ServiceState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    BACKOFF = "backoff"
    FAILED = "failed"
    # A monitor-only service whose process is not found (found, it is "running"): Aurora never starts it.
    UNMANAGED = "unmanaged"


@dataclass(frozen=True)
class ProcessIdentity:
    """What makes a process *that* process: a pid alone can be reused by an unrelated program."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...]
    # Read from /proc once the process has exec'd (see procfs.identity); None where not known, as in
    # records written before these were kept. ``starttime`` is in clock ticks since boot and compared
    # exactly: with the pid and the boot it names one process for good.
    starttime: int | None = None
    exe: str | None = None
    pgid: int | None = None
    sid: int | None = None
    cgroup: str | None = None
    boot_id: str | None = None


@dataclass
class ProcessFacts:
    """psutil facts about a service's whole process tree (the leader plus every descendant)."""

    pid: int
    status: str
    cpu_percent: float
    rss: int
    fds: int
    threads: int
    connections: int
    children: int
    zombies: int
    create_time: float
    cmdline: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    # The leader's soft RLIMIT_NOFILE, so descriptor use can be judged against what it may open.
    fd_limit: int | None = None
    # Members of the service's process group that are no longer in its tree (their parent is gone).
    orphans: list[int] = field(default_factory=list)


@dataclass
class PortFacts:
    port: int
    listening: bool
    holder_pid: int | None = None
    holder_cmdline: list[str] = field(default_factory=list)
    holder_username: str | None = None
    # True when the holder is the service's own process tree, False when it is someone else.
    holder_is_service: bool | None = None
    # When someone else's holder is a service of an Aurora engine (another one, on another database,
    # or another service of this one): that engine's database (or its lineage key, if the holder's
    # environment cannot be read) and the service's name.
    holder_engine: str | None = None
    holder_service: str | None = None
    holder_owner: str | None = None  # the two in words, e.g. "service web of the Aurora engine on /srv/a.db"


# How a failed check's error begins says what kind of failure it was, for the detectors: no answer in
# time (a hang), an HTTP body or a tcp answer without the expected text, an exec check that failed.
TIMED_OUT = "timed out"
WRONG_BODY = "body does not contain"
WRONG_ANSWER = "answer does not contain"
EXEC_FAILED = "check exited"


@dataclass
class HealthResult:
    kind: str
    ok: bool | None
    latency_ms: float | None = None
    status_code: int | None = None
    body_excerpt: str | None = None
    error: str | None = None


@dataclass
class HostSample:
    ts: float
    cpu_percent: float
    mem_percent: float
    mem_available: int
    load1: float
    load5: float
    load15: float
    disk_percent: float
    disk_free: int
    cpu_count: int


@dataclass
class ServiceSample:
    service: str
    ts: float
    state: str
    process: ProcessFacts | None = None
    port: PortFacts | None = None
    health: HealthResult | None = None
    # Error lines the service has written so far (cumulative), for error-burst detection.
    log_errors: int = 0


@dataclass
class ExitInfo:
    ts: float
    code: int | None
    signal: str | None
    expected: bool
    runtime: float
    # Whether this run ever passed a health check: an exit before that is a start-up failure.
    was_healthy: bool = False

    def describe(self) -> str:
        how = f"killed by {self.signal}" if self.signal else f"exited with status {self.code}"
        return f"{how} after {self.runtime:.1f}s"


@dataclass
class ServiceStatus:
    name: str
    state: str
    managed: bool
    pid: int | None
    port: int | None
    healthy: bool | None
    restarts: int
    uptime: float | None
    cpu: float | None
    rss: int | None
    started_at: float | None = None
    latency_ms: float | None = None
    health_error: str | None = None
    last_exit: ExitInfo | None = None
    depends_on: list[str] = field(default_factory=list)
    # When Aurora next tries to bring it back (epoch seconds), while it waits out a back-off.
    next_try_at: float | None = None


@dataclass
class StorageProblem:
    """A path Aurora cannot write (a service's log, its database) or whose file was swapped under it,
    and what that has cost so far. Supervision goes on regardless; this is what the operator is told."""

    kind: str  # "log" | "database"
    path: str
    error: str
    since: float
    cause: str = "unwritable"  # unwritable | deleted | replaced
    dropped_bytes: int = 0  # log output not written
    dropped_lines: int = 0
    queued: int = 0  # database statements kept in memory, waiting for a commit
    dropped_writes: int = 0  # database statements given up on (the queue was full)


@dataclass
class FleetSnapshot:
    ts: float
    services: list[ServiceStatus]
    host: HostSample | None
    last_scan_at: float | None
    scans: int
    interval: float
    engine_pid: int
    db: str
    config_source: str
    # What cannot be written right now (empty while every write works).
    storage: list[StorageProblem] = field(default_factory=list)

    @property
    def healthy_count(self) -> int:
        return sum(1 for s in self.services if s.healthy)

    def service(self, name: str) -> ServiceStatus | None:
        return next((s for s in self.services if s.name == name), None)


@dataclass
class Event:
    kind: str
    service: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)


# --- JSON round trips -------------------------------------------------------------------------------

def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(cls: Any, data: Any) -> Any:
    """Rebuild a value of type ``cls`` from ``to_jsonable`` output, guided by type hints: dataclasses
    (nested ones too), ``list[X]``, ``X | None`` and plain JSON values."""
    if data is None:
        return None
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(cls) if a is not type(None)]
        return from_jsonable(options[0], data) if len(options) == 1 else data
    if origin in (list, tuple) and isinstance(data, list):
        args = typing.get_args(cls)
        item = args[0] if args else Any
        return [from_jsonable(item, v) for v in data]
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and isinstance(data, dict):
        hints = _hints(cls)
        kwargs = {f.name: from_jsonable(hints.get(f.name, Any), data[f.name])
                  for f in dataclasses.fields(cls) if f.name in data and f.init}
        return cls(**kwargs)
    return data


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
