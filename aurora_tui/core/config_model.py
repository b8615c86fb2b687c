"""The parsed fleet configuration: what a valid config file becomes, and the error a bad one raises.

Import these from :mod:`aurora_tui.core.config`; they live here so that the key parsers in
:mod:`aurora_tui.core.config_keys` can build them without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
#: cpu_percent is per-process and may exceed 100 on multi-core machines (100 * cpu count).
MAX_CPU_PERCENT = 6400.0
#: Every duration and interval in a config is at most a day: beyond that a value is a typo (or an attack
#: on the arithmetic: 1e308 seconds overflows every deadline computed from it), never a wish.
MAX_DURATION = 86400.0
#: Samples are kept at most a year.
MAX_RETENTION_HOURS = 366 * 24.0

# ((pattern_id, ((param, value), ...)), ...), sorted, so that the frozen dataclasses stay hashable.
PatternOverrides = tuple[tuple[str, tuple[tuple[str, float], ...]], ...]


# What an HTTP check accepts: a code (200), a class ("2xx"), or several of either.
StatusExpectation = int | str | tuple[int | str, ...]

_SIMPLE_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}
_HEX = frozenset("0123456789abcdefABCDEF")


def decode_escapes(text: str) -> bytes:
    """``text`` as the bytes a tcp check sends or expects: ``\\r``, ``\\n``, ``\\t``, ``\\xNN`` and ``\\\\``
    written literally (a TOML literal string) become those bytes; everything else is UTF-8.

    Raises ValueError naming an escape it does not know, so a typo never goes out on the wire."""
    out = bytearray()
    pos = 0
    while (i := text.find("\\", pos)) >= 0:
        out += text[pos:i].encode()
        code = text[i + 1 : i + 2]
        digits = text[i + 2 : i + 4]
        if code in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[code]
            pos = i + 2
        elif code == "x" and len(digits) == 2 and set(digits) <= _HEX:
            out.append(int(digits, 16))
            pos = i + 4
        else:
            shown = text[i : i + 4] if code == "x" else text[i : i + 2]
            raise ValueError(f'unknown escape "{shown}"; use \\r, \\n, \\t, \\xNN, or \\\\ for a backslash')
    out += text[pos:].encode()
    return bytes(out)


@dataclass(frozen=True)
class HealthCheck:
    kind: str  # "http" | "tcp" | "exec" | "none"
    path: str | None = None  # for http, starts with "/"
    expect_status: StatusExpectation = 200
    expect_body: str | None = None  # substring that the body must contain
    timeout: float = 2.0
    host: str = "127.0.0.1"  # http and tcp
    scheme: str = "http"  # "http" | "https"
    verify_tls: bool = True
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers, in the order given
    # tcp: written as configured; escapes are decoded when the check runs (see decode_escapes).
    send: str | None = None
    expect: str | None = None
    exec: tuple[str, ...] = ()  # an argv run without a shell; exit 0 means healthy

    def expects_status(self, code: int) -> bool:
        wanted = self.expect_status if isinstance(self.expect_status, tuple) else (self.expect_status,)
        return any(code == w if isinstance(w, int) else str(code)[0] == w[0] for w in wanted)

    def expected_statuses(self) -> str:
        """The accepted statuses as written: ``200``, ``200, 204`` or ``2xx``."""
        wanted = self.expect_status if isinstance(self.expect_status, tuple) else (self.expect_status,)
        return ", ".join(str(w) for w in wanted)

    def describe(self, port: int | None) -> str:
        """One line saying what the check does, for evidence and messages."""
        if self.kind == "http":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"GET {self.scheme}://{host}:{port}{self.path or '/'} expecting {self.expected_statuses()}"
        if self.kind == "tcp":
            exchange = "".join(f", {key} {value!r}" for key, value in (("send", self.send), ("expect", self.expect)) if value is not None)
            return f"tcp {self.host}:{port}{exchange}"
        if self.kind == "exec":
            return "exec " + " ".join(self.exec)
        return "no health check"

    @classmethod
    def from_jsonable(cls, data: dict) -> HealthCheck:
        """Rebuild a check from its JSON form (lists back to the tuples a frozen dataclass needs).
        Keys it does not have (a check stored by an older version) keep their defaults."""
        data = dict(data)
        if isinstance(data.get("expect_status"), list):
            data["expect_status"] = tuple(data["expect_status"])
        data["headers"] = tuple(tuple(pair) for pair in data.get("headers", ()))
        data["exec"] = tuple(data.get("exec", ()))
        return cls(**data)


@dataclass(frozen=True)
class Limits:
    memory_mb: float | None = None
    cpu_percent: float | None = None
    fds_percent: float | None = None
    threads: int | None = None
    connections: int | None = None


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    command: tuple[str, ...]
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # sorted pairs; frozen-friendly
    port: int | None = None
    health: HealthCheck = HealthCheck("none")
    depends_on: tuple[str, ...] = ()
    start_grace: float = 10.0
    stop_timeout: float = 10.0
    restart_delay: float = 0.0
    limits: Limits = Limits()
    managed: bool = True
    # How a monitor-only service (managed = false) is found, besides its port: a pid file (resolved
    # path) or a regular expression searched in the joined command line.
    pidfile: str | None = None
    match: str | None = None
    # Programs a human-approved plan may run to start or stop a monitor-only service (no shell).
    start_command: tuple[str, ...] = ()
    stop_command: tuple[str, ...] = ()
    # Per-pattern threshold overrides.
    patterns: PatternOverrides = ()

    def pattern_overrides(self) -> dict[str, dict[str, float]]:
        return overrides_dict(self.patterns)


def overrides_dict(patterns: PatternOverrides) -> dict[str, dict[str, float]]:
    return {pattern: dict(params) for pattern, params in patterns}


def _default_db() -> Path:
    return platformdirs.user_data_path("aurora") / "aurora.db"


def _default_log_dir() -> Path:
    return platformdirs.user_log_path("aurora")


@dataclass(frozen=True)
class Settings:
    interval: float = 15.0
    db: Path = field(default_factory=_default_db)
    log_dir: Path = field(default_factory=_default_log_dir)
    retention_hours: float = 24.0
    # A fix runs without a human only at or above this confidence (and only if its risk class allows).
    auto_confidence: int = 7
    # False: diagnose and propose, but every fix waits for a human (a monitor-and-advise mode).
    auto_heal: bool = True
    # Automatic actions on one service within the rate window (5 min) before further ones are slowed to
    # one per back-off cap and the operator is told; never a stop to healing.
    rate_limit: int = 5
    # Threshold overrides for every service and for the host patterns, as in ServiceConfig.patterns.
    patterns: PatternOverrides = ()

    def pattern_overrides(self) -> dict[str, dict[str, float]]:
        return overrides_dict(self.patterns)


@dataclass(frozen=True)
class Config:
    source: str  # the file path, or "<demo fleet>"
    settings: Settings
    services: tuple[ServiceConfig, ...]

    def service(self, name: str) -> ServiceConfig:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [svc.name for svc in self.services]

    def start_levels(self) -> list[list[str]]:
        """Dependency levels: level 0 has no dependencies, each later level depends only on
        earlier ones.  Names are sorted within a level.  Dependencies on unknown services are
        ignored; should a cycle slip through (a hand-built Config), its members form a last level."""
        known = {svc.name for svc in self.services}
        pending = {svc.name: {d for d in svc.depends_on if d in known and d != svc.name} for svc in self.services}
        placed: set[str] = set()
        levels: list[list[str]] = []
        while pending:
            level = sorted(name for name, deps in pending.items() if deps <= placed)
            if not level:
                levels.append(sorted(pending))
                break
            levels.append(level)
            placed.update(level)
            for name in level:
                del pending[name]
        return levels

    def dependants(self, name: str) -> list[str]:
        """Services that depend directly on ``name`` (sorted; empty for an unknown name)."""
        return sorted(svc.name for svc in self.services if name in svc.depends_on)


class ConfigError(Exception):
    """A config that cannot be used: ``file`` plus a list of ``(key, problem)``.

    ``str()`` gives one line per problem, ``'{file}: {key}: {problem}'`` (the key part is
    left out when the key is ``""``, e.g. for syntax errors and unreadable files)."""

    def __init__(self, file: str, problems: list[tuple[str, str]]):
        self.file = str(file)
        self.problems = list(problems)
        super().__init__(self.file, self.problems)

    def lines(self) -> list[str]:
        out = []
        for key, problem in self.problems:
            out.append(f"{self.file}: {key}: {problem}" if key else f"{self.file}: {problem}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines()) or f"{self.file}: invalid config"
