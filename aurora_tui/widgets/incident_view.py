"""One incident as an on-call engineer reads it: what, where, how sure, the timeline, the evidence, and
what the pattern usually means and how it is fixed."""
from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..core.api import IncidentRow
from ..core.format import duration_h
from ..core.patterns import load_patterns
from .incidents_table import severity_text, status_text

TIMELINE_STYLES = {"detected": "yellow", "diagnosed": "cyan", "acknowledged": "blue", "resolved": "green", "merged": "magenta"}


def clock_h(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def value_h(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_table(evidence: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in evidence.items():
        table.add_row(str(key), value_h(value))
    if not evidence:
        table.add_row("", Text("no evidence recorded", style="dim"))
    return table


def incident_renderable(incident: IncidentRow, now: float) -> RenderableType:
    pattern = load_patterns().get(incident.pattern)
    title = Text()
    title.append(f"#{incident.id} ", style="bold")
    title.append(incident.pattern, style="bold")
    title.append(" on ")
    title.append(incident.service, style="bold cyan")
    if pattern:
        title.append(f" — {pattern.title}", style="italic")

    facts = Text()
    facts.append_text(status_text(incident.status))
    facts.append(" · ")
    facts.append_text(severity_text(incident.severity))
    facts.append(f" · confidence {incident.confidence}/10 · seen {incident.count}×")
    facts.append(f" · opened {clock_h(incident.opened_at)} ({duration_h(now - incident.opened_at)} ago)")
    if incident.detect_seconds is not None:
        facts.append(f" · detected in {incident.detect_seconds:.1f}s")
    if incident.recover_seconds:
        facts.append(f" · recovered after {incident.recover_seconds:.1f}s")
    if incident.acknowledged_by:
        facts.append(f" · acknowledged by {incident.acknowledged_by}")
    if incident.caused_by:
        facts.append(f" · caused by incident #{incident.caused_by}", style="magenta")

    summary = Text(incident.summary)

    timeline = Table.grid(padding=(0, 1))
    timeline.add_column(no_wrap=True, style="dim")
    timeline.add_column(no_wrap=True)
    timeline.add_column(overflow="fold")
    for entry in incident.timeline:
        timeline.add_row(clock_h(entry.ts), Text(entry.kind, style=TIMELINE_STYLES.get(entry.kind, "")), entry.message)
    if not incident.timeline:
        timeline.add_row("", "", Text("no timeline entries", style="dim"))

    parts: list[RenderableType] = [
        title, facts, Text(""), summary, Text(""),
        Text("Timeline", style="bold underline"), timeline, Text(""),
        Text("Evidence", style="bold underline"), evidence_table(incident.evidence),
    ]
    if pattern is not None:
        about = Table.grid(padding=(0, 1))
        about.add_column(style="bold", no_wrap=True)
        about.add_column(overflow="fold")
        about.add_row("means", pattern.explanation)
        about.add_row("causes", "; ".join(pattern.causes))
        about.add_row("fix", pattern.fix)
        about.add_row("risk", f"{pattern.risk} (usual actions: {', '.join(pattern.actions) or '-'})")
        parts += [Text(""), Text("About this pattern", style="bold underline"), about]
    return Group(*parts)


class IncidentView(Static):
    def show(self, incident: IncidentRow, now: float) -> None:
        self.update(incident_renderable(incident, now))
