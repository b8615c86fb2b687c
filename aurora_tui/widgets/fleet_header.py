"""One line at the top: fleet health, scan age, and which engine the console is talking to."""
from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ..core.format import duration_h
from ..core.model import FleetSnapshot


class FleetHeader(Static):
    def __init__(self, engine_mode: str, **kwargs) -> None:
        super().__init__("Aurora · connecting…", **kwargs)
        self.engine_mode = engine_mode
        self._snapshot: FleetSnapshot | None = None

    def show(self, snapshot: FleetSnapshot) -> None:
        self._snapshot = snapshot
        self.update(self.header_text(snapshot, time.time()))

    def header_text(self, snapshot: FleetSnapshot, now: float) -> Text:
        total = len(snapshot.services)
        healthy = snapshot.healthy_count
        style = "bold green" if healthy == total else ("bold yellow" if healthy else "bold red")
        age = "no scan yet" if snapshot.last_scan_at is None else f"scan {duration_h(now - snapshot.last_scan_at)} ago"
        line = Text("Aurora", style="bold")
        line.append("  ")
        line.append(f"{healthy}/{total} healthy", style=style)
        line.append(f"  ·  {age} (every {snapshot.interval:g}s)  ·  engine pid {snapshot.engine_pid} ({self.engine_mode})", style="dim")
        return line
