"""What each key of a config file means: one small parser per key, looked up by the key's name.

A key parser takes the raw TOML value, the key's path for error messages (``service[2].port``)
and the :class:`Scope` (table) it sits in, and returns the converted value, or None after
recording the problem with the scope's :class:`Checker`.  A table's parsers run in the order
of their dict, not the order the file lists its keys in, so that problems are always reported
in the same order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .config_checker import Checker, describe, unknown_key_message
from .config_health import CHECK_KINDS, expect_status, health_host, http_headers, http_path, http_scheme, wire_text
from .config_model import (
    MAX_CPU_PERCENT, MAX_DURATION, MAX_RETENTION_HOURS, NAME_PATTERN, HealthCheck, Limits, PatternOverrides, Settings,
)
from .patterns import Pattern, load_patterns

__all__ = [
    "TOP_KEYS",
    "AURORA_KEYS",
    "SERVICE_KEYS",
    "HEALTH_KEYS",
    "LIMIT_KEYS",
    "ServiceFields",
    "parse_document",
    "resolve_path",
]

# The keys each table allows, in the order an "unknown key" message lists them.  They are kept
# apart from the parser tables below because those are ordered by when problems are reported.
TOP_KEYS = ("aurora", "service")
AURORA_KEYS = ("interval", "db", "log_dir", "retention_hours", "auto_confidence", "auto_heal", "rate_limit", "patterns")
SERVICE_KEYS = (
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
    "pidfile",
    "match",
    "start_command",
    "stop_command",
    "patterns",
)
HEALTH_KEYS = (
    "http", "tcp", "exec", "host", "scheme", "verify_tls", "headers", "expect_status", "expect_body", "send", "expect", "timeout",
)
LIMIT_KEYS = ("memory_mb", "cpu_percent", "fds_percent", "threads", "connections")

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")

# What parsed cleanly of one [[service]] table, as ServiceConfig keyword arguments.
ServiceFields = dict[str, Any]


@dataclass(frozen=True)
class Scope:
    """One raw TOML table being parsed, and what its key parsers may need besides their own value."""

    table: Mapping[str, Any]  # the whole table, for rules that depend on a sibling key
    path: str  # "" for the document, "aurora", "service[2]", ...: the prefix of the error keys inside
    checker: Checker
    base_dir: Path  # relative paths in the file resolve against this

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def inner(self, table: Mapping[str, Any], path: str) -> Scope:
        return Scope(table, path, self.checker, self.base_dir)


KeyParser = Callable[[Any, str, Scope], Any]
# For a key whose absence means something: a required key, or a default that depends on a sibling.
WhenAbsent = Callable[[str, Scope], Any]


def parse_keys(
    scope: Scope, parsers: Mapping[str, KeyParser], when_absent: Mapping[str, WhenAbsent] | None = None
) -> dict[str, Any]:
    """Each parser's result by key, for the keys of ``parsers`` present in the table or in ``when_absent``."""
    when_absent = when_absent or {}
    results: dict[str, Any] = {}
    for key, parse in parsers.items():
        if key in scope.table:
            results[key] = parse(scope.table[key], scope.key_path(key), scope)
        elif key in when_absent:
            results[key] = when_absent[key](scope.key_path(key), scope)
    return results


def _all_parsed(results: Mapping[str, Any]) -> bool:
    return all(value is not None for value in results.values())


def _is_table(value: Any, at: str, checker: Checker, hint: str) -> bool:
    if isinstance(value, dict):
        return True
    checker.add(at, f"must be a table {hint}, got {describe(value)}")
    return False


def _open_table(value: Any, at: str, scope: Scope, allowed: tuple[str, ...], hint: str) -> Scope | None:
    """``value`` as a scope of its own, once it is known to be a table; its unknown keys are problems."""
    if not _is_table(value, at, scope.checker, hint):
        return None
    scope.checker.unknown_keys(value, allowed, at)
    return scope.inner(value, at)


def _record(build: Callable[..., Any], parsers: Mapping[str, KeyParser], allowed: tuple[str, ...], hint: str) -> KeyParser:
    """A parser for a table whose keys are the keyword arguments of ``build``; None if any is unusable."""

    def parse_record(value: Any, at: str, scope: Scope) -> Any:
        table = _open_table(value, at, scope, allowed, hint)
        if table is None:
            return None
        values = parse_keys(table, parsers)
        return build(**values) if _all_parsed(values) else None

    return parse_record


def resolve_path(path: str | Path, base_dir: Path | None = None) -> Path:
    """``path`` with ``~`` expanded, relative to ``base_dir`` (default: the current directory)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return (base_dir if base_dir is not None else Path.cwd()) / p


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- parsers shared by several keys


def _number(*, strict: bool = True, maximum: float | None = None, unit: str = "") -> KeyParser:
    """A parser for a number above zero (``strict``) or of zero or more, and at most ``maximum``."""

    def parse_number(value: Any, at: str, scope: Scope) -> float | None:
        return scope.checker.number(at, value, minimum=0.0, strict=strict, maximum=maximum, unit=unit)

    return parse_number


def _duration(*, strict: bool = True) -> KeyParser:
    """A parser for a number of seconds, at most a day (see MAX_DURATION)."""
    return _number(strict=strict, maximum=MAX_DURATION, unit="seconds")


def _threshold_maximum(name: str) -> tuple[float | None, str]:
    """The bound of a pattern threshold that is a duration (``window_s``, ``latency_ms``), by its name."""
    if name.endswith("_s"):
        return MAX_DURATION, "seconds"
    if name.endswith("_ms"):
        return MAX_DURATION * 1000, "ms"
    return None, ""


def _positive_integer(value: Any, at: str, scope: Scope) -> int | None:
    return scope.checker.integer(at, value, 1, None, "a positive integer")


def _boolean(value: Any, at: str, scope: Scope) -> bool | None:
    return scope.checker.boolean(at, value)


def _path(value: Any, at: str, scope: Scope) -> Path | None:
    text = scope.checker.string(at, value)
    return None if text is None else resolve_path(text, scope.base_dir)


def _pattern_overrides(value: Any, at: str, scope: Scope) -> PatternOverrides | None:
    """Threshold overrides per issue pattern, checked against the pattern catalogue."""
    catalogue = load_patterns()
    c = scope.checker
    if not _is_table(value, at, c, "such as { high_cpu = { debounce = 5 } }"):
        return None
    ok = True
    overrides = []
    for pattern_id, params in value.items():
        pattern_at = f"{at}.{pattern_id}"
        if pattern_id not in catalogue:
            c.add(pattern_at, unknown_key_message(pattern_id, tuple(catalogue), "pattern"))
            ok = False
            continue
        thresholds = _thresholds(params, pattern_at, catalogue[pattern_id], c)
        if thresholds is None:
            ok = False
        else:
            overrides.append((pattern_id, thresholds))
    return tuple(sorted(overrides)) if ok else None


def _thresholds(value: Any, at: str, pattern: Pattern, c: Checker) -> tuple[tuple[str, float], ...] | None:
    if not _is_table(value, at, c, "of thresholds"):
        return None
    known = tuple(pattern.params)
    ok = True
    thresholds = []
    for key, raw in value.items():
        if key not in known:
            c.add(f"{at}.{key}", unknown_key_message(key, known, "threshold"))
            ok = False
            continue
        maximum, unit = _threshold_maximum(key)
        number = c.number(f"{at}.{key}", raw, minimum=0.0, strict=False, maximum=maximum, unit=unit)
        if number is None:
            ok = False
        else:
            thresholds.append((key, number))
    return tuple(sorted(thresholds)) if ok else None


# --------------------------------------------------------------------------- [aurora]


def _confidence(value: Any, at: str, scope: Scope) -> int | None:
    return scope.checker.integer(at, value, 1, 10, "a whole number from 1 to 10")


_SETTINGS_PARSERS: dict[str, KeyParser] = {
    "interval": _duration(),
    "retention_hours": _number(maximum=MAX_RETENTION_HOURS, unit="hours"),
    "db": _path,
    "log_dir": _path,
    "auto_heal": _boolean,
    "auto_confidence": _confidence,
    "rate_limit": lambda value, at, scope: scope.checker.integer(at, value, 1, None, "a whole number of at least 1"),
    "patterns": _pattern_overrides,
}


_settings = _record(Settings, _SETTINGS_PARSERS, AURORA_KEYS, "([aurora])")


# --------------------------------------------------------------------------- [[service]] health


def _health_kind(table: Mapping[str, Any]) -> str | None:
    """The kind of check a health table asks for, when it names exactly one."""
    given = [kind for kind in CHECK_KINDS if kind in table]
    return given[0] if len(given) == 1 else None


def _health_probe(at: str, health: Scope) -> tuple[str, str | None, tuple[str, ...]] | None:
    """The check's kind, its URL path (http) and its argv (exec); None after recording why there is none."""
    c, table = health.checker, health.table
    given = [kind for kind in CHECK_KINDS if kind in table]
    if len(given) > 1:
        c.add(at, f"give one of http, tcp or exec, not both {given[0]} and {given[1]}")
        return None
    if not given:
        c.add(at, 'must say how to check: { http = "/path" }, { tcp = true } or { exec = ["program", "arg"] }')
        return None
    if given[0] == "tcp":
        if table["tcp"] is not True:
            c.add(f"{at}.tcp", f"must be true (leave out health for no check), got {describe(table['tcp'])}")
            return None
        return "tcp", None, ()
    if given[0] == "exec":
        # The same argv rules as a service's command: no shell, and a relative program path is
        # relative to the config file.
        argv = _command(table["exec"], f"{at}.exec", health)
        return None if argv is None else ("exec", None, argv)
    path = http_path(table["http"], f"{at}.http", c)
    return None if path is None else ("http", path, ())


def _for_kinds(parse: KeyParser, *kinds: str) -> KeyParser:
    """``parse``, for a key that only some kinds of check use (the others reject it by name)."""

    def parse_option(value: Any, at: str, scope: Scope) -> Any:
        kind = _health_kind(scope.table)
        if kind is not None and kind not in kinds:
            scope.checker.add(at, f"only applies to {' and '.join(kinds)} health checks")
            return None
        return parse(value, at, scope)

    return parse_option


def _checked(check: Callable[[Any, str, Checker], Any]) -> KeyParser:
    """A key parser from a value checker that needs nothing of its table but the checker."""

    def parse_value(value: Any, at: str, scope: Scope) -> Any:
        return check(value, at, scope.checker)

    return parse_value


def _expect_body(value: Any, at: str, scope: Scope) -> str | None:
    return scope.checker.string(at, value)


_HEALTH_OPTION_PARSERS: dict[str, KeyParser] = {
    "host": _for_kinds(_checked(health_host), "http", "tcp"),
    "scheme": _for_kinds(_checked(http_scheme), "http"),
    "verify_tls": _for_kinds(_boolean, "http"),
    "headers": _for_kinds(_checked(http_headers), "http"),
    "expect_status": _for_kinds(_checked(expect_status), "http"),
    "expect_body": _for_kinds(_expect_body, "http"),
    "send": _for_kinds(_checked(wire_text), "tcp"),
    "expect": _for_kinds(_checked(wire_text), "tcp"),
    "timeout": _duration(),
}


def _health_rules(at: str, health: Scope, service: Scope) -> bool:
    """The rules between keys: a port to check, TLS options only for TLS, nothing sent unanswered."""
    c, table = health.checker, health.table
    kind = _health_kind(table)
    ok = True
    if kind in ("http", "tcp") and "port" not in service.table:
        c.add(at, f"a {kind} health check needs a port; add port = ... (an exec check does not)")
        ok = False
    if kind == "http" and "verify_tls" in table and table.get("scheme") != "https":
        c.add(f"{at}.verify_tls", 'only applies to https checks; add scheme = "https"')
        ok = False
    if kind == "tcp" and "send" in table and "expect" not in table:
        # Without an answer to wait for, sending proves no more than connecting.
        c.add(f"{at}.send", 'needs expect: what a healthy peer answers, such as expect = "+PONG"')
        ok = False
    return ok


def _health(value: Any, at: str, scope: Scope) -> HealthCheck | None:
    health = _open_table(value, at, scope, HEALTH_KEYS, 'such as { http = "/healthz" }, { tcp = true } or { exec = [...] }')
    if health is None:
        return None
    probe = _health_probe(at, health)
    options = parse_keys(health, _HEALTH_OPTION_PARSERS)
    rules_kept = _health_rules(at, health, scope)
    if probe is None or not rules_kept or not _all_parsed(options):
        return None
    kind, path, argv = probe
    return HealthCheck(kind, path=path, exec=argv, **options)


def _default_health(at: str, scope: Scope) -> HealthCheck:
    # With a port there is something cheap to check: that it accepts connections.
    return HealthCheck("tcp") if "port" in scope.table else HealthCheck("none")


# --------------------------------------------------------------------------- [[service]]


def _service_name(value: Any, at: str, scope: Scope) -> str | None:
    c = scope.checker
    if not isinstance(value, str):
        c.add(at, f"must be a string, got {describe(value)}")
        return None
    if not _NAME_RE.fullmatch(value):
        c.add(at, f"must match {NAME_PATTERN} (a letter, then up to 63 letters, digits, '_', '.' or '-'), got {value!r}")
        return None
    return value


def _missing_name(at: str, scope: Scope) -> None:
    scope.checker.add(at, "missing required key 'name'")


def _command(value: Any, at: str, scope: Scope) -> tuple[str, ...] | None:
    c = scope.checker
    if isinstance(value, str):
        c.add(at, 'must be an argv array such as ["python3", "app.py"], not a shell string')
        return None
    if not isinstance(value, list):
        c.add(at, f'must be an argv array such as ["python3", "app.py"], got {describe(value)}')
        return None
    if not value:
        c.add(at, 'must not be empty; give the program and its arguments, e.g. ["python3", "app.py"]')
        return None
    ok = True
    # An argument may be empty or hold spaces: argv reaches the program as it is, with no shell to
    # split it, and some need exactly that (redis's documented `--save ""` turns snapshots off).
    for i, arg in enumerate(value):
        if not isinstance(arg, str):
            c.add(f"{at}[{i}]", f"must be a string, got {describe(arg)}")
            ok = False
        elif "\0" in arg:
            c.add(f"{at}[{i}]", "must not contain a NUL character")
            ok = False
    if ok and not value[0].strip():
        c.add(f"{at}[0]", "the program name must not be blank")
        ok = False
    return (_executable(value[0], scope.base_dir), *value[1:]) if ok else None


def _executable(program: str, base_dir: Path) -> str:
    """``program`` as the service will run it: a path (anything with a slash) resolves against the
    config file's directory, like every relative path in the file; a bare name is left for PATH."""
    return str(resolve_path(program, base_dir)) if "/" in program else program


def _missing_command(at: str, scope: Scope) -> tuple[str, ...] | None:
    # Aurora never starts a monitor-only service, so it needs no command; a managed = that is
    # not a boolean has its own problem and counts as the default, true.
    if scope.table.get("managed") is False:
        return ()
    scope.checker.add(at, "missing required key 'command' (set managed = false for a monitor-only service)")
    return None


def _cwd(value: Any, at: str, scope: Scope) -> str | None:
    resolved = _path(value, at, scope)
    if resolved is None:
        return None
    if not _is_dir(resolved):
        scope.checker.add(at, f"not an existing directory: {str(resolved)!r}")
        return None
    return str(resolved)


def _env(value: Any, at: str, scope: Scope) -> tuple[tuple[str, str], ...] | None:
    c = scope.checker
    if not _is_table(value, at, c, 'of strings such as { LOG_LEVEL = "info" }'):
        return None
    ok = True
    pairs = []
    for name, text in value.items():
        if not isinstance(text, str):
            c.add(f"{at}.{name}", f"must be a string, got {describe(text)} (quote it)")
            ok = False
        elif name == "" or "=" in name or "\0" in name or "\0" in text:
            c.add(f"{at}.{name}", "not a valid environment variable name/value")
            ok = False
        else:
            pairs.append((name, text))
    return tuple(sorted(pairs)) if ok else None


def _port(value: Any, at: str, scope: Scope) -> int | None:
    return scope.checker.integer(at, value, 1, 65535)


def _depends_on(value: Any, at: str, scope: Scope) -> tuple[str, ...] | None:
    """The names listed; after a bad entry still the good ones, for the cross-service checks."""
    c = scope.checker
    if isinstance(value, str):
        c.add(at, f"must be an array of service names such as [{value!r}], not a string"
              if len(value) < 70 else "must be an array of service names, not a string")
        return None
    if not isinstance(value, list):
        c.add(at, f"must be an array of service names, got {describe(value)}")
        return None
    names: list[str] = []
    for i, name in enumerate(value):
        if not isinstance(name, str):
            c.add(f"{at}[{i}]", f"must be a service name string, got {describe(name)}")
        elif name in names:
            c.add(f"{at}[{i}]", f"{name!r} is listed twice")
        else:
            names.append(name)
    return tuple(names)


def _monitor_only(parse: KeyParser) -> KeyParser:
    """``parse``, for a key that only a monitor-only service uses: Aurora finds and runs its own."""

    def parse_monitor_only(value: Any, at: str, scope: Scope) -> Any:
        if scope.table.get("managed") is not False:
            scope.checker.add(at, "only applies to a monitor-only service; add managed = false")
            return None
        return parse(value, at, scope)

    return parse_monitor_only


def _pidfile(value: Any, at: str, scope: Scope) -> str | None:
    resolved = _path(value, at, scope)
    return None if resolved is None else str(resolved)


def _match(value: Any, at: str, scope: Scope) -> str | None:
    text = scope.checker.string(at, value)
    if text is None:
        return None
    try:
        re.compile(text)
    except re.error as exc:
        scope.checker.add(at, f"not a valid regular expression: {exc}")
        return None
    return text


def _monitor_only_rules(at: str, service: Scope) -> None:
    # Without one of these there is nothing to tell the service's process from any other.
    if service.table.get("managed") is False and not any(k in service.table for k in ("pidfile", "match", "port")):
        service.checker.add(at, "a monitor-only service (managed = false) needs a way to find its process: give pidfile, match or port")


_LIMIT_PARSERS: dict[str, KeyParser] = {
    "memory_mb": _number(),
    "cpu_percent": _number(maximum=MAX_CPU_PERCENT),
    "fds_percent": _number(maximum=100.0),
    "threads": _positive_integer,
    "connections": _positive_integer,
}


_limits = _record(Limits, _LIMIT_PARSERS, LIMIT_KEYS, "such as { memory_mb = 512 }")


# "name" is parsed first, on its own: its problems come before those of unknown keys, and a
# valid name then prefixes every later problem of the service.
_SERVICE_NAME_PARSER: dict[str, KeyParser] = {"name": _service_name}
_SERVICE_PARSERS: dict[str, KeyParser] = {
    "managed": _boolean,
    "command": _command,
    "cwd": _cwd,
    "env": _env,
    "port": _port,
    "health": _health,
    "depends_on": _depends_on,
    "start_grace": _duration(strict=False),
    "stop_timeout": _duration(),
    "restart_delay": _duration(strict=False),
    "limits": _limits,
    "pidfile": _monitor_only(_pidfile),
    "match": _monitor_only(_match),
    "start_command": _monitor_only(_command),
    "stop_command": _monitor_only(_command),
    "patterns": _pattern_overrides,
}
_SERVICE_WHEN_ABSENT: dict[str, WhenAbsent] = {
    "name": _missing_name,
    "command": _missing_command,
    "health": _default_health,
}


def _service(value: Any, at: str, scope: Scope) -> ServiceFields:
    """What parsed cleanly of one [[service]] table (problems are recorded, not raised)."""
    c = scope.checker
    if not _is_table(value, at, c, "([[service]])"):
        return {}
    service = scope.inner(value, at)
    fields = parse_keys(service, _SERVICE_NAME_PARSER, _SERVICE_WHEN_ABSENT)
    if fields.get("name") is not None:
        c.prefix = f"{fields['name']}: "
    c.unknown_keys(value, SERVICE_KEYS, at)
    fields.update(parse_keys(service, _SERVICE_PARSERS, _SERVICE_WHEN_ABSENT))
    _monitor_only_rules(at, service)
    c.prefix = ""
    return {key: parsed for key, parsed in fields.items() if parsed is not None}


def _missing_services(at: str, scope: Scope) -> list[tuple[int, ServiceFields]]:
    scope.checker.add(at, "at least one [[service]] is required")
    return []


def _services(value: Any, at: str, scope: Scope) -> list[tuple[int, ServiceFields]]:
    """Each [[service]] table's 1-based index and what parsed cleanly of it."""
    if isinstance(value, dict):
        scope.checker.add(at, "must be an array of tables: write [[service]] (double brackets), not [service]")
        return []
    if not isinstance(value, list):
        scope.checker.add(at, f"must be an array of tables ([[service]]), got {describe(value)}")
        return []
    if not value:
        return _missing_services(at, scope)
    return [(index, _service(raw, f"{at}[{index}]", scope)) for index, raw in enumerate(value, start=1)]


# --------------------------------------------------------------------------- the document


def _default_settings(at: str, scope: Scope) -> Settings:
    return Settings()


_DOCUMENT_PARSERS: dict[str, KeyParser] = {"aurora": _settings, "service": _services}
_DOCUMENT_WHEN_ABSENT: dict[str, WhenAbsent] = {"aurora": _default_settings, "service": _missing_services}

# A key allowed but given no parser would be accepted and silently ignored.
assert set(TOP_KEYS) == set(_DOCUMENT_PARSERS)
assert set(AURORA_KEYS) == set(_SETTINGS_PARSERS)
assert set(SERVICE_KEYS) == set(_SERVICE_NAME_PARSER) | set(_SERVICE_PARSERS)
assert set(HEALTH_KEYS) == set(CHECK_KINDS) | set(_HEALTH_OPTION_PARSERS)
assert set(LIMIT_KEYS) == set(_LIMIT_PARSERS)


def parse_document(
    data: Mapping[str, Any], checker: Checker, base_dir: Path
) -> tuple[Settings | None, list[tuple[int, ServiceFields]]]:
    """The settings and the services of a decoded TOML document; problems go to ``checker``.
    Settings are None only when there are problems."""
    for key in data:
        if key not in TOP_KEYS:
            what = "table" if isinstance(data[key], dict) else "key"
            checker.add(key, unknown_key_message(key, TOP_KEYS, f"top-level {what}"))
    document = parse_keys(Scope(data, "", checker, base_dir), _DOCUMENT_PARSERS, _DOCUMENT_WHEN_ABSENT)
    return document["aurora"], document["service"]
