"""The approval queue: one row per fix plan, keyed by plan id and updated in place as a plan moves
from pending to approved, executing, executed, verified or failed (or superseded, when an engine that
died mid-plan was followed by one that found the work already done)."""
from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual.binding import Binding

from ..core.api import PlanRow
from .age import age_h
from .responsive_table import Col, ResponsiveTable

RISK = {"low": "green", "medium": "yellow", "high": "bold red"}
OUTCOME = {"pass": ("✔", "green"), "warn": ("!", "yellow"), "block": ("✖", "bold red"), "skipped": ("–", "dim")}
DECISION = {"run": "green", "wait": "yellow", "block": "bold red"}
PLAN_STATUS = {
    "pending": "bold yellow",
    "approved": "cyan",
    "executing": "bold cyan",
    "executed": "blue",
    "verified": "bold green",
    "failed": "bold red",
    "rejected": "dim",
    "blocked": "red",
    "expired": "dim",
    "superseded": "dim",
}

COLUMNS = (
    Col("id", "#", 5, 0, justify="right"),
    Col("age", "Age", 6, 1, justify="right"),
    Col("service", "Service", 12, 0),
    Col("action", "Action", 10, 0, max_width=24),
    Col("pattern", "Pattern", 14, 2, max_width=23),
    Col("risk", "Risk", 6, 1),
    Col("confidence", "Conf", 4, 1, justify="right"),
    Col("verdicts", "L1L2L3", 6, 1),
    Col("decision", "Guard", 5, 2),
    Col("status", "Status", 9, 0),
)


def verdict_glyphs(verdicts: Iterable[dict[str, Any]]) -> Text:
    by_level = {str(v.get("level")): v for v in verdicts}
    text = Text()
    for level in ("L1", "L2", "L3"):
        glyph, style = OUTCOME.get(str(by_level.get(level, {}).get("outcome", "skipped")), ("?", ""))
        text.append(f"{glyph} ", style=style)
    return text


def target_h(action: dict[str, Any]) -> str:
    """What an action acts on: a named service, or a process identified by pid (and its role)."""
    target = action.get("target")
    if isinstance(target, dict):
        role = f" {target['role']}" if target.get("role") and target.get("role") != "service" else ""
        return f"pid {target.get('pid')}{role}"
    if target:
        return str(target)
    return str(action.get("service") or "")


def action_summary(actions: list[dict[str, Any]], service: str | None = None) -> str:
    """The actions in order (``terminate+start``), with the target when it is not the plan's own service."""
    if not actions:
        return "-"
    kinds = "+".join(str(a.get("kind", "?")) for a in actions)
    first = actions[0]
    other = first.get("service") if first.get("service") not in (None, service) else None
    if isinstance(first.get("target"), str) and first.get("target") != service:
        other = first["target"]
    return f"{kinds} {other}" if other else kinds


def plan_cells(plan: PlanRow, now: float) -> dict[str, Any]:
    created = plan.created_at
    return {
        "id": Text(str(plan.id), justify="right"),
        "age": age_h(max(0.0, now - created)) if created else "-",
        "service": plan.service,
        "action": action_summary(plan.actions, plan.service),
        "pattern": plan.pattern,
        "risk": Text(plan.risk, style=RISK.get(plan.risk, "")),
        "confidence": f"{plan.confidence}/10",
        "verdicts": verdict_glyphs(plan.verdicts),
        "decision": Text(plan.decision, style=DECISION.get(plan.decision, "")),
        "status": Text(plan.status, style=PLAN_STATUS.get(plan.status, "")),
    }


class PlansTable(ResponsiveTable):
    BINDINGS = [
        Binding("enter", "select_cursor", "Details", id="approvals.details"),
    ]
    COLUMNS = COLUMNS
    RESERVE_SCROLLBAR = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plans: dict[str, PlanRow] = {}
        self.text_filter = ""

    def matches(self, plan: PlanRow) -> bool:
        if not self.text_filter:
            return True
        haystack = " ".join((plan.service, plan.pattern, plan.summary, plan.status, plan.risk)).lower()
        haystack += " " + " ".join(str(a.get("kind", "")) for a in plan.actions).lower()
        return all(word in haystack for word in self.text_filter.lower().split())

    def after_relayout(self) -> None:
        self.sort_newest_first()


    def replace(self, plans: Iterable[PlanRow], now: float) -> None:
        self.plans = {str(p.id): p for p in plans}
        self.clear_rows()
        self._render_all(now)

    def upsert(self, plan: PlanRow, now: float) -> None:
        key = str(plan.id)
        self.plans[key] = plan
        if self.matches(plan):
            if self.set_row(key, plan_cells(plan, now)):
                self.sort_newest_first()
        elif self.has_row(key):
            self.drop_row(key)

    def set_filter(self, text: str, now: float) -> None:
        self.text_filter = text.strip()
        self._render_all(now)

    def _render_all(self, now: float) -> None:
        selected = self.selected_key
        for key in self.row_keys():
            if key not in self.plans or not self.matches(self.plans[key]):
                self.drop_row(key)
        for key, plan in self.plans.items():
            if self.matches(plan):
                self.set_row(key, plan_cells(plan, now))
        self.sort_newest_first()
        if selected and self.has_row(selected):
            self.select(selected)
        elif self.row_count:
            self.move_cursor(row=0, animate=False)

    def selected_plan(self) -> PlanRow | None:
        key = self.selected_key
        return self.plans.get(key) if key else None
