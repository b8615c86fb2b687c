"""Command palette (ctrl+p) providers: jump to a service, an open incident or a pending plan, or run an
action (restart X, stop X, scan now, …). Actions that change the fleet still ask first."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..console_state import ConsoleHost
from ..core.api import IncidentRow, PlanRow
from ..widgets.plans_table import action_summary


class _Base(Provider):
    @property
    def aurora(self) -> ConsoleHost:
        return cast(ConsoleHost, self.app)

    def commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        return []

    async def discover(self) -> Hits:
        for title, callback, help_text in self.commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self.commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class ServiceCommands(_Base):
    def commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        snapshot = self.aurora.snapshot
        if snapshot is None:
            return []
        return [
            (f"Service {s.name}", partial(self.aurora.open_service, s.name), f"{s.state}, pid {s.pid or '-'}, port {s.port or '-'}: open its details")
            for s in snapshot.services
        ]


class IncidentCommands(_Base):
    rows: Sequence[IncidentRow] = ()  # until startup() has read them

    async def startup(self) -> None:
        try:
            self.rows = await self.aurora.engine.list_incidents(open_only=True, limit=100)
        except Exception:
            self.rows = []

    def commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        return [
            (f"Incident #{r.id} {r.pattern} on {r.service}", partial(self.aurora.open_incident, r.id), r.summary[:120])
            for r in self.rows
        ]


class PlanCommands(_Base):
    plans: Sequence[PlanRow] = ()  # until startup() has read them

    async def startup(self) -> None:
        if not self.aurora.supports("list_plans"):
            return
        try:
            self.plans = await self.aurora.engine.list_plans(status="pending", limit=100)
        except Exception:
            self.plans = []

    def commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        out = []
        for p in self.plans:
            actions = action_summary(p.actions, p.service)
            out.append((f"Plan #{p.id} {actions or p.pattern} ({p.service})", partial(self.aurora.open_plan, p.id), f"pending approval · risk {p.risk} · {p.summary[:80]}"))
        return out


class ActionCommands(_Base):
    def commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.aurora
        out: list[tuple[str, Callable[[], Any], str]] = []
        snapshot = app.snapshot
        for s in snapshot.services if snapshot else []:
            if not s.managed:
                continue
            out.append((f"Restart {s.name}", partial(app.confirm_action, "restart", s.name), "asks first"))
            if s.state in ("running", "starting", "backoff"):
                out.append((f"Stop {s.name}", partial(app.confirm_action, "stop", s.name), "asks first"))
            else:
                out.append((f"Start {s.name}", partial(app.confirm_action, "start", s.name), "asks first"))
        for s in snapshot.services if snapshot else []:
            out.append((f"Logs of {s.name}", partial(self._logs, s.name), "its output, following the tail"))
        out.append(("Scan now", partial(app.request_action, "scan", ""), "probe every service at once instead of waiting for the next scan"))
        for key, (mode, label) in enumerate((("services", "Services"), ("incidents", "Incidents"), ("approvals", "Approvals"), ("chat", "Chat"), ("explorer", "Explorer")), 1):
            out.append((f"Go to {label}", partial(app.action_show_mode, mode), f"key {key}"))
        out.append(("Toggle the chat pane", app.action_toggle_chat, "key c"))
        out.append(("Show every key", app.action_help, "key ?"))
        return out

    def _logs(self, service: str) -> None:
        from .logs import LogsScreen

        self.aurora.action_show_mode("services")
        self.app.push_screen(LogsScreen(service))
