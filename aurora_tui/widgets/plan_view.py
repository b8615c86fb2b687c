"""A fix plan as the approver needs it: what will be done to what, why (diagnosis, evidence,
confidence), what the three guardians said and why, and — once decided — what happened."""
from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..core.api import PlanRow
from ..core.format import duration_h
from .incident_view import clock_h, evidence_table, value_h
from .plans_table import DECISION, OUTCOME, PLAN_STATUS, RISK, target_h

OUTCOME_WORDS = {"pass": "pass", "warn": "warn", "block": "BLOCK", "skipped": "skipped"}


def plan_renderable(plan: PlanRow, now: float) -> RenderableType:
    status = plan.status
    title = Text()
    title.append(f"Plan #{plan.id} ", style="bold")
    title.append(status.upper(), style=PLAN_STATUS.get(status, "bold"))
    title.append(f" · {plan.service} · {plan.pattern}")
    if plan.incident_id is not None:
        title.append(f" · incident #{plan.incident_id}", style="dim")
    if plan.created_at:
        title.append(f" · proposed {duration_h(max(0.0, now - plan.created_at))} ago", style="dim")

    what = Table.grid(padding=(0, 1))
    what.add_column(no_wrap=True, style="bold")
    what.add_column(no_wrap=True, style="cyan")
    what.add_column(overflow="fold", ratio=1)
    for action in plan.actions:
        target = target_h(action)
        what.add_row(str(action.get("kind", "?")), f"→ {target}" if target else "", str(action.get("detail", "")))
        cmd = action.get("target", {}).get("cmdline") if isinstance(action.get("target"), dict) else None
        if cmd:
            what.add_row("", "", Text(" ".join(cmd)[:200], style="dim"))
    if not plan.actions:
        what.add_row("", "", Text("no actions", style="dim"))

    why = Text()
    why.append(plan.summary or "no diagnosis recorded")
    why.append("\nconfidence ")
    why.append(f"{plan.confidence}/10", style="bold")
    why.append(" · risk ")
    why.append(plan.risk, style=RISK.get(plan.risk, "bold"))
    why.append(" · the guardians say ")
    decision = plan.decision
    why.append(decision, style=DECISION.get(decision, "bold"))

    guardians = Table.grid(padding=(0, 1))
    guardians.add_column(no_wrap=True, style="bold")
    guardians.add_column(no_wrap=True)
    guardians.add_column(no_wrap=True)
    guardians.add_column(overflow="fold")
    by_level = {str(v.get("level")): v for v in plan.verdicts}
    for level in ("L1", "L2", "L3"):
        verdict = by_level.get(level)
        if verdict is None:
            guardians.add_row(level, "", Text("–", style="dim"), Text("no verdict", style="dim"))
            continue
        outcome = str(verdict.get("outcome", "?"))
        glyph, style = OUTCOME.get(outcome, ("?", ""))
        reasons = "; ".join(str(r) for r in verdict.get("reasons") or []) or "-"
        guardians.add_row(level, str(verdict.get("name", "")), Text(f"{glyph} {OUTCOME_WORDS.get(outcome, outcome)}", style=style), reasons)

    parts: list[RenderableType] = [
        title, Text(""),
        Text("What will be done", style="bold underline"), what, Text(""),
        Text("Why", style="bold underline"), why, Text(""),
        Text("Guardians", style="bold underline"), guardians, Text(""),
        Text("Evidence", style="bold underline"), evidence_table(plan.evidence),
    ]
    if status != "pending" or plan.decided_at:
        decided = Text()
        decided.append(status, style=PLAN_STATUS.get(status, "bold"))
        if plan.decided_by:
            decided.append(f" by {plan.decided_by}")
        if plan.decided_at:
            decided.append(f" at {clock_h(plan.decided_at)}")
        if plan.grade is not None:
            decided.append(f" · grade {plan.grade}/10")
        if plan.comment:
            decided.append(f" · “{plan.comment}”")
        if plan.reason:
            decided.append(f" · reason: {plan.reason}")
        parts += [Text(""), Text("Decision", style="bold underline"), decided]
        if plan.outcome:
            parts += [Text(""), Text("Outcome", style="bold underline"), Text(value_h(plan.outcome, 400))]
        elif status in ("approved", "executing"):
            parts += [Text(""), Text("Outcome", style="bold underline"), Text("waiting for the outcome…", style="italic")]
    return Group(*parts)


class PlanView(Static):
    def show(self, plan: PlanRow | None, now: float) -> None:
        if plan is None:
            self.update(Text("No plan selected.", style="dim"))
        else:
            self.update(plan_renderable(plan, now))
