"""Approve, reject and grade: shared by the approvals screen and a plan's own screen."""
from __future__ import annotations

from typing import Any

from ..messages import PlanDecided
from ..widgets.plans_table import target_h
from .confirm import ConfirmScreen
from .prompt import PromptScreen, grade_check, reason_check


def describe_actions(plan: dict[str, Any]) -> str:
    actions = plan.get("actions") or []
    return "; ".join(f"{a.get('kind')} {target_h(a) or plan.get('service') or 'the fleet'}" for a in actions) or "no actions"


def describe_verdicts(plan: dict[str, Any]) -> str:
    return ", ".join(f"{v.get('level')} {v.get('outcome')}" for v in plan.get("verdicts") or []) or "no verdicts"


class PlanActions:
    """Mixin for screens that show plans. Needs ``current_plan()`` and ``aurora``."""

    def current_plan(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def _decidable(self, verb: str) -> dict[str, Any] | None:
        plan = self.current_plan()
        if plan is None:
            return None
        if verb in ("approve", "reject") and plan.get("status") != "pending":
            self.notify(f"Plan #{plan['id']} is {plan.get('status')}: only a pending plan can be {verb}d.", severity="warning")  # type: ignore[attr-defined]
            return None
        return plan

    def action_approve(self) -> None:
        plan = self._decidable("approve")
        if plan is None:
            return
        detail = (
            f"{describe_actions(plan)} — risk {plan.get('risk')}, confidence {plan.get('confidence')}/10, "
            f"guardians: {describe_verdicts(plan)} ({plan.get('decision')})."
        )
        if plan.get("decision") == "block":
            detail += " A guardian BLOCKED this plan."

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("approve", plan["id"])

        self.app.push_screen(ConfirmScreen(f"Approve plan #{plan['id']}?", detail), answered)  # type: ignore[attr-defined]

    def action_reject(self) -> None:
        plan = self._decidable("reject")
        if plan is None:
            return

        def answered(reason: str | None) -> None:
            if reason:
                self._decide("reject", plan["id"], reason=reason)

        self.app.push_screen(  # type: ignore[attr-defined]
            PromptScreen(f"Reject plan #{plan['id']}?", describe_actions(plan), placeholder="why (kept with the plan)", check=reason_check),
            answered,
        )

    def action_grade(self) -> None:
        plan = self._decidable("grade")
        if plan is None:
            return

        def answered(value: str | None) -> None:
            if value:
                self._decide("grade", plan["id"], grade=int(value))

        self.app.push_screen(  # type: ignore[attr-defined]
            PromptScreen(f"Grade plan #{plan['id']}", "How good was this plan? 1 (bad) to 10 (exactly right).", placeholder="1-10", check=grade_check, integer=True),
            answered,
        )

    def _decide(self, decision: str, plan_id: int, **params: Any) -> None:
        self.run_worker(_decide(self, decision, int(plan_id), params), group=f"plan-{plan_id}", exit_on_error=False)  # type: ignore[attr-defined]


async def _decide(node: Any, decision: str, plan_id: int, params: dict[str, Any]) -> None:
    engine = node.aurora.engine
    try:
        plan = await getattr(engine, decision)(plan_id, **params)
    except Exception as exc:
        node.post_message(PlanDecided(decision, plan_id, None, str(exc) or type(exc).__name__))
    else:
        node.post_message(PlanDecided(decision, plan_id, plan if isinstance(plan, dict) else None, None))
