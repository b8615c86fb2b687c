"""Fleet configuration: the TOML file format, its validation and the demo fleet.

A config file has one optional ``[aurora]`` table of settings and one or more
``[[service]]`` tables.  :func:`parse_config` checks everything it can and
reports *all* problems at once in a single :class:`ConfigError`, each naming
the file, the key path (``service[2].port``) and what is wrong with it.

The pieces live in three modules, all re-exported here: the data model
(:mod:`.config_model`), checking single values (:mod:`.config_checker`) and what
each key means (:mod:`.config_keys`).  This module adds what spans services
(unique names and ports, dependencies), reading files and the demo fleet.

No Textual, no processes, no network.
"""
from __future__ import annotations

import os
import shutil
import sys
import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from .config_checker import Checker, did_you_mean
from .config_keys import ServiceFields, parse_document, resolve_path
from .config_model import (
    MAX_CPU_PERCENT,
    MAX_DURATION,
    NAME_PATTERN,
    Config,
    ConfigError,
    HealthCheck,
    Limits,
    ServiceConfig,
    Settings,
    overrides_dict,  # noqa: F401 - re-exported: importable from here as before the split
)

__all__ = [
    "HealthCheck",
    "Limits",
    "ServiceConfig",
    "Settings",
    "Config",
    "ConfigError",
    "parse_config",
    "load_config",
    "executable_problems",
    "demo_config_text",
    "demo_config",
    "with_overrides",
    "DEMO_SOURCE",
    "NAME_PATTERN",
    "MAX_CPU_PERCENT",
]

DEMO_SOURCE = "<demo fleet>"


# --------------------------------------------------------------------------- cross-service checks


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


def _check_names_and_ports(services: list[tuple[int, ServiceFields]], c: Checker) -> dict[str, int]:
    """Problems for a name or port that an earlier service already has; returns each name's
    first service index."""
    first_by_name: dict[str, int] = {}
    port_owner: dict[int, tuple[int, str]] = {}
    for index, fields in services:
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
    return first_by_name


def _check_dependencies(services: list[tuple[int, ServiceFields]], first_by_name: dict[str, int], c: Checker) -> None:
    """Problems for a dependency on itself, on an unknown service, or in a cycle."""
    graph: dict[str, tuple[str, ...]] = {}
    all_names = list(first_by_name)
    for index, fields in services:
        name = fields.get("name")
        # A duplicate name already has its problem; its dependencies would only repeat the first's.
        if name is None or first_by_name.get(name) != index:
            continue
        good: list[str] = []
        for dep in fields.get("depends_on", ()):
            if dep == name:
                c.add(f"service[{index}].depends_on", f"{name}: cannot depend on itself")
            elif dep not in first_by_name:
                c.add(f"service[{index}].depends_on", f"{name}: unknown service {dep!r}{did_you_mean(dep, all_names)}")
            else:
                good.append(dep)
        graph[name] = tuple(good)
    for cycle in _find_cycles(graph, all_names):
        first = min(cycle[:-1], key=lambda n: first_by_name[n])
        k = cycle.index(first)
        ring = cycle[k:-1] + cycle[:k] + [first]
        c.add(f"service[{first_by_name[first]}].depends_on", f"{first}: dependency cycle {' -> '.join(ring)}")


# --------------------------------------------------------------------------- entry points


def parse_config(text: str, source: str, base_dir: Path | None = None) -> Config:
    """Parse and validate config ``text``.  ``source`` names it in errors; relative paths
    (db, log_dir, cwd) resolve against ``base_dir`` (default: the current directory).
    Raises :class:`ConfigError` listing every problem found."""
    source = str(source)
    base = resolve_path(base_dir) if base_dir is not None else Path.cwd()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [("", f"TOML syntax error: {exc}")]) from None

    c = Checker()
    settings, services = parse_document(data, c, base)
    first_by_name = _check_names_and_ports(services, c)
    _check_dependencies(services, first_by_name, c)
    if c.problems:
        raise ConfigError(source, c.problems)
    assert settings is not None
    return Config(source=source, settings=settings, services=tuple(ServiceConfig(**fields) for _index, fields in services))


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
    base = resolve_path(p).parent
    return parse_config(text, str(path), base_dir=base)


def executable_problems(config: Config) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What is wrong with the programs Aurora would run (commands, start and stop programs), as (errors, warnings) of
    ``(key, problem)``. A path that does not lead to an executable is an error. A bare name not on
    PATH is only a warning: it is looked up again at each start, so it may be installed by then.

    This looks at the machine, not at the file, so only ``check-config`` asks: an engine starts
    anyway and diagnoses a program that cannot run as a start-up failure, retrying it."""
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    # A monitor-only service's command is never run; its start and stop programs may be.
    runs = {True: ("command",), False: ("start_command", "stop_command")}
    programs = [(i, svc, name) for i, svc in enumerate(config.services, start=1) for name in runs[svc.managed] if getattr(svc, name)]
    for index, svc, name in programs:
        key, program = f"service[{index}].{name}[0]", getattr(svc, name)[0]
        if "/" in program:
            problem = _not_executable(Path(program))
            if problem:
                errors.append((key, f"{svc.name}: {problem}: {program!r}"))
            continue
        # The service's own PATH, if it sets one, is where its program is looked for.
        search = dict(svc.env).get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=search) is None:
            warnings.append((key, f"{svc.name}: {program!r} is not on PATH (it is looked up again at each start)"))
    return errors, warnings


def _not_executable(path: Path) -> str | None:
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a directory, not a program"
    if not os.access(path, os.X_OK):
        return "not executable"
    return None


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
        changes["db"] = resolve_path(db)
    if interval is not None:
        c = Checker()
        v = c.number("interval (override)", interval, minimum=0.0, strict=True, maximum=MAX_DURATION, unit="seconds")
        problems += c.problems
        changes["interval"] = v
    if problems:
        raise ConfigError(config.source, problems)
    if not changes:
        return config
    return replace(config, settings=replace(config.settings, **changes))
