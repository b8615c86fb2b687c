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

# ((pattern_id, ((param, value), ...)), ...), sorted, so that the frozen dataclasses stay hashable.
PatternOverrides = tuple[tuple[str, tuple[tuple[str, float], ...]], ...]


@dataclass(frozen=True)
class HealthCheck:
    kind: str  # "http" | "tcp" | "none"
    path: str | None = None  # for http, starts with "/"
    expect_status: int = 200
    expect_body: str | None = None  # substring that the body must contain
    timeout: float = 2.0


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
