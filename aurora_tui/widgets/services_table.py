"""The live services table. Rows are keyed by service name and updated cell by cell, so the cursor and
the operator's place never jump when new data arrives."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from ..core.format import STATE_GLYPHS, bytes_h, duration_h, health_h, percent_h
from ..core.model import FleetSnapshot, ServiceStatus

STATE_STYLES = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "stopped": "dim",
    "backoff": "dark_orange",
    "failed": "bold red",
    "unmanaged": "cyan",
}

# (key, label, width): fixed widths, so a column never has to grow while the operator reads it.
COLUMNS = (
    ("state", "State", 11),
    ("name", "Service", 16),
    ("pid", "PID", 7),
    ("port", "Port", 5),
    ("health", "Health", 9),
    ("cpu", "CPU", 6),
    ("rss", "RSS", 7),
    ("restarts", "Restarts", 8),
    ("uptime", "Uptime", 7),
)


def cells(status: ServiceStatus) -> dict[str, Text | str]:
    state_style = STATE_STYLES.get(status.state, "")
    health = health_h(status.healthy, status.latency_ms)
    health_style = "green" if status.healthy else ("red" if status.state in ("running", "unmanaged") else "dim")
    return {
        "state": Text(f"{STATE_GLYPHS.get(status.state, '?')} {status.state}", style=state_style),
        "name": Text(status.name, style="bold"),
        "pid": str(status.pid or "-"),
        "port": str(status.port or "-"),
        "health": Text(health, style=health_style),
        "cpu": percent_h(status.cpu),
        "rss": bytes_h(status.rss),
        "restarts": str(status.restarts),
        "uptime": duration_h(status.uptime),
    }


class ServicesTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def show(self, snapshot: FleetSnapshot) -> None:
        for status in snapshot.services:
            values = cells(status)
            if status.name not in self.rows:
                self.add_row(*(values[key] for key, _, _ in COLUMNS), key=status.name)
                continue
            for key, _, _ in COLUMNS:
                self.update_cell(status.name, key, values[key])

    @property
    def selected_service(self) -> str | None:
        if not self.row_count:
            return None
        key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return key.value
