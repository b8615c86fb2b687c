"""One fix plan, full screen (`enter` on the approvals screen), updated as its outcome arrives."""
from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widget import Widget

from ..core.api import PlanRow
from ..core.model import Event
from ..messages import PlanDecided, PlanLoaded
from ..widgets.plan_view import PlanView
from .base import AuroraScreen, Coalesced
from .plan_actions import PlanActions


class PlanDetailScreen(PlanActions, AuroraScreen):
    LABEL = "PLAN"
    AUTO_FOCUS = "#plan-detail-scroll"
    BINDINGS = [
        Binding("a", "approve", "Approve", id="plan.approve"),
        Binding("r", "reject", "Reject", id="plan.reject"),
        Binding("g", "grade", "Grade", id="plan.grade"),
    ]

    def __init__(self, plan_id: int) -> None:
        super().__init__()
        self.plan_id = plan_id
        self.plan: PlanRow | None = None
        self._load = Coalesced(self, "plan-load", self._fetch)

    def header_label(self) -> str:
        return f"PLAN #{self.plan_id}"

    def compose_main(self) -> Iterable[Widget]:
        with VerticalScroll(id="plan-detail-scroll"):
            yield PlanView(Text(f"reading plan #{self.plan_id}…", style="dim"), id="plan-detail-view")

    def main_focus(self) -> Widget:
        return self.query_one("#plan-detail-scroll")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#plan-detail-scroll").focus()
        if not self.aurora.supports("plan"):
            self.query_one(PlanView).update(Text("This engine has no approval queue yet.", style="bold"))
            return
        self._load.poke()

    async def _fetch(self) -> None:
        try:
            plan = await self.engine.plan(self.plan_id)
        except Exception as exc:
            self.post_message(PlanLoaded(self.plan_id, None, str(exc)))
        else:
            self.post_message(PlanLoaded(self.plan_id, plan))

    def on_plan_loaded(self, message: PlanLoaded) -> None:
        message.stop()
        if message.plan is None:
            self.query_one(PlanView).update(Text(f"Cannot read plan #{self.plan_id}: {message.error}", style="bold red"))
            return
        self.plan = message.plan
        self.query_one(PlanView).show(self.plan, self.aurora.clock())

    def on_plan_decided(self, message: PlanDecided) -> None:
        message.stop()
        if message.error:
            self.notify(f"{message.decision} plan #{message.plan_id} failed: {message.error}", severity="error", timeout=8)
            return
        verb = {"approve": "approved", "reject": "rejected", "grade": "graded"}[message.decision]
        self.notify(f"Plan #{message.plan_id} {verb}." + (" Waiting for the outcome…" if message.decision == "approve" else ""))
        self._load.poke()

    def engine_event(self, event: Event) -> None:
        if event.kind.startswith("plan_") and event.data.get("plan") == self.plan_id:
            self._load.poke()

    def current_plan(self) -> PlanRow | None:
        return self.plan
