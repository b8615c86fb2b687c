"""One service up close (`enter` on the services screen): its facts, its recent CPU, memory and
latency, its recent incidents and the tail of its output."""
from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Static

from ..console_state import ConsoleState
from ..core.format import STATE_GLYPHS, bytes_h, duration_h
from ..core.model import Event, ServiceStatus
from ..messages import LogsLoaded, ServiceIncidentsLoaded
from ..widgets.incidents_table import IncidentsTable
from ..widgets.log_tail import LogTail
from ..widgets.metrics_view import MetricsView
from ..widgets.services_table import STATE_STYLES, ServiceHistory
from .base import AuroraScreen, Coalesced
from .logs import follow_logs

TAIL_LINES = 200
LOG_REFRESH = 2.0
RECENT_INCIDENTS = 20


def facts_text(status: ServiceStatus | None, service: str) -> Text:
    if status is None:
        return Text(f"{service}: not in the fleet's snapshot (yet)", style="dim")
    style = STATE_STYLES.get(status.state, "")
    text = Text()
    text.append(f"{STATE_GLYPHS.get(status.state, '?')} {status.state}", style=f"bold {style}")
    text.append(f"  pid {status.pid or '-'}  port {status.port or '-'}  ")
    if status.healthy:
        text.append("healthy" + (f" {status.latency_ms:.0f}ms" if status.latency_ms is not None else ""), style="green")
    elif status.state in ("running", "unmanaged"):
        text.append(f"unhealthy: {status.health_error or 'no answer'}", style="bold red")
    else:
        text.append("not checked", style="dim")
    text.append(f"  restarts {status.restarts}  up {duration_h(status.uptime)}")
    text.append(f"  cpu {'-' if status.cpu is None else f'{status.cpu:.1f}%'}  rss {bytes_h(status.rss)}")
    extra = []
    if status.depends_on:
        extra.append(f"depends on {', '.join(status.depends_on)}")
    if not status.managed:
        extra.append("monitor-only (managed = false)")
    if status.last_exit is not None:
        extra.append(f"last exit: {status.last_exit.describe()}")
    if extra:
        text.append("\n" + " · ".join(extra), style="dim")
    return text


class ServiceDetailScreen(AuroraScreen):
    LABEL = "SERVICE"
    AUTO_FOCUS = "IncidentsTable"
    BINDINGS = [
        Binding("r", "restart", "Restart", id="service.restart"),
        Binding("s", "stop_start", "Stop/start", id="service.stop_start"),
        Binding("l", "logs", "Full log", id="service.logs"),
    ]

    def __init__(self, service: str, history: ServiceHistory) -> None:
        super().__init__()
        self.service = service
        self.history = history
        self._incidents = Coalesced(self, "service-incidents", self._fetch_incidents)

    def header_label(self) -> str:
        return f"SERVICE {self.service}"

    def compose_main(self) -> Iterable[Widget]:
        yield Static(id="service-facts")
        yield MetricsView(self.history, id="service-metrics")
        yield Static(Text(" Recent incidents", style="bold"), classes="section-title")
        yield IncidentsTable(id="service-incidents")
        yield Static(Text(" Output (newest at the bottom)", style="bold"), classes="section-title")
        yield LogTail(id="service-log")

    def main_focus(self) -> Widget:
        return self.query_one("#service-incidents")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#service-incidents").focus()
        self._incidents.poke()
        self.run_worker(self._follow_logs(), group="service-log", exit_on_error=False)

    def state_changed(self, state: ConsoleState) -> None:
        status = state.snapshot.service(self.service) if state.snapshot else None
        self.query_one("#service-facts", Static).update(facts_text(status, self.service))
        self.query_one(MetricsView).refresh()

    async def _fetch_incidents(self) -> None:
        try:
            rows = await self.engine.list_incidents(service=self.service, limit=RECENT_INCIDENTS)
        except Exception as exc:
            self.post_message(ServiceIncidentsLoaded(self.service, [], str(exc)))
        else:
            self.post_message(ServiceIncidentsLoaded(self.service, rows))

    async def _follow_logs(self) -> None:
        await follow_logs(self, self.service, LOG_REFRESH, TAIL_LINES)

    def on_service_incidents_loaded(self, message: ServiceIncidentsLoaded) -> None:
        message.stop()
        table = self.query_one(IncidentsTable)
        if message.error:
            self.notify(f"Cannot read incidents of {self.service}: {message.error}", severity="error")
            return
        table.merge(message.rows)

    def on_logs_loaded(self, message: LogsLoaded) -> None:
        message.stop()
        if message.lines is not None:
            self.query_one(LogTail).show_lines(message.lines)

    def engine_event(self, event: Event) -> None:
        if event.kind.startswith("incident_") and event.data.get("service") == self.service and event.kind != "incident_repeated":
            self._incidents.poke()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            from .incident_detail import IncidentDetailScreen

            self.app.push_screen(IncidentDetailScreen(int(event.row_key.value)))

    def action_restart(self) -> None:
        self.aurora.confirm_action("restart", self.service)

    def action_stop_start(self) -> None:
        self.aurora.toggle_service(self.service)

    def action_logs(self) -> None:
        from .logs import LogsScreen

        self.app.push_screen(LogsScreen(self.service))
