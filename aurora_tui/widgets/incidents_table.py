"""Incidents, newest first, keyed by incident id and updated in place. The table holds only the pages
loaded so far; it says when the operator is near the end so the next page can be read."""
from __future__ import annotations

from typing import Any, Callable, Iterable, cast

from rich.text import Text
from textual.binding import Binding
from textual.message import Message

from ..console_state import ConsoleHost
from ..core.api import IncidentRow
from .age import age_h
from .responsive_table import Col, ResponsiveTable

SEVERITY = {"critical": ("crit", "bold red"), "warning": ("warn", "yellow"), "info": ("info", "dim")}
STATUS = {
    "open": ("open", "bold yellow"),
    "acknowledged": ("acked", "cyan"),
    "healing": ("healing", "magenta"),
    "awaiting_approval": ("approval", "bold magenta"),
    "resolved": ("resolved", "green"),
    "escalated": ("escalated", "bold red"),
}
NEAR_END = 30

COLUMNS = (
    Col("id", "#", 6, 0, justify="right"),
    Col("age", "Age", 6, 0, justify="right"),
    Col("severity", "Sev", 4, 1),
    Col("pattern", "Pattern", 14, 0, max_width=23),
    Col("service", "Service", 12, 0),
    Col("confidence", "Conf", 4, 2, justify="right"),
    Col("status", "Status", 8, 1),
    Col("count", "Seen", 5, 2, justify="right"),
    Col("summary", "Summary", 20, 3, max_width=400),
)


def severity_text(severity: str) -> Text:
    label, style = SEVERITY.get(severity, (severity[:4], ""))
    return Text(label, style=style)


def status_text(status: str) -> Text:
    label, style = STATUS.get(status, (status, ""))
    return Text(label, style=style)


def incident_cells(row: IncidentRow, now: float) -> dict[str, Any]:
    return {
        "id": Text(str(row.id), justify="right"),
        "age": age_h(max(0.0, now - row.opened_at)),
        "severity": severity_text(row.severity),
        "pattern": Text(row.pattern, style="bold" if row.is_open else ""),
        "service": row.service,
        "confidence": f"{row.confidence}/10",
        "status": status_text(row.status),
        "count": str(row.count),
        "summary": Text(row.summary, style="dim" if not row.is_open else ""),
    }


class IncidentsTable(ResponsiveTable):
    BINDINGS = [
        Binding("enter", "select_cursor", "Timeline", id="incidents.timeline"),
    ]
    COLUMNS = COLUMNS
    RESERVE_SCROLLBAR = True

    class NearEnd(Message):
        """The cursor or the scroll position is close to the last loaded row."""

    def __init__(self, clock: Callable[[], float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incidents: dict[str, IncidentRow] = {}
        self._clock = clock

    def now(self) -> float:
        return (self._clock or cast(ConsoleHost, self.app).clock)()

    def after_relayout(self) -> None:
        self.sort_newest_first()


    def replace(self, rows: Iterable[IncidentRow]) -> None:
        self.incidents.clear()
        self.clear_rows()
        self.merge(rows, append=True)
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def merge(self, rows: Iterable[IncidentRow], append: bool = False) -> None:
        """Update loaded rows in place; add new ones. Rows newer than the top are put on top."""
        now = self.now()
        resort = False
        for row in rows:
            key = str(row.id)
            self.incidents[key] = row
            added = self.set_row(key, incident_cells(row, now))
            resort |= added and not append
        if resort:
            self.sort_newest_first()

    def drop(self, key: str) -> None:
        self.incidents.pop(key, None)
        self.drop_row(key)

    def oldest_id(self) -> int | None:
        return min((int(k) for k in self.incidents), default=None)

    def selected_incident(self) -> IncidentRow | None:
        key = self.selected_key
        return self.incidents.get(key) if key else None

    def refresh_ages(self) -> None:
        now = self.now()
        if "age" not in self.shown:
            return
        for key in self.visible_keys():
            row = self.incidents.get(key)
            if row is None:
                continue
            age = age_h(max(0.0, now - row.opened_at))
            values = self.values(key)
            if values is not None and str(values.get("age")) != age:
                self.set_row(key, {**values, "age": age})

    # --- paging --------------------------------------------------------------------------------------

    def near_end(self) -> bool:
        if not self.row_count:
            return False
        bottom_visible = int(self.scroll_y) + self.size.height
        return self.cursor_row >= self.row_count - NEAR_END or bottom_visible >= self.row_count - NEAR_END

    def _check_near_end(self) -> None:
        if self.near_end():
            self.post_message(self.NearEnd())

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._check_near_end()

    def watch_cursor_coordinate(self, old_coordinate: Any, new_coordinate: Any) -> None:
        super().watch_cursor_coordinate(old_coordinate, new_coordinate)
        self._check_near_end()
