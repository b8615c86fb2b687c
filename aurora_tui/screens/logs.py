"""A service's output, full screen, following the tail (`l` on the services screen)."""
from __future__ import annotations

import asyncio
from typing import Iterable

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static

from ..messages import LogsLoaded
from ..widgets.log_tail import LogTail
from .base import AuroraScreen

TAIL_LINES = 500
REFRESH_EVERY = 1.0


async def follow_logs(screen: AuroraScreen, service: str, every: float, lines: int = TAIL_LINES) -> None:
    """A worker body: read the service's log tail and post it, forever. The next read is scheduled only
    after the last one came back, so polls never overlap."""
    while True:
        try:
            tail = await screen.engine.logs(service, lines)
        except Exception as exc:
            screen.post_message(LogsLoaded(service, None, str(exc)))
        else:
            screen.post_message(LogsLoaded(service, list(tail)))
        await asyncio.sleep(every)


class LogsScreen(AuroraScreen):
    LABEL = "LOGS"
    AUTO_FOCUS = "LogTail"
    BINDINGS = [
        Binding("r", "restart", "Restart", id="logs.restart"),
        Binding("f", "follow", "Follow", id="logs.follow"),
    ]

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._error: str | None = None

    def header_label(self) -> str:
        return f"LOGS {self.service}"

    def compose_main(self) -> Iterable[Widget]:
        yield Static(id="logs-status")
        yield LogTail(id="logs-tail")

    def main_focus(self) -> Widget:
        return self.query_one(LogTail)

    def on_mount(self) -> None:
        super().on_mount()
        self._status()
        self.run_worker(self._follow(), group="logs", exit_on_error=False)
        self.query_one(LogTail).focus()

    async def _follow(self) -> None:
        await follow_logs(self, self.service, REFRESH_EVERY)

    def on_logs_loaded(self, message: LogsLoaded) -> None:
        message.stop()
        if message.lines is not None:
            self.query_one(LogTail).show_lines(message.lines)
        self._error = message.error
        self._status()

    def _status(self) -> None:
        text = Text(f" {self.service}: last {TAIL_LINES} lines of output, newest at the bottom", style="dim")
        if self._error:
            text = Text(f" cannot read the log: {self._error}", style="bold red")
        self.query_one("#logs-status", Static).update(text)

    def action_restart(self) -> None:
        self.aurora.confirm_action("restart", self.service)

    def action_follow(self) -> None:
        log = self.query_one(LogTail)
        log.auto_scroll = True
        log.scroll_end(animate=False)
