"""What every console screen shares: the fleet header, the dockable chat pane, the footer, going back,
the keys that work everywhere, and a way to run engine calls that never overlap.

Screens reach the app only as a :class:`~aurora_tui.console_state.ConsoleHost` (``self.aurora``), never
by importing it: the app imports the screens."""
from __future__ import annotations

from typing import Awaitable, Callable, Iterable, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from ..console_state import ConsoleHost, ConsoleState
from ..core.api import EngineAPI
from ..core.model import Event
from ..widgets.chat_view import ChatView
from ..widgets.filter_bar import FilterBar
from ..widgets.fleet_header import FleetHeader
from ..widgets.key_footer import KeyFooter

SCREENS = Binding.Group("Screens", compact=True)

#: The app's own keys (``AuroraApp.BINDINGS``); here so that the help screen lists them without the app.
APP_BINDINGS = [
    Binding("1", "show_mode('services')", "Services", id="app.mode.services", group=SCREENS),
    Binding("2", "show_mode('incidents')", "Incidents", id="app.mode.incidents", group=SCREENS),
    Binding("3", "show_mode('approvals')", "Approvals", id="app.mode.approvals", group=SCREENS),
    Binding("4", "show_mode('chat')", "Chat", id="app.mode.chat", group=SCREENS),
    Binding("5", "show_mode('explorer')", "Explorer", id="app.mode.explorer", group=SCREENS),
    Binding("c", "toggle_chat", "Chat", id="app.chat_pane"),
    # Shown docked at the right of every footer, so it stays visible however narrow the terminal.
    Binding("ctrl+p", "command_palette", "Palette", id="app.palette", show=False),
    # Textual's own ctrl+q would quit without asking: here it is the same as q (shown as q).
    Binding("ctrl+q", "request_quit", "Quit", id="app.quit_ctrl", show=False),
]


class Coalesced:
    """Runs ``job`` in a worker of ``node``. Asking again while it runs schedules exactly one more run
    after it finishes, so the engine is never asked the same thing twice at once and a burst of events
    costs at most two calls."""

    def __init__(self, node: DOMNode, group: str, job: Callable[[], Awaitable[None]]) -> None:
        self.node = node
        self.group = group
        self.job = job
        self._running = False
        self._again = False

    def poke(self) -> None:
        if self._running:
            self._again = True
            return
        self._running = True
        self.node.run_worker(self._loop(), group=self.group, exit_on_error=False)

    async def _loop(self) -> None:
        try:
            while True:
                self._again = False
                await self.job()
                if not self._again:
                    return
        finally:
            self._running = False


class AuroraScreen(Screen):
    """A console screen: header, a main area, the chat pane (hidden unless docked) and the footer."""

    LABEL = "Aurora"
    # Each screen names what gets the focus first (never the hidden filter input).
    AUTO_FOCUS: str | None = None
    CHAT_PANE = True
    BINDINGS = [
        Binding("question_mark", "app.help", "Keys", id="screen.help"),
        Binding("q", "app.request_quit", "Quit", id="screen.quit"),
        Binding("escape", "back", "Back", id="screen.back"),
    ]

    @property
    def aurora(self) -> ConsoleHost:
        return cast(ConsoleHost, self.app)

    @property
    def engine(self) -> EngineAPI:
        return self.aurora.engine

    def header_label(self) -> str:
        return self.LABEL

    def compose(self) -> ComposeResult:
        yield FleetHeader(self.header_label(), self.app.current_mode, id="fleet-header")
        with Horizontal(id="body"):
            with Vertical(id="main"):
                yield from self.compose_main()
            if self.CHAT_PANE:
                yield ChatView(docked=True, id="chat-pane", classes="-hidden")
        yield KeyFooter()

    def compose_main(self) -> Iterable[Widget]:
        return ()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return self._can_go_back()
        return True

    def _can_go_back(self) -> bool:
        if self.app.screen is not self:
            return True
        bars = list(self.query(FilterBar))
        pane = self.query("#chat-pane")
        return bool(
            len(self.app.screen_stack) > 1
            or self.aurora.has_previous_mode()
            or (bars and (bars[0].value or bars[0].is_open))
            or (pane and not pane.first().has_class("-hidden"))
            or isinstance(self.focused, Input)
        )

    def on_mount(self) -> None:
        app = self.aurora
        app.state_signal.subscribe(self, self._state_signal)
        app.event_signal.subscribe(self, self._event_signal)
        self.state_changed(app.state)

    def on_screen_resume(self) -> None:
        self.refresh_bindings()
        self.sync_chat(focus=False)
        self.query_one(FleetHeader).redraw()
        self.resumed()

    def _state_signal(self, state: ConsoleState) -> None:
        self.query_one(FleetHeader).redraw()
        self.state_changed(state)

    def _event_signal(self, event: Event) -> None:
        self.engine_event(event)

    # --- for subclasses ------------------------------------------------------------------------------

    def state_changed(self, state: ConsoleState) -> None:
        """The console's view of the fleet changed (snapshot, counts, connection)."""

    def engine_event(self, event: Event) -> None:
        """An event arrived from the engine."""

    def resumed(self) -> None:
        """The screen is shown again."""

    def filter_changed(self, text: str) -> None:
        """The `/` filter text changed."""

    def main_focus(self) -> Widget | None:
        """What gets the focus when the operator leaves the chat pane or the filter."""
        return None

    # --- the chat pane -------------------------------------------------------------------------------

    def sync_chat(self, focus: bool) -> None:
        if not self.CHAT_PANE:
            return
        pane = self.query_one("#chat-pane", ChatView)
        docked = self.aurora.chat_docked
        pane.set_class(not docked, "-hidden")
        if docked and focus:
            pane.focus_input()
        elif not docked and pane.has_focus_within:
            self._focus_main()

    def _focus_main(self) -> None:
        target = self.main_focus()
        if target is not None:
            target.focus()
        else:
            self.focus_next()

    # --- the filter ----------------------------------------------------------------------------------

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.open()

    def on_filter_bar_filter_changed(self, message: FilterBar.FilterChanged) -> None:
        message.stop()
        self.filter_changed(message.value)

    def on_filter_bar_done(self, message: FilterBar.Done) -> None:
        message.stop()
        self._focus_main()

    # --- going back ----------------------------------------------------------------------------------

    def action_back(self) -> None:
        focused = self.focused
        if self.CHAT_PANE and focused is not None and self.query_one("#chat-pane", ChatView) in focused.ancestors_with_self:
            self._focus_main()
            return
        bars = list(self.query(FilterBar))
        if bars and (bars[0].value or bars[0].is_open):
            bars[0].close()
            self._focus_main()
            return
        if isinstance(focused, Input) and not isinstance(focused, FilterBar):
            self._focus_main()
            return
        if len(self.app.screen_stack) > 1 and self.app.screen is self:
            self.dismiss()
            return
        self.aurora.action_previous_mode()
