"""Approve, reject and grade: shared by the approvals screen and a plan's own screen."""
from __future__ import annotations

from typing import Awaitable, Callable

from ..core.api import EngineAPI, PlanRow
from ..messages import PlanDecided
from ..widgets.plans_table import target_h
from .base import AuroraScreen
from .confirm import ConfirmScreen
from .prompt import PromptScreen, grade_check, reason_check

#: One decision, as the engine is asked for it.
Decision = Callable[[EngineAPI], Awaitable[PlanRow]]


def describe_actions(plan: PlanRow) -> str:
    return "; ".join(f"{a.get('kind')} {target_h(a) or plan.service or 'the fleet'}" for a in plan.actions) or "no actions"


def describe_verdicts(plan: PlanRow) -> str:
    return ", ".join(f"{v.get('level')} {v.get('outcome')}" for v in plan.verdicts) or "no verdicts"


class PlanActions(AuroraScreen):
    """Base of the screens that show plans (put it before :class:`AuroraScreen`). Needs ``current_plan()``."""

    def current_plan(self) -> PlanRow | None:
        raise NotImplementedError

    def _decidable(self, verb: str) -> PlanRow | None:
        plan = self.current_plan()
        if plan is None:
            return None
        if verb in ("approve", "reject") and plan.status != "pending":
            self.notify(f"Plan #{plan.id} is {plan.status}: only a pending plan can be {verb}d.", severity="warning")
            return None
        return plan

    def action_approve(self) -> None:
        plan = self._decidable("approve")
        if plan is None:
            return
        detail = (
            f"{describe_actions(plan)} — risk {plan.risk}, confidence {plan.confidence}/10, "
            f"guardians: {describe_verdicts(plan)} ({plan.decision})."
        )
        if plan.decision == "block":
            detail += " A guardian BLOCKED this plan."

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("approve", plan.id, lambda engine: engine.approve(plan.id))

        self.app.push_screen(ConfirmScreen(f"Approve plan #{plan.id}?", detail), answered)

    def action_reject(self) -> None:
        plan = self._decidable("reject")
        if plan is None:
            return

        def answered(reason: str | None) -> None:
            if reason:
                self._decide("reject", plan.id, lambda engine: engine.reject(plan.id, reason=reason))

        self.app.push_screen(
            PromptScreen(f"Reject plan #{plan.id}?", describe_actions(plan), placeholder="why (kept with the plan)", check=reason_check),
            answered,
        )

    def action_grade(self) -> None:
        plan = self._decidable("grade")
        if plan is None:
            return

        def answered(value: str | None) -> None:
            if value:
                self._decide("grade", plan.id, lambda engine: engine.grade(plan.id, grade=int(value)))

        self.app.push_screen(
            PromptScreen(f"Grade plan #{plan.id}", "How good was this plan? 1 (bad) to 10 (exactly right).", placeholder="1-10", check=grade_check, integer=True),
            answered,
        )

    def _decide(self, decision: str, plan_id: int, call: Decision) -> None:
        self.run_worker(_decide(self, decision, plan_id, call), group=f"plan-{plan_id}", exit_on_error=False)


async def _decide(node: AuroraScreen, decision: str, plan_id: int, call: Decision) -> None:
    try:
        plan = await call(node.engine)
    except Exception as exc:
        node.post_message(PlanDecided(decision, plan_id, None, str(exc) or type(exc).__name__))
    else:
        node.post_message(PlanDecided(decision, plan_id, plan, None))
