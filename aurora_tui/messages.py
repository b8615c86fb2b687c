"""Every message the console's workers post. Workers post these; only handlers touch widgets."""
from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from .core.api import ActionResult, IncidentRow, PlanRow, Reply
from .core.model import Event, FleetSnapshot

if TYPE_CHECKING:
    from .core.catalogue import Catalogue


class FleetUpdated(Message):
    def __init__(self, snapshot: FleetSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class EngineConnection(Message):
    """The engine stopped answering (``error`` says why) or answers again (``error`` is None)."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class ActionFinished(Message):
    """An operator action (restart, stop, start, scan) came back from the engine. A scan has no ``result``."""

    def __init__(self, action: str, service: str, result: ActionResult | None, error: str | None) -> None:
        super().__init__()
        self.action = action
        self.service = service
        self.result = result
        self.error = error


class CountsUpdated(Message):
    """Open incidents (total and per service) and pending plans; None where the engine has no numbers."""

    def __init__(
        self, open_incidents: int | None, by_service: dict[str, int], pending_plans: int | None, approvals: bool | None,
        heal_rate: float | None = None,
    ) -> None:
        super().__init__()
        self.heal_rate = heal_rate
        self.open_incidents = open_incidents
        self.by_service = by_service
        self.pending_plans = pending_plans
        self.approvals = approvals


class IncidentsLoaded(Message):
    """A page of incidents. ``replace``: the first page of a new query; otherwise rows to merge or append."""

    def __init__(self, query: tuple, rows: list[IncidentRow], *, replace: bool, append: bool, error: str | None = None) -> None:
        super().__init__()
        self.query = query
        self.rows = rows
        self.replace = replace
        self.append = append
        self.error = error


class IncidentLoaded(Message):
    """One incident with its timeline (or the reason it could not be read)."""

    def __init__(self, incident_id: int, incident: IncidentRow | None, error: str | None = None) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.incident = incident
        self.error = error


class IncidentAcknowledged(Message):
    def __init__(self, incident_id: int, incident: IncidentRow | None, error: str | None) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.incident = incident
        self.error = error


class PlansLoaded(Message):
    """Plans from the approval queue. ``unsupported`` when the engine has no queue yet."""

    def __init__(self, query: tuple, plans: list[PlanRow], *, replace: bool, error: str | None = None, unsupported: bool = False) -> None:
        super().__init__()
        self.query = query
        self.plans = plans
        self.replace = replace
        self.error = error
        self.unsupported = unsupported


class PlanLoaded(Message):
    def __init__(self, plan_id: int, plan: PlanRow | None, error: str | None = None) -> None:
        super().__init__()
        self.plan_id = plan_id
        self.plan = plan
        self.error = error


class PlanDecided(Message):
    """approve / reject / grade came back from the engine."""

    def __init__(self, decision: str, plan_id: int, plan: PlanRow | None, error: str | None) -> None:
        super().__init__()
        self.decision = decision
        self.plan_id = plan_id
        self.plan = plan
        self.error = error


class ChatAnswered(Message):
    """The dispatcher's reply to one message; ``unavailable`` when the engine has no dispatcher."""

    def __init__(self, turn: int, reply: Reply | None, error: str | None = None, unavailable: bool = False) -> None:
        super().__init__()
        self.turn = turn
        self.reply = reply
        self.error = error
        self.unavailable = unavailable


class LogsLoaded(Message):
    def __init__(self, service: str, lines: list[str] | None, error: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.lines = lines
        self.error = error


class ServiceIncidentsLoaded(Message):
    def __init__(self, service: str, rows: list[IncidentRow], error: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.rows = rows
        self.error = error


class CatalogueLoaded(Message):
    """The packaged catalogue (programs, tiers, modules, patterns) was read, off the event loop."""

    def __init__(self, catalogue: Catalogue | None, error: str | None = None) -> None:
        super().__init__()
        self.catalogue = catalogue
        self.error = error


class ExplorerSearched(Message):
    """The explorer's fuzzy search for ``query`` came back: ``hits`` as (kind, id) pairs, best first."""

    def __init__(self, query: str, hits: list[tuple[str, str]], error: str | None = None) -> None:
        super().__init__()
        self.query = query
        self.hits = hits
        self.error = error
