"""What the console's screens and widgets share with the app, kept apart from the app itself so that
they never import it: the shared state (:class:`ConsoleState`, :class:`ChatTurn`) and the typed view
of the app they talk to (:class:`ConsoleHost`).

Nothing here imports Textual at run time: screens and widgets depend on this module, and the app
(:class:`~aurora_tui.app.AuroraApp`) satisfies :class:`ConsoleHost`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from .core.api import EngineAPI, Reply
from .core.model import Event, FleetSnapshot

if TYPE_CHECKING:
    from textual.signal import Signal

    from .core.catalogue import Catalogue


@dataclass
class ConsoleState:
    engine_mode: str
    snapshot: FleetSnapshot | None = None
    connected: bool = True
    open_incidents: int | None = None
    by_service: dict[str, int] | None = None
    pending_plans: int | None = None
    approvals: bool | None = None  # None: not known yet; False: this engine has no approval queue
    chat: bool | None = None  # False once the engine said it has no dispatcher
    heal_rate: float | None = None
    # The dispatcher's usage counts ("program:62" -> 3) and active modules, as of its latest answer
    # (None until it has answered once). A new answer brings new objects, so screens compare by identity.
    usage: dict[str, int] | None = None
    active_modules: list[str] | None = None


@dataclass
class ChatTurn:
    n: int
    question: str
    reply: Reply | None = None
    error: str | None = None
    pending: bool = True
    # The operator's answer to the reply's confirmation question: "yes", "no", or None (not answered).
    answer: str | None = None


class ConsoleHost(Protocol):
    """The app as its screens and widgets see it (``cast(ConsoleHost, self.app)``)."""

    engine: EngineAPI
    state: ConsoleState
    clock: Callable[[], float]
    blink: bool
    chat_turns: list[ChatTurn]
    chat_inputs: list[str]
    chat_docked: bool
    # The packaged catalogue, read in a thread; None until it arrives (see load_catalogue).
    catalogue: Catalogue | None
    state_signal: Signal[ConsoleState]
    event_signal: Signal[Event]
    chat_signal: Signal[ChatTurn]

    @property
    def snapshot(self) -> FleetSnapshot | None: ...

    def supports(self, method: str) -> bool: ...

    def chat_available(self) -> bool: ...

    def has_previous_mode(self) -> bool: ...

    def load_catalogue(self) -> None: ...

    def ask(self, text: str, *, shown: str | None = None, remember: bool = True) -> None: ...

    def request_action(self, action: str, service: str) -> None: ...

    def confirm_action(self, action: str, service: str) -> None: ...

    def toggle_service(self, service: str) -> None: ...

    def open_service(self, service: str) -> None: ...

    def open_incident(self, incident_id: int) -> None: ...

    def open_plan(self, plan_id: int) -> None: ...

    def action_show_mode(self, mode: str) -> None: ...

    def action_previous_mode(self) -> None: ...

    def action_toggle_chat(self) -> None: ...

    def action_help(self) -> None: ...
