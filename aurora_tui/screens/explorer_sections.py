"""What the explorer can show, one section per catalogue. Each section lists entries (id, label, the text
the fuzzy filter searches) and renders one entry in full. Today it is the 25 issue patterns; the
dispatcher's catalogues (tiers, programs, modules) become sections of their own when they land."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..core.patterns import Pattern, load_patterns
from ..widgets.incidents_table import severity_text


@dataclass(frozen=True)
class Entry:
    section: str
    id: str
    label: str
    search: str


class Section(Protocol):
    key: str
    title: str

    def entries(self) -> list[Entry]: ...

    def render(self, entry_id: str) -> RenderableType: ...


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


class PatternsSection:
    key = "patterns"
    title = "Issue patterns"

    def entries(self) -> list[Entry]:
        return [
            Entry(self.key, p.id, p.title, " ".join((p.id, p.title, p.explanation, p.looks_like, " ".join(p.causes), p.fix)))
            for p in load_patterns().values()
        ]

    def render(self, entry_id: str) -> RenderableType:
        p: Pattern = load_patterns()[entry_id]
        title = Text()
        title.append(p.title, style="bold")
        title.append(f"  {p.id}", style="dim")
        facts = Text()
        facts.append_text(severity_text(p.severity))
        facts.append(f" · {p.scope} · fix risk ")
        facts.append(p.risk, style=RISK_STYLES.get(p.risk, ""))
        facts.append(f" · base confidence {p.base_confidence}/10 · clears after {p.clear_after} clean pass{'es' if p.clear_after != 1 else ''}")

        def block(heading: str, body: RenderableType) -> list[RenderableType]:
            return [Text(""), Text(heading, style="bold underline"), body]

        causes = Text("\n".join(f"• {c}" for c in p.causes) or "-")
        thresholds = Table.grid(padding=(0, 2))
        thresholds.add_column(style="bold", no_wrap=True)
        thresholds.add_column()
        for name, value in p.params.items():
            thresholds.add_row(name, _param_h(name, value))
        if not p.params:
            thresholds.add_row("", Text("none", style="dim"))
        parts: list[RenderableType] = [title, facts]
        parts += block("What it is", Text(p.explanation))
        parts += block("What it looks like", Text(p.looks_like))
        parts += block("Usual causes", causes)
        parts += block("Fix", Text(p.fix + (f"\nactions: {', '.join(p.actions)}" if p.actions else "")))
        parts += block("Thresholds", thresholds)
        if p.supersedes:
            parts += block("Folds in", Text(", ".join(p.supersedes), style="dim"))
        return Group(*parts)


SECTIONS: list[Section] = [PatternsSection()]
