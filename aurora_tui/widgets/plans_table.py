"""The approval queue: one row per fix plan, keyed by plan id and updated in place as a plan moves
from pending to approved, executing, executed, verified or failed."""
from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual.binding import Binding

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


def plan_cells(plan: dict[str, Any], now: float) -> dict[str, Any]:
    created = plan.get("created_at")
    return {
        "id": Text(str(plan["id"]), justify="right"),
        "age": age_h(max(0.0, now - float(created))) if created else "-",
        "service": str(plan.get("service", "")),
        "action": action_summary(list(plan.get("actions") or []), plan.get("service")),
        "pattern": str(plan.get("pattern", "")),
        "risk": Text(str(plan.get("risk", "?")), style=RISK.get(str(plan.get("risk")), "")),
        "confidence": f"{plan.get('confidence', '?')}/10",
        "verdicts": verdict_glyphs(plan.get("verdicts") or []),
        "decision": Text(str(plan.get("decision", "")), style=DECISION.get(str(plan.get("decision")), "")),
        "status": Text(str(plan.get("status", "")), style=PLAN_STATUS.get(str(plan.get("status")), "")),
    }


class PlansTable(ResponsiveTable):
    BINDINGS = [
        Binding("enter", "select_cursor", "Details", id="approvals.details"),
    ]
    COLUMNS = COLUMNS
    RESERVE_SCROLLBAR = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plans: dict[str, dict[str, Any]] = {}
        self.text_filter = ""

    def matches(self, plan: dict[str, Any]) -> bool:
        if not self.text_filter:
            return True
        haystack = " ".join(str(plan.get(k, "")) for k in ("service", "pattern", "summary", "status", "risk")).lower()
        haystack += " " + " ".join(str(a.get("kind", "")) for a in plan.get("actions") or []).lower()
        return all(word in haystack for word in self.text_filter.lower().split())

    def after_relayout(self) -> None:
        self.sort_newest_first()


    def replace(self, plans: Iterable[dict[str, Any]], now: float) -> None:
        self.plans = {str(p["id"]): p for p in plans}
        self.clear_rows()
        self._render_all(now)

    def upsert(self, plan: dict[str, Any], now: float) -> None:
        self.plans[str(plan["id"])] = plan
        key = str(plan["id"])
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

    def selected_plan(self) -> dict[str, Any] | None:
        key = self.selected_key
        return self.plans.get(key) if key else None
