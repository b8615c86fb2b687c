"""One incident's timeline with its evidence (`enter` on the incidents screen)."""
from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widget import Widget

from ..core.api import IncidentRow
from ..core.model import Event
from ..messages import IncidentAcknowledged, IncidentLoaded
from ..widgets.incident_view import IncidentView
from .base import AuroraScreen, Coalesced
from .incidents import acknowledge


class IncidentDetailScreen(AuroraScreen):
    LABEL = "INCIDENT"
    AUTO_FOCUS = "#incident-scroll"
    BINDINGS = [
        Binding("a", "acknowledge", "Ack", id="incident.acknowledge"),
        Binding("r", "restart", "Restart service", id="incident.restart"),
        Binding("l", "logs", "Logs", id="incident.logs"),
    ]

    def __init__(self, incident_id: int) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.incident: IncidentRow | None = None
        self._load = Coalesced(self, "incident-load", self._fetch)

    def header_label(self) -> str:
        return f"INCIDENT #{self.incident_id}"

    def compose_main(self) -> Iterable[Widget]:
        with VerticalScroll(id="incident-scroll"):
            yield IncidentView(Text(f"reading incident #{self.incident_id}…", style="dim"), id="incident-view")

    def main_focus(self) -> Widget:
        return self.query_one("#incident-scroll")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#incident-scroll").focus()
        self._load.poke()

    async def _fetch(self) -> None:
        try:
            incident = await self.engine.incident(self.incident_id)
        except Exception as exc:
            self.post_message(IncidentLoaded(self.incident_id, None, str(exc)))
        else:
            self.post_message(IncidentLoaded(self.incident_id, incident))

    def on_incident_loaded(self, message: IncidentLoaded) -> None:
        message.stop()
        view = self.query_one(IncidentView)
        if message.incident is None:
            view.update(Text(f"Cannot read incident #{self.incident_id}: {message.error}", style="bold red"))
            return
        self.incident = message.incident
        view.show(message.incident, self.aurora.clock())

    def engine_event(self, event: Event) -> None:
        if event.data.get("incident") == self.incident_id and event.kind.startswith("incident_"):
            self._load.poke()

    def action_acknowledge(self) -> None:
        if self.incident is not None and not self.incident.is_open:
            self.notify(f"Incident #{self.incident_id} is resolved already.", severity="warning")
            return
        self.run_worker(acknowledge(self, self.incident_id), group=f"ack-{self.incident_id}", exit_on_error=False)

    def on_incident_acknowledged(self, message: IncidentAcknowledged) -> None:
        message.stop()
        if message.error:
            self.notify(f"Could not acknowledge #{message.incident_id}: {message.error}", severity="error")
            return
        if message.incident is not None:
            self.incident = message.incident
            self.query_one(IncidentView).show(message.incident, self.aurora.clock())
        self.notify(f"Incident #{message.incident_id} acknowledged.")

    def _service(self) -> str | None:
        service = self.incident.service if self.incident else None
        snapshot = self.aurora.snapshot
        if service is None or snapshot is None or snapshot.service(service) is None:
            self.notify("This incident is not about a service Aurora supervises.", severity="warning")
            return None
        return service

    def action_restart(self) -> None:
        service = self._service()
        if service:
            self.aurora.confirm_action("restart", service)

    def action_logs(self) -> None:
        service = self._service()
        if service:
            from .logs import LogsScreen

            self.app.push_screen(LogsScreen(service))
