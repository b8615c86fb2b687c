"""Screen 1: the fleet, one row per service. Keeps a small ring buffer of each service's recent CPU,
RSS and latency (one point per scan) for the sparklines here and the graphs in the details."""
from __future__ import annotations

from typing import Iterable

from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable

from ..console_state import ConsoleState
from ..widgets.filter_bar import FilterBar
from ..widgets.services_table import ServiceHistory, ServicesTable
from .base import AuroraScreen


class ServicesScreen(AuroraScreen):
    LABEL = "SERVICES"
    AUTO_FOCUS = "ServicesTable"
    BINDINGS = [
        Binding("r", "restart", "Restart", id="services.restart"),
        Binding("s", "stop_start", "Stop/start", id="services.stop_start"),
        Binding("l", "logs", "Logs", id="services.logs"),
        Binding("slash", "filter", "Filter", id="services.filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, ServiceHistory] = {}
        self._last_scan: float | None = None

    def compose_main(self) -> Iterable[Widget]:
        yield FilterBar("filter services by name…", id="services-filter")
        yield ServicesTable(id="services-table")

    def main_focus(self) -> Widget:
        return self.query_one(ServicesTable)

    def state_changed(self, state: ConsoleState) -> None:
        snapshot = state.snapshot
        if snapshot is None:
            return
        if snapshot.last_scan_at != self._last_scan:
            # One point per scan: the buffers hold what the probes measured, not how often we poll.
            self._last_scan = snapshot.last_scan_at
            for status in snapshot.services:
                self.history.setdefault(status.name, ServiceHistory()).add(status)
        self.query_one(ServicesTable).show(snapshot, self.history, state.by_service)

    def filter_changed(self, text: str) -> None:
        self.query_one(ServicesTable).set_filter(text)

    @property
    def selected(self) -> str | None:
        return self.query_one(ServicesTable).selected_service

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.open_details(event.row_key.value)

    def open_details(self, service: str) -> None:
        from .service_detail import ServiceDetailScreen

        self.app.push_screen(ServiceDetailScreen(service, self.history.setdefault(service, ServiceHistory())))

    def action_restart(self) -> None:
        if self.selected:
            self.aurora.confirm_action("restart", self.selected)

    def action_stop_start(self) -> None:
        if self.selected:
            self.aurora.toggle_service(self.selected)

    def action_logs(self) -> None:
        if self.selected:
            from .logs import LogsScreen

            self.app.push_screen(LogsScreen(self.selected))
