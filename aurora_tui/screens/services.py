"""Screen 1: the fleet, one row per service."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from ..core.model import FleetSnapshot
from ..widgets.fleet_header import FleetHeader
from ..widgets.services_table import ServicesTable
from .confirm import ConfirmScreen


class ServicesScreen(Screen):
    BINDINGS = [
        Binding("r", "restart", "Restart", id="services.restart"),
    ]

    def __init__(self, engine_mode: str) -> None:
        super().__init__()
        self.engine_mode = engine_mode

    def compose(self) -> ComposeResult:
        yield FleetHeader(self.engine_mode, id="fleet-header")
        yield ServicesTable(id="services-table")
        yield Footer()

    def show(self, snapshot: FleetSnapshot) -> None:
        self.query_one(FleetHeader).show(snapshot)
        self.query_one(ServicesTable).show(snapshot)

    def action_restart(self) -> None:
        service = self.query_one(ServicesTable).selected_service
        if service is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.request_action("restart", service)  # type: ignore[attr-defined]

        self.app.push_screen(
            ConfirmScreen(f"Restart {service}?", "It is stopped (SIGTERM, then SIGKILL after its stop timeout) and started again."),
            answered,
        )
