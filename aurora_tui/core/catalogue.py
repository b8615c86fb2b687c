"""The dispatcher's catalogue as typed data: 66 execution programs, 188 intelligence tiers, the module
registry and the issue patterns, with one fuzzy search across all four (the explorer screen uses it).

* ``programs.toml`` / ``tiers.toml`` are read with :mod:`tomllib` through :mod:`importlib.resources` and
  parsed once per process;
* ``modules`` is the packaged :class:`~aurora_tui.core.modules.ModuleRegistry`;
* ``patterns`` are the issue patterns of :func:`~aurora_tui.core.patterns.load_patterns`.

``Catalogue.load()`` returns one shared instance (everything in it is read-only, except the registry's
set of *active* modules, which nothing in the dispatcher touches; call ``ModuleRegistry.load()`` for a
private registry to activate modules on). Pure Python: no Textual here.
"""
from __future__ import annotations

import functools
import re
import threading
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from .modules import ModuleRegistry
from .patterns import Pattern, load_patterns

__all__ = ["Catalogue", "Program", "SearchHit", "Tier", "load_programs", "load_tiers"]

CATALOGUE_PACKAGE = "aurora_tui.catalogue"
#: Search kinds, in the order a tie between them is broken.
KINDS = ("program", "tier", "module", "pattern")


@dataclass(frozen=True)
class Program:
    """One of the 66 execution programs."""

    id: int
    name: str
    group: str
    mode: str  # "live" (reads and acts on the fleet) or "catalogue" (guidance only)
    conversation_types: tuple[str, ...]
    tiers: tuple[int, ...]
    keywords: tuple[str, ...]
    summary: str
    questions: tuple[str, ...]
    checklist: tuple[str, ...]
    pitfalls: tuple[str, ...]

    @property
    def live(self) -> bool:
        return self.mode == "live"

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class Tier:
    """One of the 188 intelligence tiers (13 foundation, 175 grandmaster)."""

    id: int
    name: str
    kind: str  # "foundation" | "grandmaster"
    domain: str
    keywords: tuple[str, ...]
    summary: str
    questions: tuple[str, ...]
    checklist: tuple[str, ...]
    pitfalls: tuple[str, ...]

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class SearchHit:
    kind: str  # "program" | "tier" | "module" | "pattern"
    id: str  # programs and tiers: the number as a string; modules and patterns: their id
    name: str
    score: float  # 0-100, higher is better

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "score": self.score}


_LISTS = ("keywords", "questions", "checklist", "pitfalls")


def _read(name: str) -> dict[str, Any]:
    text = resources.files(CATALOGUE_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


@functools.cache
def load_programs() -> tuple[Program, ...]:
    """The 66 programs, in id order (parsed once per process)."""
    out = []
    for entry in _read("programs.toml")["program"]:
        data = dict(entry)
        for key in (*_LISTS, "conversation_types"):
            data[key] = tuple(data.get(key, ()))
        data["tiers"] = tuple(int(t) for t in data.get("tiers", ()))
        out.append(Program(**data))
    return tuple(sorted(out, key=lambda p: p.id))


@functools.cache
def load_tiers() -> tuple[Tier, ...]:
    """The 188 tiers, in id order (parsed once per process)."""
    out = []
    for entry in _read("tiers.toml")["tier"]:
        data = dict(entry)
        for key in _LISTS:
            data[key] = tuple(data.get(key, ()))
        out.append(Tier(**data))
    return tuple(sorted(out, key=lambda t: t.id))


def _as_int(ident: int | str) -> int:
    """``62``, ``"62"``, ``"#62"`` -> 62; anything else raises KeyError."""
    if isinstance(ident, bool):
        raise KeyError(ident)
    if isinstance(ident, int):
        return ident
    if isinstance(ident, str):
        text = ident.strip().lstrip("#")
        if text.isdigit():
            return int(text)
    raise KeyError(ident)


# --------------------------------------------------------------------------------------------------
# search

_SPACES = re.compile(r"[\s_.\-/]+")


def _norm(text: str) -> str:
    """Lower case; ``_ . - /`` and runs of spaces become one space (so ``crash_loop`` = ``crash loop``)."""
    return _SPACES.sub(" ", default_process(text)).strip() if text else ""


@dataclass(frozen=True)
class _Doc:
    kind: str
    id: str
    name: str
    order: int


class _SearchIndex:
    """Every searchable string, flattened: (text, document, weight).

    A document's score is the best of its strings, each scored by ``fuzz.WRatio`` times the string's
    weight: names and ids count fully, keywords / capabilities slightly less, prose (summaries,
    descriptions, explanations) least, so a name match beats a word buried in a description.
    """

    NAME = 1.0
    KEYWORD = 0.92
    PROSE = 0.8
    CUTOFF = 60

    def __init__(self, cat: "Catalogue") -> None:
        self.docs: list[_Doc] = []
        texts: list[str] = []
        owners: list[int] = []
        weights: list[float] = []
        self.exact: dict[str, list[int]] = {}

        def add(doc: _Doc, names: list[str], keywords: list[str], prose: list[str]) -> None:
            index = len(self.docs)
            self.docs.append(doc)
            for group, weight in ((names, self.NAME), (keywords, self.KEYWORD), (prose, self.PROSE)):
                for raw in group:
                    text = _norm(raw)
                    if not text:
                        continue
                    if weight == self.NAME:
                        self.exact.setdefault(text, []).append(index)
                    if text.isdigit():  # a number only ever matches exactly ("62" is not "2")
                        continue
                    texts.append(text)
                    owners.append(index)
                    weights.append(weight)

        order = 0
        for p in cat.programs:
            add(_Doc("program", str(p.id), p.name, order), [p.name, str(p.id)], [*p.keywords, p.group], [p.summary])
            order += 1
        for t in cat.tiers:
            add(_Doc("tier", str(t.id), t.name, order), [t.name, str(t.id)], [*t.keywords, t.domain], [t.summary])
            order += 1
        for m in cat.modules:
            add(_Doc("module", m.id, m.name, order), [m.id, m.name], list(m.provides), [m.description])
            order += 1
        for pat in cat.patterns.values():
            add(_Doc("pattern", pat.id, pat.title, order), [pat.id, pat.title], [], [pat.explanation, pat.looks_like])
            order += 1
        self.texts = texts
        self.owners = owners
        self.weights = weights

    def search(self, text: str, limit: int, kinds: tuple[str, ...] | None) -> list[SearchHit]:
        query = _norm(text[:200]) if isinstance(text, str) else ""
        if not query or limit <= 0:
            return []
        best: dict[int, float] = {}
        for index in self.exact.get(query, ()):  # "62", "python core", "crash loop"
            best[index] = 100.0
        if query.isdigit():  # a number names a program or tier; fuzzy digits are noise
            matches = []
        else:
            matches = process.extract(query, self.texts, scorer=fuzz.WRatio, processor=None, limit=None,
                                      score_cutoff=self.CUTOFF)
        for _, score, i in matches:
            owner = self.owners[i]
            weighted = score * self.weights[i]
            if weighted > best.get(owner, 0.0):
                best[owner] = weighted
        hits = []
        for index, score in best.items():
            doc = self.docs[index]
            if (kinds and doc.kind not in kinds) or score < self.CUTOFF:
                continue
            hits.append((doc, round(min(score, 100.0), 1)))
        hits.sort(key=lambda h: (-h[1], h[0].order))
        return [SearchHit(d.kind, d.id, d.name, s) for d, s in hits[:limit]]


# --------------------------------------------------------------------------------------------------
# the catalogue


class Catalogue:
    """Programs, tiers, modules and patterns, read-only, with lookup and fuzzy search."""

    _shared: "Catalogue | None" = None
    _lock = threading.Lock()

    def __init__(self, programs: tuple[Program, ...], tiers: tuple[Tier, ...], modules: ModuleRegistry,
                 patterns: dict[str, Pattern]) -> None:
        self.programs = programs
        self.tiers = tiers
        self.modules = modules
        self.patterns = patterns
        self._programs = {p.id: p for p in programs}
        self._tiers = {t.id: t for t in tiers}
        self._index: _SearchIndex | None = None
        self._program_modules: dict[int, tuple[str, ...]] = {}

    @classmethod
    def load(cls) -> "Catalogue":
        """The packaged catalogue; built once per process and shared."""
        if cls._shared is None:
            with cls._lock:
                if cls._shared is None:
                    cls._shared = cls(load_programs(), load_tiers(), ModuleRegistry.load(), load_patterns())
        return cls._shared

    # -- lookup ------------------------------------------------------------------------------------

    def program(self, program_id: int | str) -> Program:
        """Program by id (``62``, ``"62"`` or ``"#62"``); KeyError if there is none."""
        try:
            return self._programs[_as_int(program_id)]
        except KeyError:
            raise KeyError(f"no program {program_id!r} (programs are numbered 1-{len(self.programs)})") from None

    def tier(self, tier_id: int | str) -> Tier:
        """Tier by id; KeyError if there is none."""
        try:
            return self._tiers[_as_int(tier_id)]
        except KeyError:
            raise KeyError(f"no tier {tier_id!r} (tiers are numbered 1-{len(self.tiers)})") from None

    def pattern(self, pattern_id: str) -> Pattern:
        try:
            return self.patterns[pattern_id]
        except (KeyError, TypeError):
            raise KeyError(f"no issue pattern {pattern_id!r}") from None

    def program_modules(self, program_id: int | str) -> tuple[str, ...]:
        """The modules ``program_id`` activates, dependencies first (cached); empty if none are mapped."""
        pid = self.program(program_id).id
        cached = self._program_modules.get(pid)
        if cached is None:
            try:
                cached = tuple(self.modules.for_program(pid))
            except Exception:  # a broken mapping must not break routing; validate() reports it
                cached = ()
            self._program_modules[pid] = cached
        return cached

    def programs_for_type(self, conversation_type: str) -> list[Program]:
        return [p for p in self.programs if conversation_type in p.conversation_types]

    # -- search ------------------------------------------------------------------------------------

    def search(self, text: str, limit: int = 20, kinds: tuple[str, ...] | None = None) -> list[SearchHit]:
        """Best matches for ``text`` across programs, tiers, modules and patterns (fuzzy, rapidfuzz).

        Each hit is ``(kind, id, name, score)`` with score 0-100; ties keep catalogue order (programs,
        tiers, modules, patterns). ``kinds`` narrows the search. Empty text finds nothing.
        """
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = _SearchIndex(self)
        return self._index.search(text, int(limit), kinds)

    # -- export ------------------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        return {
            "programs": len(self.programs),
            "live_programs": sum(1 for p in self.programs if p.live),
            "tiers": len(self.tiers),
            "foundation_tiers": sum(1 for t in self.tiers if t.kind == "foundation"),
            "grandmaster_tiers": sum(1 for t in self.tiers if t.kind == "grandmaster"),
            "modules": len(self.modules),
            "module_categories": self.modules.categories(),
            "patterns": len(self.patterns),
        }

    def as_json(self) -> dict[str, Any]:
        """What ``aurora catalogue --json`` prints. A program's ``modules`` are resolved (dependencies first)."""
        return {
            "programs": [
                {"id": p.id, "name": p.name, "group": p.group, "mode": p.mode, "tiers": list(p.tiers),
                 "modules": list(self.program_modules(p.id))}
                for p in self.programs
            ],
            "tiers": [{"id": t.id, "name": t.name, "kind": t.kind, "domain": t.domain} for t in self.tiers],
            "modules": [
                {"id": m.id, "name": m.name, "category": m.category, "version": m.version,
                 "depends": list(m.depends), "conflicts": list(m.conflicts), "provides": list(m.provides)}
                for m in self.modules
            ],
            "counts": self.counts(),
        }

