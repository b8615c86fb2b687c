"""`?`: every key the console knows, gathered from the bindings themselves so the list cannot drift."""
from __future__ import annotations

from typing import Iterable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from ..widgets.fleet_header import FleetHeader
from ..widgets.key_footer import KeyFooter

MOVES = [
    ("↑ ↓ pgup pgdn home end", "move in a list or scroll a pane"),
    ("tab / shift+tab", "move the focus (e.g. into and out of the chat pane)"),
    ("ctrl+c", "copy the selection (it does not quit; q does)"),
]


# What each key does, in more words than the footer has room for (by binding id).
EXPLAIN = {
    "screen.help": "this list of every key",
    "screen.quit": "quit (asks first; a console that runs its own engine stops its fleet, an attached one leaves it running)",
    "screen.back": "back: leave the chat input or the filter, close this screen, or return to the previous screen",
    "app.mode.services": "screen 1: services",
    "app.mode.incidents": "screen 2: incidents",
    "app.mode.approvals": "screen 3: approvals",
    "app.mode.chat": "screen 4: chat",
    "app.mode.explorer": "screen 5: explorer",
    "app.chat_pane": "dock the chat pane beside this screen, or hide it",
    "services.details": "details: metrics history, the log tail, recent incidents",
    "services.restart": "restart the selected service (asks first)",
    "services.stop_start": "stop a running service, start a stopped one (asks first)",
    "services.logs": "its output, following the tail",
    "services.filter": "filter the list by name",
    "service.restart": "restart this service (asks first)",
    "service.stop_start": "stop or start this service (asks first)",
    "service.logs": "its whole output, full screen",
    "logs.restart": "restart this service (asks first)",
    "logs.follow": "jump to the newest line and follow",
    "incidents.timeline": "the incident's timeline with its evidence",
    "incidents.acknowledge": "acknowledge the selected incident",
    "incidents.open_all": "open incidents only, or all of them",
    "incidents.filter": "filter by service or pattern (fuzzy; or service:x pattern:y)",
    "incident.acknowledge": "acknowledge this incident",
    "incident.restart": "restart the service it is about (asks first)",
    "incident.logs": "that service's output",
    "approvals.details": "the plan in full",
    "approvals.approve": "approve the selected plan (asks first; shows what it will do)",
    "approvals.reject": "reject it, with a reason",
    "approvals.grade": "grade it from 1 to 10 (teaches Aurora what worked)",
    "approvals.pending_all": "pending plans only, or every plan",
    "approvals.filter": "filter by service, pattern, action or status",
    "plan.approve": "approve this plan (asks first)",
    "plan.reject": "reject it, with a reason",
    "plan.grade": "grade it from 1 to 10",
    "chat.type": "start typing (the input is not focused on arrival, so 1-5 still work)",
    "chat.history.earlier": "your earlier messages",
    "chat.history.later": "back towards the newest",
    "explorer.filter": "fuzzy search across patterns, programs, tiers and modules",
    "explorer.kind": "next kind: patterns, programs, tiers, modules, active modules",
    "confirm.yes": "yes",
    "confirm.no": "no (the default: \"No\" has the focus)",
    "confirm.cancel": "cancel, same as no",
    "prompt.cancel": "cancel the question",
}


def _key(binding: Binding) -> str:
    names = {"question_mark": "?", "slash": "/", "escape": "esc", "enter": "enter"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in binding.key.split(","))


def _rows(bindings: Iterable) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description and b.show:
            rows.append((_key(b), EXPLAIN.get(b.id or "", b.description)))
    return rows


def sections() -> list[tuple[str, list[tuple[str, str]]]]:
    from ..widgets.chat_input import ChatInput
    from ..widgets.incidents_table import IncidentsTable
    from ..widgets.plans_table import PlansTable
    from ..widgets.services_table import ServicesTable
    from .approvals import ApprovalsScreen
    from .base import APP_BINDINGS, AuroraScreen
    from .chat import ChatScreen
    from .confirm import ConfirmScreen
    from .explorer import ExplorerScreen
    from .incident_detail import IncidentDetailScreen
    from .incidents import IncidentsScreen
    from .logs import LogsScreen
    from .plan_detail import PlanDetailScreen
    from .prompt import PromptScreen
    from .service_detail import ServiceDetailScreen
    from .services import ServicesScreen

    return [
        ("Everywhere", _rows(AuroraScreen.BINDINGS) + _rows(APP_BINDINGS) + [
            ("ctrl+p", "command palette: jump to a service, incident or plan; restart, stop, start, scan now…"),
            ("ctrl+q", "same as q"),
        ]),
        ("1 Services", _rows(ServicesTable.BINDINGS) + _rows(ServicesScreen.BINDINGS)),
        ("Service details", _rows(ServiceDetailScreen.BINDINGS) + [("enter", "open the highlighted incident")]),
        ("Logs", _rows(LogsScreen.BINDINGS)),
        ("2 Incidents", _rows(IncidentsTable.BINDINGS) + _rows(IncidentsScreen.BINDINGS)),
        ("Incident timeline", _rows(IncidentDetailScreen.BINDINGS)),
        ("3 Approvals", _rows(PlansTable.BINDINGS) + _rows(ApprovalsScreen.BINDINGS)),
        ("Plan details", _rows(PlanDetailScreen.BINDINGS)),
        ("4 Chat (and the c pane)", _rows(ChatScreen.BINDINGS) + [("enter", "send (in the input)")] + _rows(ChatInput.BINDINGS) + [("esc", "leave the input")]),
        ("5 Explorer", _rows(ExplorerScreen.BINDINGS)),
        ("Questions", _rows(ConfirmScreen.BINDINGS) + [("enter", "answer a typed question")] + _rows(PromptScreen.BINDINGS)),
        ("Moving around", MOVES),
    ]


def help_renderable() -> Group:
    parts = []
    for title, rows in sections():
        table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None, padding=(0, 1), expand=False)
        table.add_column(style="bold cyan", no_wrap=True, min_width=8)
        table.add_column()
        for key, what in rows:
            table.add_row(key, what)
        parts += [table, Text("")]
    return Group(*parts)


class HelpScreen(Screen):
    BINDINGS = [
        Binding("escape,question_mark", "close", "Close", id="help.close"),
        Binding("q", "app.request_quit", "Quit", id="help.quit"),
    ]

    def compose(self) -> ComposeResult:
        yield FleetHeader("KEYS", None, id="fleet-header")
        with VerticalScroll(id="help-scroll"):
            yield Static(help_renderable(), id="help-keys")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_close(self) -> None:
        self.dismiss()
