"""The module registry: the catalogue of activatable modules and the rules for activating them.

A module is one capability an execution program can switch on (``python.asyncio``, ``k8s.hpa``,
``aurora.restart`` ...). The catalogue lives in ``aurora_tui/catalogue/modules/<category>.toml``, one
``[[module]]`` table per module, and ``aurora_tui/catalogue/program_modules.toml`` says which modules
each of the 66 programs uses. Modules name what they depend on and what they cannot be active with.

Pure Python and standard library only, so the registry can be used and tested without the console.
"""
from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import PurePosixPath
from typing import Any

CATALOGUE_PACKAGE = "aurora_tui.catalogue"
MODULES_DIR = "modules"
PROGRAM_MODULES_FILE = "program_modules.toml"
CATEGORIES = ("language", "framework", "ai_ml", "devops", "security", "testing", "utility")
MAX_PROVIDES = 4

# Lowercase, dotted: <family>.<thing>[.<more>]; words joined by hyphens.
ID_RE = re.compile(r"^[a-z][a-z0-9-]*(?:\.[a-z0-9][a-z0-9-]*)+$")
# semver.org 2.0.0, verbatim.
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

_STRING_FIELDS = ("id", "name", "category", "version", "description")
_LIST_FIELDS = ("depends", "conflicts", "provides")
_OPTIONAL_FIELDS = ("depends", "conflicts")


class ModuleError(Exception):
    """A module or program cannot be found, resolved, activated or deactivated; or the catalogue is malformed."""


@dataclass(frozen=True)
class Module:
    id: str
    name: str
    category: str
    version: str
    depends: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    description: str = ""


class ModuleRegistry:
    """The catalogue plus the set of currently active modules.

    ``ModuleRegistry.load()`` reads the packaged catalogue (parsed once per process); each call returns
    a fresh registry with nothing active. A registry can also be built by hand from ``Module`` objects,
    which is how tests exercise broken catalogues: the constructor accepts anything, ``validate()``
    reports what is wrong, and ``resolve()``/``activate()`` refuse what they cannot do.

    ``sources`` optionally gives, for each module in order, the file it came from (``"utility.toml"``);
    ``validate()`` then checks that each module's category matches its file.
    """

    def __init__(
        self,
        modules: Iterable[Module],
        programs: Mapping[str, Iterable[str]] | None = None,
        *,
        sources: Iterable[str | None] | None = None,
    ) -> None:
        entries = list(modules)
        source_list = list(sources) if sources is not None else [None] * len(entries)
        if len(source_list) != len(entries):
            raise ValueError("sources must give one file per module")
        self._modules: dict[str, Module] = {}
        self._sources: dict[str, str | None] = {}
        self._duplicates: list[tuple[str, str | None, str | None]] = []
        for module, source in zip(entries, source_list):
            if module.id in self._modules:
                self._duplicates.append((module.id, self._sources[module.id], source))
                continue
            self._modules[module.id] = module
            self._sources[module.id] = source
        self._programs: dict[str, tuple[str, ...]] = {
            str(key): tuple(_as_ids(ids)) for key, ids in (programs or {}).items()
        }
        self._active: dict[str, None] = {}  # insertion-ordered set

    # -- loading -----------------------------------------------------------------------------------

    @classmethod
    def load(cls, package: str = CATALOGUE_PACKAGE) -> "ModuleRegistry":
        """The packaged catalogue, with nothing active. Parsing happens once per process."""
        modules, sources, programs = _parse_catalogue(package)
        return cls(modules, programs, sources=sources)

    # -- lookup ------------------------------------------------------------------------------------

    def get(self, module_id: str) -> Module:
        """The module with this id; ``ModuleError`` (with a suggestion) if there is none."""
        try:
            return self._modules[module_id]
        except KeyError:
            raise ModuleError(f"unknown module {module_id!r}{self._suggest(module_id)}") from None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __contains__(self, module_id: object) -> bool:
        return module_id in self._modules

    def ids(self) -> list[str]:
        return list(self._modules)

    def categories(self) -> dict[str, int]:
        """Module count per category: the standard categories first (in their usual order), then any others."""
        counts = {category: 0 for category in CATEGORIES}
        for module in self._modules.values():
            counts[module.category] = counts.get(module.category, 0) + 1
        return {category: n for category, n in counts.items() if n or category in CATEGORIES}

    def in_category(self, category: str) -> list[Module]:
        return [m for m in self._modules.values() if m.category == category]

    def dependants(self, module_id: str) -> list[str]:
        """Ids of the modules that list ``module_id`` among their direct dependencies."""
        self.get(module_id)
        return [m.id for m in self._modules.values() if module_id in m.depends]

    def programs(self) -> dict[str, tuple[str, ...]]:
        """Program id -> the module ids it lists (before dependency resolution)."""
        return dict(self._programs)

    # -- resolution --------------------------------------------------------------------------------

    def resolve(self, ids: str | Iterable[str]) -> list[str]:
        """``ids`` and everything they depend on, dependencies first.

        The order is deterministic: a depth-first walk in the order the ids are given and the order
        each module lists its dependencies; every id appears once. Raises ``ModuleError`` naming an
        unknown id (and which module required it) or the path of a dependency cycle.
        """
        order: list[str] = []
        done: set[str] = set()
        for root in _as_ids(ids):
            self._visit(root, None, [], done, order)
        return order

    def _visit(self, module_id: str, required_by: str | None, path: list[str], done: set[str], order: list[str]) -> None:
        if module_id in done:
            return
        if module_id in path:
            cycle = path[path.index(module_id):] + [module_id]
            raise ModuleError("dependency cycle: " + " -> ".join(cycle))
        module = self._modules.get(module_id)
        if module is None:
            by = f" (required by {required_by!r})" if required_by else ""
            raise ModuleError(f"unknown module {module_id!r}{by}{self._suggest(module_id)}")
        path.append(module_id)
        for dep in module.depends:
            self._visit(dep, module_id, path, done, order)
        path.pop()
        done.add(module_id)
        order.append(module_id)

    def conflicts_in(self, ids: str | Iterable[str]) -> list[tuple[str, str]]:
        """Every pair among ``ids`` that cannot be active together, each pair once, in the order given.

        Only the ids given are compared; pass ``resolve(ids)`` to include their dependencies. A conflict
        declared on either side counts.
        """
        given = list(dict.fromkeys(_as_ids(ids)))
        position = {module_id: i for i, module_id in enumerate(given)}
        for module_id in given:
            self.get(module_id)
        pairs: set[tuple[str, str]] = set()
        for module_id in given:
            for other in self._modules[module_id].conflicts:
                if other in position and other != module_id:
                    pair = (module_id, other) if position[module_id] < position[other] else (other, module_id)
                    pairs.add(pair)
        return sorted(pairs, key=lambda p: (position[p[0]], position[p[1]]))

    def _conflicting(self, a: str, b: str) -> bool:
        return b in self._modules[a].conflicts or a in self._modules[b].conflicts

    def for_program(self, program_id: int | str) -> list[str]:
        """The resolved module ids (dependencies first) that program ``program_id`` activates."""
        key = str(program_id).strip()
        if key not in self._programs:
            raise ModuleError(f"no modules are mapped for program {key!r}")
        try:
            return self.resolve(self._programs[key])
        except ModuleError as exc:
            raise ModuleError(f"program {key}: {exc}") from None

    # -- activation --------------------------------------------------------------------------------

    def activate(self, ids: str | Iterable[str]) -> list[str]:
        """Activate ``ids`` and their dependencies; return those that were not already active, in order.

        Nothing changes if the request is refused: an unknown id or cycle, two requested modules
        that conflict, or a requested module that conflicts with one already active. The
        ``ModuleError`` names both modules of the conflict.
        """
        order = self.resolve(ids)
        within = self.conflicts_in(order)
        if within:
            a, b = within[0]
            raise ModuleError(f"cannot activate {a!r} together with {b!r}: they conflict")
        for module_id in order:
            for active_id in self._active:
                if self._conflicting(module_id, active_id):
                    raise ModuleError(
                        f"cannot activate {module_id!r}: it conflicts with active module {active_id!r}"
                    )
        added = [module_id for module_id in order if module_id not in self._active]
        for module_id in added:
            self._active[module_id] = None
        return added

    def deactivate(self, module_id: str) -> bool:
        """Deactivate one module. True if it was active, False if it was not.

        Refused (``ModuleError`` naming the dependants) while any active module depends on it;
        deactivate the dependants first.
        """
        self.get(module_id)
        if module_id not in self._active:
            return False
        dependants = [a for a in self._active if module_id in self._modules[a].depends]
        if dependants:
            names = ", ".join(repr(d) for d in dependants)
            raise ModuleError(f"cannot deactivate {module_id!r}: active module {names} depends on it")
        del self._active[module_id]
        return True

    def active(self) -> list[str]:
        """Active module ids in the order they became active."""
        return list(self._active)

    def is_active(self, module_id: str) -> bool:
        return module_id in self._active

    # -- validation --------------------------------------------------------------------------------

    def validate(self) -> list[str]:
        """Everything wrong with the catalogue, one message per problem; empty when it is sound."""
        problems: list[str] = []
        for module_id, first, second in self._duplicates:
            where = f" ({first or '?'} and {second or '?'})" if first or second else ""
            problems.append(f"duplicate module id {module_id!r}{where}")
        for module in self._modules.values():
            problems.extend(self._module_problems(module))
        problems.extend(self._cycle_problems())
        problems.extend(self._closure_problems())
        problems.extend(self._program_problems())
        return problems

    def _module_problems(self, m: Module) -> list[str]:
        out: list[str] = []
        if not ID_RE.match(m.id):
            out.append(f"{m.id!r}: id must be lowercase and dotted, like 'family.thing'")
        if m.category not in CATEGORIES:
            out.append(f"{m.id}: unknown category {m.category!r} (one of {', '.join(CATEGORIES)})")
        source = self._sources.get(m.id)
        if source is not None and PurePosixPath(source).stem != m.category:
            out.append(f"{m.id}: category {m.category!r} but it is listed in {source}")
        if not SEMVER_RE.match(m.version):
            out.append(f"{m.id}: version {m.version!r} is not semver (MAJOR.MINOR.PATCH)")
        if not m.name.strip():
            out.append(f"{m.id}: empty name")
        if not m.description.strip():
            out.append(f"{m.id}: empty description")
        if not 1 <= len(m.provides) <= MAX_PROVIDES:
            out.append(f"{m.id}: provides {len(m.provides)} capabilities; expected 1 to {MAX_PROVIDES}")
        for field in ("depends", "conflicts", "provides"):
            values = getattr(m, field)
            for value in sorted({v for v in values if values.count(v) > 1}):
                out.append(f"{m.id}: {field} lists {value!r} more than once")
        for dep in m.depends:
            if dep == m.id:
                out.append(f"{m.id}: depends on itself")
            elif dep not in self._modules:
                out.append(f"{m.id}: depends on unknown module {dep!r}{self._suggest(dep)}")
        for other in m.conflicts:
            if other == m.id:
                out.append(f"{m.id}: conflicts with itself")
            elif other not in self._modules:
                out.append(f"{m.id}: conflicts with unknown module {other!r}{self._suggest(other)}")
            elif m.id not in self._modules[other].conflicts:
                out.append(f"{m.id}: conflicts with {other!r}, but {other!r} does not list {m.id!r} (conflicts must be symmetric)")
            elif other in m.depends:
                out.append(f"{m.id}: both depends on and conflicts with {other!r}")
        return out

    def _cycle_problems(self) -> list[str]:
        """Each dependency cycle once, as a path that starts and ends at its smallest id."""
        white, grey, black = 0, 1, 2
        colour = dict.fromkeys(self._modules, white)
        seen: set[tuple[str, ...]] = set()
        out: list[str] = []

        for start in self._modules:
            if colour[start] != white:
                continue
            # Iterative DFS; each frame is (id, iterator over its known dependencies).
            path: list[str] = [start]
            stack = [iter([d for d in self._modules[start].depends if d in self._modules])]
            colour[start] = grey
            while stack:
                dep = next(stack[-1], None)
                if dep is None:
                    colour[path.pop()] = black
                    stack.pop()
                    continue
                if colour[dep] == grey:
                    cycle = path[path.index(dep):]
                    pivot = cycle.index(min(cycle))
                    canonical = tuple(cycle[pivot:] + cycle[:pivot])
                    if canonical not in seen:
                        seen.add(canonical)
                        out.append("dependency cycle: " + " -> ".join(canonical + (canonical[0],)))
                elif colour[dep] == white:
                    colour[dep] = grey
                    path.append(dep)
                    stack.append(iter([d for d in self._modules[dep].depends if d in self._modules]))
        return out

    def _closure_problems(self) -> list[str]:
        """Modules that can never be activated because their own dependencies conflict."""
        out: list[str] = []
        for module_id in self._modules:
            try:
                closure = self.resolve([module_id])
            except ModuleError:
                continue  # a missing dependency or cycle, reported on its own
            for a, b in self.conflicts_in(closure):
                out.append(f"{module_id}: cannot be activated: its dependencies {a!r} and {b!r} conflict")
        return out

    def _program_problems(self) -> list[str]:
        out: list[str] = []
        for key, ids in self._programs.items():
            if not key.isdigit() or int(key) < 1:
                out.append(f"program {key!r}: program ids must be positive integers")
            if not ids:
                out.append(f"program {key}: lists no modules")
            for module_id in sorted({i for i in ids if ids.count(i) > 1}):
                out.append(f"program {key}: lists {module_id!r} more than once")
            try:
                resolved = self.resolve(ids)
            except ModuleError as exc:
                out.append(f"program {key}: {exc}")
                continue
            for a, b in self.conflicts_in(resolved):
                out.append(f"program {key}: modules {a!r} and {b!r} conflict")
        return out

    def _suggest(self, module_id: str) -> str:
        close = difflib.get_close_matches(module_id, self._modules, n=1, cutoff=0.75)
        return f"; did you mean {close[0]!r}?" if close else ""


def _as_ids(ids: str | Iterable[str]) -> list[str]:
    # A bare string is one id, not an iterable of one-letter ids.
    return [ids] if isinstance(ids, str) else list(ids)


# -- parsing ---------------------------------------------------------------------------------------


@cache
def _parse_catalogue(package: str) -> tuple[tuple[Module, ...], tuple[str, ...], dict[str, tuple[str, ...]]]:
    root = files(package)
    directory = root / MODULES_DIR
    if not directory.is_dir():
        raise ModuleError(f"{package}: no {MODULES_DIR}/ directory")
    order = {category: i for i, category in enumerate(CATEGORIES)}
    paths = sorted(
        (p for p in directory.iterdir() if p.name.endswith(".toml")),
        key=lambda p: (order.get(p.name.removesuffix(".toml"), len(order)), p.name),
    )
    modules: list[Module] = []
    sources: list[str] = []
    for path in paths:
        data = _read_toml(path.read_text(encoding="utf-8"), path.name)
        extra = sorted(set(data) - {"module"})
        if extra:
            raise ModuleError(f"{path.name}: unknown top-level key {extra[0]!r}; expected [[module]] tables")
        entries = data.get("module", [])
        if not isinstance(entries, list):
            raise ModuleError(f"{path.name}: 'module' must be an array of tables ([[module]])")
        for index, entry in enumerate(entries):
            modules.append(_module_from(entry, f"{path.name}: module[{index}]"))
            sources.append(path.name)

    programs: dict[str, tuple[str, ...]] = {}
    program_file = root / PROGRAM_MODULES_FILE
    if program_file.is_file():
        data = _read_toml(program_file.read_text(encoding="utf-8"), PROGRAM_MODULES_FILE)
        for key, ids in data.items():
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ModuleError(f"{PROGRAM_MODULES_FILE}: {key!r}: must be a list of module ids")
            programs[key] = tuple(ids)
    return tuple(modules), tuple(sources), programs


def _read_toml(text: str, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModuleError(f"{name}: {exc}") from None


def _module_from(entry: Any, where: str) -> Module:
    if not isinstance(entry, dict):
        raise ModuleError(f"{where}: must be a table")
    label = f"{where} ({entry['id']})" if isinstance(entry.get("id"), str) else where
    known = _STRING_FIELDS + _LIST_FIELDS
    for key in entry:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ModuleError(f"{label}: unknown key {key!r}{hint}")
    values: dict[str, Any] = {}
    for key in _STRING_FIELDS:
        if key not in entry:
            raise ModuleError(f"{label}: missing {key!r}")
        if not isinstance(entry[key], str):
            raise ModuleError(f"{label}.{key}: must be a string")
        values[key] = entry[key]
    for key in _LIST_FIELDS:
        if key not in entry:
            if key in _OPTIONAL_FIELDS:
                values[key] = ()
                continue
            raise ModuleError(f"{label}: missing {key!r}")
        value = entry[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ModuleError(f"{label}.{key}: must be a list of strings")
        values[key] = tuple(value)
    return Module(**values)


__all__ = ["CATEGORIES", "Module", "ModuleError", "ModuleRegistry"]
