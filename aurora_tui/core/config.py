"""Fleet configuration: the TOML file format, its validation and the demo fleet.

A config file has one optional ``[aurora]`` table of settings and one or more
``[[service]]`` tables.  :func:`parse_config` checks everything it can and
reports *all* problems at once in a single :class:`ConfigError`, each naming
the file, the key path (``service[2].port``) and what is wrong with it.

This module is pure: no Textual, no processes, no network.
"""
from __future__ import annotations

import difflib
import math
import re
import sys
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import platformdirs

__all__ = [
    "HealthCheck",
    "Limits",
    "ServiceConfig",
    "Settings",
    "Config",
    "ConfigError",
    "parse_config",
    "load_config",
    "demo_config_text",
    "demo_config",
    "with_overrides",
    "DEMO_SOURCE",
    "NAME_PATTERN",
    "MAX_CPU_PERCENT",
]

DEMO_SOURCE = "<demo fleet>"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
#: cpu_percent is per-process and may exceed 100 on multi-core machines (100 * cpu count).
MAX_CPU_PERCENT = 6400.0


# --------------------------------------------------------------------------- data model


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
    # Per-pattern threshold overrides: ((pattern_id, ((param, value), ...)), ...), sorted.
    patterns: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

    def pattern_overrides(self) -> dict[str, dict[str, float]]:
        return overrides_dict(self.patterns)


def overrides_dict(patterns: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]) -> dict[str, dict[str, float]]:
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
    patterns: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

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


# --------------------------------------------------------------------------- validation helpers

_TOP_KEYS = ("aurora", "service")
_AURORA_KEYS = ("interval", "db", "log_dir", "retention_hours", "auto_confidence", "auto_heal", "patterns")
_SERVICE_KEYS = (
    "name",
    "command",
    "cwd",
    "env",
    "port",
    "health",
    "depends_on",
    "start_grace",
    "stop_timeout",
    "restart_delay",
    "limits",
    "managed",
    "patterns",
)
_HEALTH_KEYS = ("http", "tcp", "expect_status", "expect_body", "timeout")
_LIMIT_KEYS = ("memory_mb", "cpu_percent", "fds_percent", "threads", "connections")

_MISSING = object()


def _describe(value: Any) -> str:
    """A TOML-flavoured description of a value for error messages, e.g. ``boolean true``."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        text = str(value) if abs(value) < 10**30 else "a huge integer"
        return f"integer {text}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"string {text!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime, date, time)):
        return f"date/time {value.isoformat()}"
    return type(value).__name__  # pragma: no cover - tomllib yields nothing else


def _unknown_key(key: str, allowed: tuple[str, ...], what: str = "key") -> str:
    msg = f"unknown {what} {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    else:
        msg += f" (expected one of: {', '.join(allowed)})"
    return msg


class _Checker:
    """Collects problems while converting raw TOML values."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.prefix = ""  # "name: " for a service with a valid name

    def add(self, key: str, problem: str) -> None:
        self.problems.append((key, self.prefix + problem))

    def unknown_keys(self, table: dict, allowed: tuple[str, ...], path: str) -> None:
        for key in table:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else key, _unknown_key(key, allowed))

    def number(self, key: str, value: Any, *, minimum: float | None = 0.0, strict: bool = True,
               maximum: float | None = None) -> float | None:
        """A finite int/float (not a bool).  ``strict``: must be > minimum, else >= minimum."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(key, f"must be a number, got {_describe(value)}")
            return None
        try:
            number = float(value)
        except OverflowError:
            self.add(key, f"must be a finite number, got {_describe(value)}")
            return None
        if not math.isfinite(number):
            self.add(key, f"must be a finite number, got {_describe(value)}")
            return None
        if minimum is not None:
            if strict and not number > minimum:
                bound = "positive (> 0)" if minimum == 0 else f"greater than {minimum:g}"
                self.add(key, f"must be {bound}, got {value!r}")
                return None
            if not strict and not number >= minimum:
                bound = "zero or more (>= 0)" if minimum == 0 else f"at least {minimum:g}"
                self.add(key, f"must be {bound}, got {value!r}")
                return None
        if maximum is not None and number > maximum:
            self.add(key, f"must be at most {maximum:g}, got {value!r}")
            return None
        return number

    def integer(self, key: str, value: Any, lo: int, hi: int | None, what: str = "an integer") -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, f"must be {what}, got {_describe(value)}")
            return None
        if value < lo or (hi is not None and value > hi):
            shown = value if abs(value) < 10**30 else "a huge integer"
            rng = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
            self.add(key, f"must be an integer {rng}, got {shown}")
            return None
        return value

    def string(self, key: str, value: Any, *, nonempty: bool = True) -> str | None:
        if not isinstance(value, str):
            self.add(key, f"must be a string, got {_describe(value)}")
            return None
        if nonempty and not value.strip():
            self.add(key, "must not be empty")
            return None
        return value

    def boolean(self, key: str, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.add(key, f"must be true or false, got {_describe(value)}")
            return None
        return value


def _resolve(path_text: str, base_dir: Path) -> Path:
    p = Path(path_text).expanduser()
    if not p.is_absolute():
        p = base_dir / p
    return p


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- parsing


def _parse_settings(raw: Any, c: _Checker, base_dir: Path) -> Settings | None:
    if raw is _MISSING:
        return Settings()
    if not isinstance(raw, dict):
        c.add("aurora", f"must be a table ([aurora]), got {_describe(raw)}")
        return None
    c.unknown_keys(raw, _AURORA_KEYS, "aurora")
    kwargs: dict[str, Any] = {}
    ok = True
    if "interval" in raw:
        v = c.number("aurora.interval", raw["interval"], minimum=0.0, strict=True)
        ok &= v is not None
        kwargs["interval"] = v
    if "retention_hours" in raw:
        v = c.number("aurora.retention_hours", raw["retention_hours"], minimum=0.0, strict=True)
        ok &= v is not None
        kwargs["retention_hours"] = v
    for key in ("db", "log_dir"):
        if key in raw:
            s = c.string(f"aurora.{key}", raw[key])
            ok &= s is not None
            if s is not None:
                kwargs[key] = _resolve(s, base_dir)
    if "auto_heal" in raw:
        v = c.boolean("aurora.auto_heal", raw["auto_heal"])
        ok &= v is not None
        kwargs["auto_heal"] = v
    if "auto_confidence" in raw:
        v = c.integer("aurora.auto_confidence", raw["auto_confidence"], 1, 10, "a whole number from 1 to 10")
        ok &= v is not None
        kwargs["auto_confidence"] = v
    if "patterns" in raw:
        overrides = _parse_patterns(raw["patterns"], c, "aurora.patterns")
        ok &= overrides is not None
        kwargs["patterns"] = overrides
    return Settings(**kwargs) if ok else None


def _parse_patterns(raw: Any, c: _Checker, path: str) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...] | None:
    """Threshold overrides per issue pattern, checked against the pattern catalogue."""
    from .patterns import load_patterns

    catalogue = load_patterns()
    if not isinstance(raw, dict):
        c.add(path, f"must be a table such as {{ high_cpu = {{ debounce = 5 }} }}, got {_describe(raw)}")
        return None
    ok = True
    result = []
    for pattern, params in raw.items():
        if pattern not in catalogue:
            c.add(f"{path}.{pattern}", _unknown_key(pattern, tuple(catalogue), "pattern"))
            ok = False
            continue
        if not isinstance(params, dict):
            c.add(f"{path}.{pattern}", f"must be a table of thresholds, got {_describe(params)}")
            ok = False
            continue
        known = tuple(catalogue[pattern].params)
        values = []
        for key, value in params.items():
            if key not in known:
                c.add(f"{path}.{pattern}.{key}", _unknown_key(key, known, "threshold"))
                ok = False
                continue
            number = c.number(f"{path}.{pattern}.{key}", value, minimum=0.0, strict=False)
            if number is None:
                ok = False
            else:
                values.append((key, number))
        result.append((pattern, tuple(sorted(values))))
    return tuple(sorted(result)) if ok else None


def _parse_health(raw: Any, c: _Checker, path: str, port_given: bool) -> HealthCheck | None:
    if not isinstance(raw, dict):
        c.add(path, f'must be a table such as {{ http = "/healthz" }} or {{ tcp = true }}, got {_describe(raw)}')
        return None
    c.unknown_keys(raw, _HEALTH_KEYS, path)
    ok = True
    has_http, has_tcp = "http" in raw, "tcp" in raw
    kind: str | None = None
    hpath: str | None = None
    if has_http and has_tcp:
        c.add(path, "give either http or tcp, not both")
        ok = False
    elif not has_http and not has_tcp:
        c.add(path, 'must say how to check: { http = "/path" } or { tcp = true }')
        ok = False
    elif has_http:
        kind = "http"
        v = raw["http"]
        if not isinstance(v, str):
            c.add(f"{path}.http", f'must be a URL path string such as "/healthz", got {_describe(v)}')
            ok = False
        elif not v.startswith("/"):
            c.add(f"{path}.http", f'must be a URL path starting with "/", got {v!r}')
            ok = False
        elif any(ch.isspace() for ch in v):
            c.add(f"{path}.http", f"must not contain whitespace, got {v!r}")
            ok = False
        else:
            hpath = v
    else:
        kind = "tcp"
        v = raw["tcp"]
        if v is not True:
            c.add(f"{path}.tcp", f"must be true (leave out health for no check), got {_describe(v)}")
            ok = False

    kwargs: dict[str, Any] = {}
    for key in ("expect_status", "expect_body"):
        if key in raw and kind == "tcp":
            c.add(f"{path}.{key}", "only applies to http health checks")
            ok = False
    if "expect_status" in raw and kind != "tcp":
        v = c.integer(f"{path}.expect_status", raw["expect_status"], 100, 599, "an HTTP status code")
        if v is None:
            ok = False
        kwargs["expect_status"] = v
    if "expect_body" in raw and kind != "tcp":
        v = c.string(f"{path}.expect_body", raw["expect_body"])
        if v is None:
            ok = False
        kwargs["expect_body"] = v
    if "timeout" in raw:
        v = c.number(f"{path}.timeout", raw["timeout"], minimum=0.0, strict=True)
        if v is None:
            ok = False
        kwargs["timeout"] = v
    if not port_given:
        c.add(path, "a health check needs a port; add port = ...")
        ok = False
    if not ok or kind is None:
        return None
    return HealthCheck(kind, path=hpath, **kwargs)


def _parse_limits(raw: Any, c: _Checker, path: str) -> Limits | None:
    if not isinstance(raw, dict):
        c.add(path, f"must be a table such as {{ memory_mb = 512 }}, got {_describe(raw)}")
        return None
    c.unknown_keys(raw, _LIMIT_KEYS, path)
    ok = True
    kwargs: dict[str, Any] = {}
    for key, maximum in (("memory_mb", None), ("cpu_percent", MAX_CPU_PERCENT), ("fds_percent", 100.0)):
        if key in raw:
            v = c.number(f"{path}.{key}", raw[key], minimum=0.0, strict=True, maximum=maximum)
            ok &= v is not None
            kwargs[key] = v
    for key in ("threads", "connections"):
        if key in raw:
            v = c.integer(f"{path}.{key}", raw[key], 1, None, "a positive integer")
            ok &= v is not None
            kwargs[key] = v
    return Limits(**kwargs) if ok else None


def _parse_command(raw: Any, c: _Checker, path: str) -> tuple[str, ...] | None:
    if isinstance(raw, str):
        c.add(path, 'must be an argv array such as ["python3", "app.py"], not a shell string')
        return None
    if not isinstance(raw, list):
        c.add(path, f'must be an argv array such as ["python3", "app.py"], got {_describe(raw)}')
        return None
    if not raw:
        c.add(path, 'must not be empty; give the program and its arguments, e.g. ["python3", "app.py"]')
        return None
    ok = True
    for i, arg in enumerate(raw):
        if not isinstance(arg, str):
            c.add(f"{path}[{i}]", f"must be a string, got {_describe(arg)}")
            ok = False
        elif arg == "":
            c.add(f"{path}[{i}]", "must not be an empty string")
            ok = False
    if ok and not raw[0].strip():
        c.add(f"{path}[0]", "the program name must not be blank")
        ok = False
    return tuple(raw) if ok else None


def _parse_service(raw: dict, index: int, c: _Checker, base_dir: Path) -> tuple[dict[str, Any], bool]:
    """Check one [[service]] table.  Returns (fields, ok); ``fields`` holds what parsed cleanly
    (name, port, depends_on are used for the cross-service checks even when ``ok`` is False)."""
    p = f"service[{index}]"
    fields: dict[str, Any] = {}
    ok = True

    name = raw.get("name", _MISSING)
    if name is _MISSING:
        c.add(f"{p}.name", "missing required key 'name'")
        ok = False
    elif not isinstance(name, str):
        c.add(f"{p}.name", f"must be a string, got {_describe(name)}")
        ok = False
    elif not _NAME_RE.fullmatch(name):
        c.add(f"{p}.name", f"must match {NAME_PATTERN} (a letter, then up to 63 letters, digits, '_', '.' or '-'), got {name!r}")
        ok = False
    else:
        fields["name"] = name
        c.prefix = f"{name}: "

    c.unknown_keys(raw, _SERVICE_KEYS, p)

    managed = True
    if "managed" in raw:
        m = c.boolean(f"{p}.managed", raw["managed"])
        if m is None:
            ok = False
        else:
            managed = m
    fields["managed"] = managed

    if "command" in raw:
        cmd = _parse_command(raw["command"], c, f"{p}.command")
        if cmd is None:
            ok = False
        fields["command"] = cmd
    elif managed:
        c.add(f"{p}.command", "missing required key 'command' (set managed = false for a monitor-only service)")
        ok = False
    else:
        fields["command"] = ()

    if "cwd" in raw:
        s = c.string(f"{p}.cwd", raw["cwd"])
        if s is None:
            ok = False
        else:
            resolved = _resolve(s, base_dir)
            if not _is_dir(resolved):
                c.add(f"{p}.cwd", f"not an existing directory: {str(resolved)!r}")
                ok = False
            else:
                fields["cwd"] = str(resolved)

    if "env" in raw:
        env = raw["env"]
        if not isinstance(env, dict):
            c.add(f"{p}.env", f'must be a table of strings such as {{ LOG_LEVEL = "info" }}, got {_describe(env)}')
            ok = False
        else:
            pairs = []
            for k, v in env.items():
                if not isinstance(v, str):
                    c.add(f"{p}.env.{k}", f"must be a string, got {_describe(v)} (quote it)")
                    ok = False
                elif k == "" or "=" in k or "\0" in k or "\0" in v:
                    c.add(f"{p}.env.{k}", "not a valid environment variable name/value")
                    ok = False
                else:
                    pairs.append((k, v))
            fields["env"] = tuple(sorted(pairs))

    port_given = "port" in raw
    if port_given:
        port = c.integer(f"{p}.port", raw["port"], 1, 65535)
        if port is None:
            ok = False
        else:
            fields["port"] = port

    if "health" in raw:
        h = _parse_health(raw["health"], c, f"{p}.health", port_given)
        if h is None:
            ok = False
        else:
            fields["health"] = h
    else:
        fields["health"] = HealthCheck("tcp") if port_given else HealthCheck("none")

    if "depends_on" in raw:
        deps = raw["depends_on"]
        if isinstance(deps, str):
            c.add(f"{p}.depends_on", f"must be an array of service names such as [{deps!r}], not a string"
                  if len(deps) < 70 else "must be an array of service names, not a string")
            ok = False
        elif not isinstance(deps, list):
            c.add(f"{p}.depends_on", f"must be an array of service names, got {_describe(deps)}")
            ok = False
        else:
            seen: list[str] = []
            for i, d in enumerate(deps):
                if not isinstance(d, str):
                    c.add(f"{p}.depends_on[{i}]", f"must be a service name string, got {_describe(d)}")
                    ok = False
                elif d in seen:
                    c.add(f"{p}.depends_on[{i}]", f"{d!r} is listed twice")
                    ok = False
                else:
                    seen.append(d)
            fields["depends_on"] = tuple(seen)

    for key, strict in (("start_grace", False), ("stop_timeout", True), ("restart_delay", False)):
        if key in raw:
            v = c.number(f"{p}.{key}", raw[key], minimum=0.0, strict=strict)
            if v is None:
                ok = False
            else:
                fields[key] = v

    if "limits" in raw:
        lim = _parse_limits(raw["limits"], c, f"{p}.limits")
        if lim is None:
            ok = False
        else:
            fields["limits"] = lim

    if "patterns" in raw:
        overrides = _parse_patterns(raw["patterns"], c, f"{p}.patterns")
        if overrides is None:
            ok = False
        else:
            fields["patterns"] = overrides

    c.prefix = ""
    return fields, ok


def _find_cycles(graph: dict[str, tuple[str, ...]], order: list[str]) -> list[list[str]]:
    """Distinct dependency cycles (each as a closed path ``[a, b, a]``), found by DFS back edges."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    for root in order:
        if colour[root] != WHITE:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = GREY
        while stack:
            node, i = stack[-1]
            deps = graph[node]
            if i < len(deps):
                stack[-1] = (node, i + 1)
                nxt = deps[i]
                if colour[nxt] == WHITE:
                    colour[nxt] = GREY
                    stack.append((nxt, 0))
                    path.append(nxt)
                elif colour[nxt] == GREY:
                    cyc = path[path.index(nxt):]
                    k = cyc.index(min(cyc))
                    canon = tuple(cyc[k:] + cyc[:k])
                    if canon not in seen:
                        seen.add(canon)
                        cycles.append(list(cyc) + [nxt])
            else:
                colour[node] = BLACK
                stack.pop()
                path.pop()
    return cycles


def parse_config(text: str, source: str, base_dir: Path | None = None) -> Config:
    """Parse and validate config ``text``.  ``source`` names it in errors; relative paths
    (db, log_dir, cwd) resolve against ``base_dir`` (default: the current directory).
    Raises :class:`ConfigError` listing every problem found."""
    source = str(source)
    base = Path(base_dir).expanduser() if base_dir is not None else Path.cwd()
    if not base.is_absolute():
        base = Path.cwd() / base
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [("", f"TOML syntax error: {exc}")]) from None

    c = _Checker()
    for key in data:
        if key not in _TOP_KEYS:
            what = "table" if isinstance(data[key], dict) else "key"
            c.add(key, _unknown_key(key, _TOP_KEYS, f"top-level {what}"))

    settings = _parse_settings(data.get("aurora", _MISSING), c, base)

    raw_services = data.get("service", _MISSING)
    parsed: list[tuple[int, dict[str, Any], bool]] = []
    if raw_services is _MISSING:
        c.add("service", "at least one [[service]] is required")
    elif isinstance(raw_services, dict):
        c.add("service", "must be an array of tables: write [[service]] (double brackets), not [service]")
    elif not isinstance(raw_services, list):
        c.add("service", f"must be an array of tables ([[service]]), got {_describe(raw_services)}")
    elif not raw_services:
        c.add("service", "at least one [[service]] is required")
    else:
        for index, raw in enumerate(raw_services, start=1):
            if not isinstance(raw, dict):
                c.add(f"service[{index}]", f"must be a table ([[service]]), got {_describe(raw)}")
                parsed.append((index, {}, False))
                continue
            fields, ok = _parse_service(raw, index, c, base)
            parsed.append((index, fields, ok))

    # ---- cross-service checks
    first_by_name: dict[str, int] = {}
    port_owner: dict[int, tuple[int, str]] = {}
    for index, fields, _ok in parsed:
        name = fields.get("name")
        label = f"{name}: " if name else ""
        if name is not None:
            if name in first_by_name:
                c.add(f"service[{index}].name", f"duplicate name {name!r} (already used by service[{first_by_name[name]}])")
            else:
                first_by_name[name] = index
        port = fields.get("port")
        if port is not None:
            if port in port_owner:
                other_index, other_name = port_owner[port]
                who = f"{other_name} (service[{other_index}])" if other_name else f"service[{other_index}]"
                c.add(f"service[{index}].port", f"{label}port {port} is already used by {who}")
            else:
                port_owner[port] = (index, name or "")

    graph: dict[str, tuple[str, ...]] = {}
    all_names = list(first_by_name)
    for index, fields, _ok in parsed:
        name = fields.get("name")
        if name is None or first_by_name.get(name) != index:
            continue
        good: list[str] = []
        for dep in fields.get("depends_on", ()):
            if dep == name:
                c.add(f"service[{index}].depends_on", f"{name}: cannot depend on itself")
            elif dep not in first_by_name:
                msg = f"{name}: unknown service {dep!r}"
                close = difflib.get_close_matches(dep, all_names, n=1, cutoff=0.6)
                if close:
                    msg += f"; did you mean {close[0]!r}?"
                c.add(f"service[{index}].depends_on", msg)
            else:
                good.append(dep)
        graph[name] = tuple(good)
    for cycle in _find_cycles(graph, all_names):
        first = min(cycle[:-1], key=lambda n: first_by_name[n])
        k = cycle.index(first)
        ring = cycle[k:-1] + cycle[:k] + [first]
        c.add(f"service[{first_by_name[first]}].depends_on", f"{first}: dependency cycle {' -> '.join(ring)}")

    if c.problems:
        raise ConfigError(source, c.problems)
    assert settings is not None
    services = tuple(ServiceConfig(**fields) for _index, fields, _ok in parsed)
    return Config(source=source, settings=settings, services=services)


def load_config(path: str | Path) -> Config:
    """Read and parse a config file; relative paths in it resolve against its directory."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(str(path), [("", f"cannot read: {reason}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [("", f"cannot read: not valid UTF-8 ({exc.reason} at byte {exc.start})")]) from None
    base = p.parent if p.is_absolute() else (Path.cwd() / p).parent
    return parse_config(text, str(path), base_dir=base)


# --------------------------------------------------------------------------- demo fleet

DEMO_PORTS = {"aurora_ui": 5000, "bridge_api": 5001, "learning_api": 5002, "file_server": 8080}


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string (quoted and escaped)."""
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def demo_config_text(port_offset: int = 0, python: str = sys.executable) -> str:
    """The demo fleet config (``aurora_tui/demo/fleet.toml`` rendered) as TOML text."""
    template = resources.files("aurora_tui.demo").joinpath("fleet.toml").read_text(encoding="utf-8")
    ports = {name: port + port_offset for name, port in DEMO_PORTS.items()}
    return Template(template).substitute(
        python=_toml_string(python or "python3"),
        p_ui=ports["aurora_ui"],
        p_bridge=ports["bridge_api"],
        p_learning=ports["learning_api"],
        p_files=ports["file_server"],
    )


def demo_config(port_offset: int = 0) -> Config:
    return parse_config(demo_config_text(port_offset), DEMO_SOURCE)


def with_overrides(config: Config, *, db: Path | None = None, interval: float | None = None) -> Config:
    """A copy of ``config`` with command-line overrides applied (relative db: against the cwd)."""
    changes: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    if db is not None:
        p = Path(db).expanduser()
        changes["db"] = p if p.is_absolute() else Path.cwd() / p
    if interval is not None:
        c = _Checker()
        v = c.number("interval (override)", interval, minimum=0.0, strict=True)
        problems += c.problems
        changes["interval"] = v
    if problems:
        raise ConfigError(config.source, problems)
    if not changes:
        return config
    return replace(config, settings=replace(config.settings, **changes))
