"""What the explorer can show, one section per kind of catalogue entry: the 27 issue patterns, the 66
execution programs, the 188 intelligence tiers and the module registry (all read from
:class:`~aurora_tui.core.catalogue.Catalogue`, which is packaged, read-only data).

Each section lists its entries (kind, id, label), renders one entry in full for the detail pane, and says
what the explorer asks the dispatcher about it (``enter``). How often the dispatcher used a program, tier
or module, and which modules are active, come from the engine (the dispatcher reports them with every
answer); the explorer passes the latest copy in as :class:`DispatchStats`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..core.catalogue import Catalogue, Program, Tier
from ..core.modules import Module
from ..core.patterns import Pattern
from ..widgets.incidents_table import severity_text

#: The kinds, in the order the explorer's tabs show them.
KINDS = ("pattern", "program", "tier", "module")


@dataclass(frozen=True)
class Entry:
    section: str  # a kind: "pattern" | "program" | "tier" | "module"
    id: str  # programs and tiers: the number as a string; patterns and modules: their id
    label: str


@dataclass(frozen=True)
class DispatchStats:
    """The dispatcher's usage counts and active modules; ``None`` while the console has not heard them yet."""

    usage: dict[str, int] | None = None
    active: tuple[str, ...] | None = None
    _active_set: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def of(cls, usage: dict[str, int] | None, active: list[str] | None) -> "DispatchStats":
        return cls(usage, tuple(active) if active is not None else None, frozenset(active or ()))

    def count(self, key: str) -> int | None:
        return None if self.usage is None else int(self.usage.get(key, 0))

    def is_active(self, module_id: str) -> bool:
        return module_id in self._active_set


class Section(Protocol):
    key: str
    title: str

    def entries(self) -> list[Entry]: ...

    def label(self, entry: Entry, pad: bool = True) -> Text: ...

    def render(self, entry_id: str, stats: DispatchStats) -> RenderableType: ...

    def question(self, entry_id: str) -> str: ...


RISK_STYLES = {"low": "green", "medium": "yellow", "high": "bold red"}


def _param_h(name: str, value: float) -> str:
    shown = f"{value:g}"
    if name.endswith("_s"):
        shown += " s"
    elif name.endswith("_mb"):
        shown += " MiB"
    elif name.endswith("percent") or name == "percent":
        shown += " %"
    return shown


def _block(heading: str, body: RenderableType) -> list[RenderableType]:
    return [Text(""), Text(heading, style="bold underline"), body]


def _bullets(items: tuple[str, ...] | list[str], numbered: bool = False) -> Text:
    if not items:
        return Text("none", style="dim")
    lines = [f"{i}. {item}" if numbered else f"• {item}" for i, item in enumerate(items, 1)]
    return Text("\n".join(lines))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def usage_text(stats: DispatchStats, key: str, note: str = "") -> Text:
    """"Used by the dispatcher: 3 times" (or why it is not known)."""
    n = stats.count(key)
    if n is None:
        return Text("Usage: not known until the dispatcher answers", style="dim")
    if n == 0:
        return Text("Not used by the dispatcher yet", style="dim")
    text = Text("Used by the dispatcher: ")
    text.append(_times(n), style="bold")
    if note:
        text.append(f" ({note})", style="dim")
    return text


def _count_cell(stats: DispatchStats, key: str) -> Text:
    n = stats.count(key)
    if not n:
        return Text("")
    return Text(f"×{n}", style="bold")


def _guidance(item: Program | Tier) -> list[RenderableType]:
    parts: list[RenderableType] = []
    parts += _block("Summary", Text(item.summary))
    parts += _block("Questions to ask", _bullets(item.questions))
    parts += _block("Checklist", _bullets(item.checklist, numbered=True))
    parts += _block("Pitfalls", _bullets(item.pitfalls))
    return parts


# --------------------------------------------------------------------------------------------------


class PatternsSection:
    key = "pattern"
    title = "Issue patterns"
    short = "Pat"

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def entries(self) -> list[Entry]:
        return [Entry(self.key, p.id, p.title) for p in self.catalogue.patterns.values()]

    def label(self, entry: Entry, pad: bool = True) -> Text:
        return Text(entry.label, no_wrap=True, overflow="ellipsis")

    def question(self, entry_id: str) -> str:
        return f"explain {entry_id}"

    def render(self, entry_id: str, stats: DispatchStats) -> RenderableType:
        p: Pattern = self.catalogue.pattern(entry_id)
        title = Text()
        title.append(p.title, style="bold")
        title.append(f"  {p.id}", style="dim")
        facts = Text()
        facts.append_text(severity_text(p.severity))
        facts.append(f" · {p.scope} · fix risk ")
        facts.append(p.risk, style=RISK_STYLES.get(p.risk, ""))
        facts.append(f" · base confidence {p.base_confidence}/10 · clears after {p.clear_after} clean pass{'es' if p.clear_after != 1 else ''}")

        causes = Text("\n".join(f"• {c}" for c in p.causes) or "-")
        thresholds = Table.grid(padding=(0, 2))
        thresholds.add_column(style="bold", no_wrap=True)
        thresholds.add_column()
        for name, value in p.params.items():
            thresholds.add_row(name, _param_h(name, value))
        if not p.params:
            thresholds.add_row("", Text("none", style="dim"))
        parts: list[RenderableType] = [title, facts]
        parts += _block("What it is", Text(p.explanation))
        parts += _block("What it looks like", Text(p.looks_like))
        parts += _block("Usual causes", causes)
        parts += _block("Fix", Text(p.fix + (f"\nactions: {', '.join(p.actions)}" if p.actions else "")))
        parts += _block("Thresholds", thresholds)
        if p.supersedes:
            parts += _block("Folds in", Text(", ".join(p.supersedes), style="dim"))
        parts += [Text(""), Text(f"enter asks the dispatcher: “{self.question(entry_id)}”", style="dim italic")]
        return Group(*parts)


class ProgramsSection:
    key = "program"
    title = "Programs"
    short = "Prog"

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def entries(self) -> list[Entry]:
        return [Entry(self.key, str(p.id), p.name) for p in self.catalogue.programs]

    def label(self, entry: Entry, pad: bool = True) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{entry.id:>2} " if pad else f"{entry.id} ", style="dim")
        text.append(entry.label)
        return text

    def question(self, entry_id: str) -> str:
        return f"how do I approach {self.catalogue.program(entry_id).name}"

    def render(self, entry_id: str, stats: DispatchStats) -> RenderableType:
        cat = self.catalogue
        p = cat.program(entry_id)
        title = Text()
        title.append(f"#{p.id} {p.name}", style="bold")
        title.append("  program", style="dim")
        facts = Text(f"{p.group} · ")
        facts.append("live: reads and acts on the fleet" if p.live else "guidance from the catalogue",
                     style="green" if p.live else "")
        facts.append(f" · {', '.join(t.replace('_', ' ') for t in p.conversation_types)}")
        modules = cat.program_modules(p.id)
        active = sum(1 for m in modules if stats.is_active(m))
        facts.append(f" · {len(p.tiers)} tiers · {len(modules)} modules" + (f" ({active} active)" if active else ""))
        parts: list[RenderableType] = [title, facts, usage_text(stats, f"program:{p.id}", "messages routed to it")]
        parts += _guidance(p)

        tiers = Table.grid(padding=(0, 1))
        tiers.add_column(justify="right", style="dim", no_wrap=True)
        tiers.add_column()
        tiers.add_column(no_wrap=True)
        for tier_id in p.tiers:
            tier = cat.tier(tier_id)
            tiers.add_row(str(tier.id), tier.name, _count_cell(stats, f"tier:{tier.id}"))
        if not p.tiers:
            tiers.add_row("", Text("none", style="dim"), "")
        parts += _block(f"Tiers ({len(p.tiers)})", tiers)

        direct = set(cat.modules.programs().get(str(p.id), ()))
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)  # active marker
        table.add_column(no_wrap=True)  # id
        table.add_column()  # name, "dependency"
        table.add_column(no_wrap=True)  # usage
        for module_id in modules:
            module = cat.modules.get(module_id)
            name = Text(module.name)
            if module_id not in direct:
                name.append(" (dependency)", style="dim")
            marker = Text("●", style="green") if stats.is_active(module_id) else Text("·", style="dim")
            table.add_row(marker, Text(module_id, style="cyan"), name, _count_cell(stats, f"module:{module_id}"))
        if not modules:
            table.add_row("", Text("none mapped", style="dim"), "", "")
        heading = f"Modules ({len(modules)}, dependencies first)"
        parts += _block(heading, table)
        legend = Text("● active in the dispatcher · ×n times used", style="dim")
        parts += [legend, Text(""), Text(f"enter asks the dispatcher: “{self.question(entry_id)}”", style="dim italic")]
        return Group(*parts)


class TiersSection:
    key = "tier"
    title = "Tiers"
    short = "Tier"

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def entries(self) -> list[Entry]:
        return [Entry(self.key, str(t.id), t.name) for t in self.catalogue.tiers]

    def label(self, entry: Entry, pad: bool = True) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{entry.id:>3} " if pad else f"{entry.id} ", style="dim")
        text.append(entry.label)
        return text

    def question(self, entry_id: str) -> str:
        return f"explain {self.catalogue.tier(entry_id).name}"

    def render(self, entry_id: str, stats: DispatchStats) -> RenderableType:
        cat = self.catalogue
        t = cat.tier(entry_id)
        title = Text()
        title.append(f"Tier {t.id} · {t.name}", style="bold")
        facts = Text(f"{t.kind} · {t.domain}")
        if t.keywords:
            facts.append(f" · keywords: {', '.join(t.keywords)}", style="dim")
        parts: list[RenderableType] = [title, facts, usage_text(stats, f"tier:{t.id}", "messages it informed")]
        parts += _guidance(t)
        programs = [p for p in cat.programs if t.id in p.tiers]
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", style="dim", no_wrap=True)
        table.add_column()
        table.add_column(no_wrap=True)
        for p in programs:
            table.add_row(str(p.id), p.name, _count_cell(stats, f"program:{p.id}"))
        if not programs:
            table.add_row("", Text("no program lists it (keywords in a message still pull it in)", style="dim"), "")
        parts += _block(f"Programs with this tier ({len(programs)})", table)
        parts += [Text(""), Text(f"enter asks the dispatcher: “{self.question(entry_id)}”", style="dim italic")]
        return Group(*parts)


class ModulesSection:
    key = "module"
    title = "Modules"
    short = "Mod"

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._users: dict[str, list[tuple[int, bool]]] | None = None

    def entries(self) -> list[Entry]:
        return [Entry(self.key, m.id, m.name) for m in self.catalogue.modules]

    def label(self, entry: Entry, pad: bool = True) -> Text:
        return Text(entry.id, no_wrap=True, overflow="ellipsis")

    def question(self, entry_id: str) -> str:
        return f"what is the {self.catalogue.modules.get(entry_id).name} module for"

    def users(self, module_id: str) -> list[tuple[int, bool]]:
        """(program id, listed directly) for every program whose resolved modules include ``module_id``."""
        if self._users is None:
            direct = self.catalogue.modules.programs()
            users: dict[str, list[tuple[int, bool]]] = {}
            for p in self.catalogue.programs:
                mine = set(direct.get(str(p.id), ()))
                for mid in self.catalogue.program_modules(p.id):
                    users.setdefault(mid, []).append((p.id, mid in mine))
            self._users = users
        return self._users.get(module_id, [])

    def render(self, entry_id: str, stats: DispatchStats) -> RenderableType:
        cat = self.catalogue
        registry = cat.modules
        m: Module = registry.get(entry_id)
        title = Text()
        title.append(m.id, style="bold cyan")
        title.append(f"  {m.name}", style="bold")
        facts = Text(f"{m.category} · version {m.version} · ")
        if stats.active is None:
            facts.append("active: not known yet", style="dim")
        elif stats.is_active(m.id):
            facts.append("● active", style="bold green")
        else:
            facts.append("not active", style="dim")
        parts: list[RenderableType] = [title, facts, usage_text(stats, f"module:{m.id}", "messages its program answered")]
        parts += _block("What it does", Text(m.description))

        def ids(values: list[str] | tuple[str, ...], empty: str = "none") -> Text:
            if not values:
                return Text(empty, style="dim")
            text = Text()
            for i, value in enumerate(values):
                if i:
                    text.append(", ")
                text.append(value, style="green" if stats.is_active(value) else "cyan")
            return text

        parts += _block("Depends on", ids(m.depends))
        try:
            chain = [x for x in registry.resolve([m.id]) if x != m.id]
        except Exception as exc:  # a broken catalogue is shown, not raised
            chain_text = Text(str(exc), style="red")
        else:
            chain_text = ids(chain)
        if chain and list(chain) != list(m.depends):
            parts += _block("All it needs, dependencies first", chain_text)
        parts += _block("Conflicts with", ids(m.conflicts))
        parts += _block("Provides", Text(", ".join(m.provides)) if m.provides else Text("nothing", style="dim"))
        parts += _block("Dependants (modules that depend on it)", ids(registry.dependants(m.id)))
        users = self.users(m.id)
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", style="dim", no_wrap=True)
        table.add_column()
        table.add_column(no_wrap=True)
        for program_id, direct in users:
            name = Text(cat.program(program_id).name)
            if not direct:
                name.append(" (as a dependency)", style="dim")
            table.add_row(str(program_id), name, _count_cell(stats, f"program:{program_id}"))
        if not users:
            table.add_row("", Text("no program activates it", style="dim"), "")
        parts += _block(f"Programs that activate it ({len(users)})", table)
        parts += [Text(""), Text(f"enter asks the dispatcher: “{self.question(entry_id)}”", style="dim italic")]
        return Group(*parts)


def sections(catalogue: Catalogue) -> dict[str, Section]:
    """One section per kind, in tab order."""
    made = [PatternsSection(catalogue), ProgramsSection(catalogue), TiersSection(catalogue), ModulesSection(catalogue)]
    return {s.key: s for s in made}
