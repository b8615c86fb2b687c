"""Screen 3: the approval queue. Each fix plan shows what it would do to what, why, and what the three
guardians said; the operator approves, rejects (with a reason) or grades it, and watches the outcome
arrive on the same screen."""
from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Static

from ..console_state import ConsoleState
from ..core.api import PlanRow
from ..core.model import Event
from ..messages import PlanDecided, PlanLoaded, PlansLoaded
from ..widgets.filter_bar import FilterBar
from ..widgets.plan_view import PlanView
from ..widgets.plans_table import PlansTable
from .base import AuroraScreen, Coalesced
from .plan_actions import PlanActions

NO_QUEUE = (
    "This engine has no approval queue yet.\n\n"
    "Fix plans that need a human appear here once the engine proposes them: what would be done to "
    "what, why, and what the three guardians said."
)
PAGE = 100


class ApprovalsScreen(PlanActions, AuroraScreen):
    LABEL = "APPROVALS"
    AUTO_FOCUS = "PlansTable"
    BINDINGS = [
        Binding("a", "approve", "Approve", id="approvals.approve"),
        Binding("r", "reject", "Reject", id="approvals.reject"),
        Binding("g", "grade", "Grade", id="approvals.grade"),
        Binding("o", "toggle_pending", "Pending/all", id="approvals.pending_all"),
        Binding("slash", "filter", "Filter", id="approvals.filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.status: str | None = "pending"
        self.supported: bool | None = None
        self.error: str | None = None
        self._pending_ids: set[int] = set()
        self._load = Coalesced(self, "plans-page", self._fetch)
        self._changes = Coalesced(self, "plans-changes", self._fetch_changed)

    def compose_main(self) -> Iterable[Widget]:
        yield Static(Text(NO_QUEUE), id="approvals-none")
        with Vertical(id="approvals-queue"):
            yield FilterBar("filter plans: service, pattern, action, status…", id="approvals-filter")
            yield Static(id="approvals-status")
            yield PlansTable(id="plans-table")
            with VerticalScroll(id="plan-scroll"):
                yield PlanView(id="plan-view")

    def main_focus(self) -> Widget:
        return self.query_one(PlansTable)

    def on_mount(self) -> None:
        super().on_mount()
        self._show_supported()
        if self.aurora.supports("list_plans"):
            self._load.poke()
        else:
            self.supported = False
            self._show_supported()

    def _show_supported(self) -> None:
        self.query_one("#approvals-none").display = self.supported is False
        self.query_one("#approvals-queue").display = self.supported is not False
        self._status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "reject", "grade", "toggle_pending", "filter") and self.supported is False:
            return False
        return super().check_action(action, parameters)

    # --- loading -------------------------------------------------------------------------------------

    async def _fetch(self) -> None:
        query = (self.status,)
        try:
            plans = await self.engine.list_plans(status=self.status, limit=PAGE)
        except NotImplementedError:
            self.post_message(PlansLoaded(query, [], replace=True, unsupported=True))
        except Exception as exc:
            self.post_message(PlansLoaded(query, [], replace=True, error=str(exc)))
        else:
            self.post_message(PlansLoaded(query, plans, replace=True))

    async def _fetch_changed(self) -> None:
        ids, self._pending_ids = self._pending_ids, set()
        for plan_id in sorted(ids):
            try:
                plan = await self.engine.plan(plan_id)
            except Exception as exc:
                self.post_message(PlanLoaded(plan_id, None, str(exc)))
            else:
                self.post_message(PlanLoaded(plan_id, plan))

    def on_plans_loaded(self, message: PlansLoaded) -> None:
        message.stop()
        if message.unsupported:
            self.supported = False
            self._show_supported()
            self.refresh_bindings()
            return
        if message.query != (self.status,):
            return
        self.error = message.error
        if message.error is None:
            if self.supported is not True:
                self.supported = True
                self._show_supported()
                self.refresh_bindings()
            self.query_one(PlansTable).replace(message.plans, self.aurora.clock())
        self._status()
        self._show_selected()

    def on_plan_loaded(self, message: PlanLoaded) -> None:
        message.stop()
        if message.plan is None:
            return
        table = self.query_one(PlansTable)
        plan = message.plan
        # A decided plan stays on screen so its outcome can be watched; new plans join if they match.
        if table.has_row(str(plan.id)) or str(plan.id) in table.plans or self.status in (None, plan.status):
            table.upsert(plan, self.aurora.clock())
        self._status()
        self._show_selected()

    def on_plan_decided(self, message: PlanDecided) -> None:
        message.stop()
        if message.error:
            self.notify(f"{message.decision} plan #{message.plan_id} failed: {message.error}", severity="error", timeout=8)
            return
        verb = {"approve": "approved", "reject": "rejected", "grade": "graded"}[message.decision]
        self.notify(f"Plan #{message.plan_id} {verb}." + (" Waiting for the outcome…" if message.decision == "approve" else ""))
        if message.plan is not None:
            self.query_one(PlansTable).upsert(message.plan, self.aurora.clock())
            self._show_selected()
        else:
            self._pending_ids.add(message.plan_id)
            self._changes.poke()

    # --- live ----------------------------------------------------------------------------------------

    def engine_event(self, event: Event) -> None:
        if not event.kind.startswith("plan_") or self.supported is False:
            return
        plan_id = event.data.get("plan")
        if isinstance(plan_id, int):
            self._pending_ids.add(plan_id)
            self._changes.poke()

    def state_changed(self, state: ConsoleState) -> None:
        if state.approvals is False and self.supported is not False:
            self.supported = False
            self._show_supported()

    def resumed(self) -> None:
        self.query_one("#plan-view", PlanView).refresh()

    # --- the view ------------------------------------------------------------------------------------

    def _status(self) -> None:
        text = Text(" ")
        if self.supported is None:
            text.append("reading the approval queue…", style="dim")
        else:
            table = self.query_one(PlansTable)
            text.append("pending plans" if self.status == "pending" else "all plans", style="bold")
            text.append(" · newest first", style="dim")
            if table.text_filter:
                text.append(f" · filter “{table.text_filter}”", style="cyan")
            if self.error:
                text.append(f" · cannot read the queue: {self.error}", style="bold red")
            else:
                shown = len(table.row_keys())
                text.append(f" · {shown} shown", style="dim")
                if not shown and self.status == "pending":
                    text.append(" · nothing waits for you", style="green")
        self.query_one("#approvals-status", Static).update(text)

    def _show_selected(self) -> None:
        self.query_one(PlanView).show(self.current_plan(), self.aurora.clock())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            from .plan_detail import PlanDetailScreen

            self.app.push_screen(PlanDetailScreen(int(event.row_key.value)))

    def current_plan(self) -> PlanRow | None:
        return self.query_one(PlansTable).selected_plan()

    def filter_changed(self, text: str) -> None:
        self.query_one(PlansTable).set_filter(text, self.aurora.clock())
        self._status()
        self._show_selected()

    def action_toggle_pending(self) -> None:
        self.status = None if self.status == "pending" else "pending"
        self._status()
        self._load.poke()
