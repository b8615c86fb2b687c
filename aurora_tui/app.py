"""The Textual console. It talks to the engine only through the engine's async methods (an in-process
:class:`~aurora_tui.core.engine.Engine` or a :class:`~aurora_tui.core.remote.RemoteEngine`).

Five screens are Textual modes (``1``..``5``). The app owns what every screen shares: the latest fleet
snapshot, the counts in the header, the conversation with the dispatcher, and the workers that follow
the engine. Workers only post messages (:mod:`aurora_tui.messages`); handlers here update the shared
state and publish it on signals the screens subscribe to.
"""
from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from textual.app import App, SystemCommand
from textual.screen import ModalScreen, Screen
from textual.signal import Signal

from .console_state import ChatTurn, ConsoleHost, ConsoleState
from .core.api import ActionResult, EngineAPI
from .core.config import Config
from .core.model import Event, FleetSnapshot
from .messages import (
    ActionFinished,
    CatalogueLoaded,
    ChatAnswered,
    CountsUpdated,
    EngineConnection,
    EngineEvent,
    FleetUpdated,
    PlanLoaded,
)
from .screens.approvals import ApprovalsScreen
from .screens.base import APP_BINDINGS, AuroraScreen, Coalesced
from .screens.chat import ChatScreen
from .screens.confirm import ConfirmScreen
from .screens.explorer import ExplorerScreen
from .screens.help import HelpScreen
from .screens.incident_detail import IncidentDetailScreen
from .screens.incidents import IncidentsScreen
from .screens.palette import ActionCommands, IncidentCommands, PlanCommands, ServiceCommands
from .screens.plan_detail import PlanDetailScreen
from .screens.services import ServicesScreen
from .widgets.plans_table import action_summary

if TYPE_CHECKING:
    from .core.catalogue import Catalogue

# The header's "scan … ago" and each uptime move with the clock even when nothing else happens.
REFRESH_EVERY = 1.0
# Events ask for a fresh snapshot at once, but never more often than this.
MIN_GAP = 0.1
# How often an attached console tries again after losing its engine.
RETRY_EVERY = 2.0
# Open incidents are one per (service, pattern), so this bounds the count query generously.
COUNT_LIMIT = 2000
# Seconds after start-up at which the catalogue is read (in a thread), unless the explorer wants it first.
CATALOGUE_AFTER = 1.0

MODE_LABELS = {"services": "Services", "incidents": "Incidents", "approvals": "Approvals", "chat": "Chat", "explorer": "Explorer"}


class AuroraApp(App[None]):
    TITLE = "Aurora"
    CSS_PATH = "styles/app.tcss"
    MODES = {
        "services": ServicesScreen,
        "incidents": IncidentsScreen,
        "approvals": ApprovalsScreen,
        "chat": ChatScreen,
        "explorer": ExplorerScreen,
    }
    DEFAULT_MODE = "services"
    COMMANDS = App.COMMANDS | {ServiceCommands, IncidentCommands, PlanCommands, ActionCommands}
    BINDINGS = APP_BINDINGS

    def __init__(
        self,
        engine: EngineAPI,
        *,
        engine_mode: str = "own engine",
        service_count: int | None = None,
        clock: Callable[[], float] = time.time,
        blink: bool = True,
        refresh_every: float = REFRESH_EVERY,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.engine_mode = engine_mode
        self.service_count = service_count
        self.clock = clock
        self.blink = blink
        self.refresh_every = refresh_every
        self.state = ConsoleState(engine_mode=engine_mode)
        self.state_signal: Signal[ConsoleState] = Signal(self, "state")
        self.event_signal: Signal[Event] = Signal(self, "event")
        self.chat_signal: Signal[ChatTurn] = Signal(self, "chat")
        self.chat_turns: list[ChatTurn] = []
        self.chat_inputs: list[str] = []
        self.chat_docked = False
        self._mode_history: list[str] = []
        self._dirty = asyncio.Event()
        self._counts = Coalesced(self, "engine-counts", self._load_counts)
        # The packaged catalogue the explorer shows; read in a thread (see load_catalogue).
        self.catalogue: Catalogue | None = None
        self._catalogue_loading = False

    # --- convenience for screens ---------------------------------------------------------------------

    @property
    def snapshot(self) -> FleetSnapshot | None:
        return self.state.snapshot

    def supports(self, method: str) -> bool:
        return self.engine.supports(method)

    def chat_available(self) -> bool:
        return self.supports("ask") and self.state.chat is not False

    def has_previous_mode(self) -> bool:
        return bool(self._mode_history)

    # --- start ---------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.run_worker(self._follow_events(), group="engine-events", exit_on_error=False)
        self.run_worker(self._poll_snapshot(), group="engine-snapshot", exit_on_error=False)
        self._counts.poke()
        # Read the catalogue soon, but after the first frames (the explorer asks at once if it is first).
        self.set_timer(CATALOGUE_AFTER, self.load_catalogue)

    # --- workers: they post messages, never touch widgets ---------------------------------------------

    async def _follow_events(self) -> None:
        while True:
            try:
                async with self.engine.subscribe() as events:
                    async for event in events:
                        self._dirty.set()
                        self.post_message(EngineEvent(event))
            except Exception as exc:  # the stream broke: an attached console tries again
                self.log.warning(f"event stream ended: {exc!r}")
            if self.engine_mode != "attached":
                return  # our own engine closed: the console is on its way out
            self._dirty.set()
            await asyncio.sleep(RETRY_EVERY)

    async def _poll_snapshot(self) -> None:
        # One snapshot at a time: the next is asked for only after the last arrived.
        failing = False
        while True:
            self._dirty.clear()
            try:
                snapshot = await self.engine.snapshot()
            except Exception as exc:
                failing = True
                self.post_message(EngineConnection(str(exc) or type(exc).__name__))
                await asyncio.sleep(RETRY_EVERY)
                continue
            if failing:
                failing = False
                self.post_message(EngineConnection(None))
            self.post_message(FleetUpdated(snapshot))
            # A burst of events costs at most one snapshot per MIN_GAP; otherwise one per refresh_every.
            await asyncio.sleep(MIN_GAP)
            try:
                await asyncio.wait_for(self._dirty.wait(), max(0.0, self.refresh_every - MIN_GAP))
            except asyncio.TimeoutError:
                pass

    async def _load_counts(self) -> None:
        open_total: int | None = None
        by_service: dict[str, int] = {}
        try:
            rows = await self.engine.list_incidents(open_only=True, limit=COUNT_LIMIT)
        except Exception as exc:
            self.log.warning(f"open incidents unavailable: {exc!r}")
        else:
            open_total = len(rows)
            by_service = dict(Counter(r.service for r in rows))
        pending: int | None = None
        approvals: bool | None = None
        if self.supports("list_plans"):
            try:
                pending = len(await self.engine.list_plans(status="pending", limit=500))
                approvals = True
            except NotImplementedError:
                approvals = False
            except Exception as exc:
                self.log.warning(f"approval queue unavailable: {exc!r}")
        else:
            approvals = False
        heal_rate: float | None = None
        if self.supports("heal_stats"):
            try:
                heal_rate = (await self.engine.heal_stats()).rate
            except Exception as exc:
                self.log.warning(f"heal stats unavailable: {exc!r}")
        self.post_message(CountsUpdated(open_total, by_service, pending, approvals, heal_rate))

    async def _announce(self, plan_id: int) -> None:
        """A plan was proposed: fetch it, so that only plans that wait for a human are announced."""
        try:
            plan = await self.engine.plan(plan_id)
        except Exception:
            return
        self.post_message(PlanLoaded(plan_id, plan))

    async def _act(self, action: str, service: str) -> None:
        calls = {
            "restart": self.engine.restart,
            "stop": self.engine.stop_service,
            "start": self.engine.start_service,
        }
        result: ActionResult | None = None
        try:
            if action == "scan":
                await self.engine.scan_now()
            else:
                result = await calls[action](service)
        except Exception as exc:  # the engine's refusal is shown, never raised into the UI
            self.post_message(ActionFinished(action, service, None, str(exc) or type(exc).__name__))
        else:
            self.post_message(ActionFinished(action, service, result, None))

    async def _ask(self, turn: int, message: str) -> None:
        try:
            reply = await self.engine.ask(message)
        except NotImplementedError:  # an engine without a dispatcher (remote: Unsupported)
            self.post_message(ChatAnswered(turn, None, unavailable=True))
        except Exception as exc:
            self.post_message(ChatAnswered(turn, None, error=f"the dispatcher failed: {exc}"))
        else:
            self.post_message(ChatAnswered(turn, reply))

    async def _confirm(self, turn: int, token: str) -> None:
        """The operator said yes: the dispatcher carries out what it asked about (by its token)."""
        try:
            try:
                if not self.supports("confirm"):
                    raise NotImplementedError("confirm")
                reply = await self.engine.confirm(token)
            except NotImplementedError:  # an engine older than confirm(): the dispatcher's own "yes"
                reply = await self.engine.ask("yes")
        except Exception as exc:
            self.post_message(ChatAnswered(turn, None, error=f"the confirmation failed: {exc}"))
        else:
            self.post_message(ChatAnswered(turn, reply))

    def _read_catalogue(self) -> None:
        """Thread worker: parse the packaged catalogue (a tenth of a second, cold) off the event loop."""
        from .core.catalogue import Catalogue

        try:
            catalogue = Catalogue.load()
        except Exception as exc:
            self.post_message(CatalogueLoaded(None, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(CatalogueLoaded(catalogue))

    # --- handlers ------------------------------------------------------------------------------------

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        snapshot = message.snapshot
        self.state.snapshot = snapshot
        self.state.connected = True
        self.state_signal.publish(self.state)

    def on_engine_connection(self, message: EngineConnection) -> None:
        was = self.state.connected
        self.state.connected = message.error is None
        if was and message.error is not None:
            self.notify(f"Lost the engine: {message.error}. Retrying every {RETRY_EVERY:g}s.", severity="error", timeout=10)
        elif not was and message.error is None:
            self.notify("The engine answers again.", timeout=5)
            self._counts.poke()
        self.state_signal.publish(self.state)

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        kind = event.kind
        self.event_signal.publish(event)
        if kind in ("incident_opened", "incident_resolved", "incident_acknowledged", "engine_started") or kind.startswith("plan_"):
            self._counts.poke()
        if kind == "incident_opened":
            severity = "error" if "critical" in str(event.data.get("severity", "")) else "warning"
            self.notify(event.message, title=f"Incident #{event.data.get('incident')}", severity=severity, timeout=8)
        elif kind == "crashed":
            self.notify(event.message, title="Crashed", severity="warning", timeout=6)
        elif kind == "spawn_failed":
            self.notify(event.message, title="Could not start", severity="error", timeout=8)
        elif kind == "plan_proposed" and isinstance(event.data.get("plan"), int) and self.supports("plan"):
            self.run_worker(self._announce(event.data["plan"]), group="plan-announce", exit_on_error=False)
        elif kind == "plan_failed":
            self.notify(event.message, title="A fix failed", severity="error", timeout=10)

    def on_plan_loaded(self, message: PlanLoaded) -> None:
        plan = message.plan
        if plan is None or plan.status != "pending":
            return
        actions = action_summary(plan.actions, plan.service)
        self.notify(
            f"{actions or plan.pattern} on {plan.service} (risk {plan.risk}, confidence {plan.confidence}/10).\nPress 3 to review it.",
            title=f"Plan #{plan.id} waits for your approval",
            severity="warning",
            timeout=15,
        )

    def on_counts_updated(self, message: CountsUpdated) -> None:
        state = self.state
        state.open_incidents = message.open_incidents
        state.by_service = message.by_service if message.open_incidents is not None else None
        if message.approvals is not None:
            state.approvals = message.approvals
        state.pending_plans = message.pending_plans if message.approvals else None
        state.heal_rate = message.heal_rate
        self.state_signal.publish(state)

    def on_action_finished(self, message: ActionFinished) -> None:
        if message.error:
            self.notify(f"{message.action} {message.service} failed: {message.error}", severity="error", timeout=8)
            return
        if message.action == "scan":
            self.notify("scan done", timeout=3)
            return
        result = message.result
        health = "healthy" if result and result.healthy else "not healthy yet"
        done = {"restart": "restarted", "stop": "stopped", "start": "started"}[message.action]
        pid = f": pid {result and result.pid}, {health}" if message.action != "stop" else ""
        self.notify(f"{message.service} {done}{pid}")

    def on_chat_answered(self, message: ChatAnswered) -> None:
        turn = next((t for t in self.chat_turns if t.n == message.turn), None)
        if turn is None:
            return
        turn.pending = False
        if message.unavailable:
            turn.error = "The dispatcher is not available in this build: the engine has no ask()."
            self.state.chat = False
            self.state_signal.publish(self.state)
        elif message.error:
            turn.error = message.error
        else:
            turn.reply = message.reply
        self.chat_signal.publish(turn)
        reply = turn.reply
        if reply is None:
            return
        # Copies: screens compare these by identity to see that a new answer came.
        self.state.usage = dict(reply.usage)
        self.state.active_modules = list(reply.active_modules)
        self.state_signal.publish(self.state)
        confirm = reply.confirm
        if confirm is not None and confirm.token and turn.answer is None:
            self._ask_to_confirm(turn, confirm.token, confirm.question or "Go ahead?")

    def on_catalogue_loaded(self, message: CatalogueLoaded) -> None:
        self._catalogue_loading = False
        if message.catalogue is None:
            self.notify(f"The catalogue could not be read: {message.error}", severity="error", timeout=10)
            return
        self.catalogue = message.catalogue
        self.state_signal.publish(self.state)

    def load_catalogue(self) -> None:
        """Read the catalogue in a thread worker, once; CatalogueLoaded brings it."""
        if self.catalogue is not None or self._catalogue_loading:
            return
        self._catalogue_loading = True
        self.run_worker(self._read_catalogue, thread=True, group="catalogue", exit_on_error=False)

    # --- operator actions ----------------------------------------------------------------------------

    def request_action(self, action: str, service: str) -> None:
        self.notify(f"{action} {service}…" if service else f"{action}…", timeout=3)
        self.run_worker(self._act(action, service), group=f"action-{service or action}", exit_on_error=False)

    def confirm_action(self, action: str, service: str) -> None:
        """Ask first ("No" focused), then restart, stop or start ``service``."""
        status = self.snapshot.service(service) if self.snapshot else None
        if status is not None and not status.managed:
            self.notify(f"{service} is monitor-only (managed = false): Aurora does not start, stop or signal it.", severity="warning")
            return
        dependants = [s.name for s in (self.snapshot.services if self.snapshot else []) if service in s.depends_on]
        also = f" {', '.join(dependants)} depend{'s' if len(dependants) == 1 else ''} on it." if dependants else ""
        questions = {
            "restart": (f"Restart {service}?", f"It is stopped (SIGTERM, then SIGKILL after its stop timeout) and started again.{also}"),
            "stop": (f"Stop {service}?", f"Its process group gets SIGTERM (SIGKILL after the stop timeout) and it stays down until you start it.{also}"),
            "start": (f"Start {service}?", "It is started now and watched through its start grace."),
        }
        question, detail = questions[action]

        def answered(yes: bool | None) -> None:
            if yes:
                self.request_action(action, service)

        self.push_screen(ConfirmScreen(question, detail), answered)

    def toggle_service(self, service: str) -> None:
        """`s`: stop a service that runs, start one that does not."""
        status = self.snapshot.service(service) if self.snapshot else None
        if status is None:
            return
        running = status.state in ("running", "starting", "backoff") and status.managed
        self.confirm_action("stop" if running else "start", service)

    def ask(self, text: str, *, shown: str | None = None, remember: bool = True) -> None:
        """Send ``text`` to the dispatcher; the transcript shows ``shown`` (default: the text itself).
        ``remember``: keep it in the input's history (what the operator typed)."""
        turn = self._new_turn(shown or text)
        if remember:
            self.chat_inputs.append(text)
            del self.chat_inputs[:-200]
        if not self.chat_available():
            self.post_message(ChatAnswered(turn.n, None, unavailable=True))
            return
        self.run_worker(self._ask(turn.n, text), group="chat", exit_on_error=False)

    def _new_turn(self, question: str) -> ChatTurn:
        turn = ChatTurn(len(self.chat_turns) + 1, question)
        self.chat_turns.append(turn)
        self.chat_signal.publish(turn)
        return turn

    def _ask_to_confirm(self, turn: ChatTurn, token: str, question: str) -> None:
        """The dispatcher wants a yes before it changes the fleet: ask ("No" focused). Yes carries it
        out by its token; no tells the dispatcher, so it drops what was waiting."""
        detail = confirm_detail(turn.reply.reply if turn.reply is not None else "", question)

        def answered(yes: bool | None) -> None:
            turn.answer = "yes" if yes else "no"
            self.chat_signal.publish(turn)
            if yes:
                confirmed = self._new_turn(f"yes: {question}")
                self.run_worker(self._confirm(confirmed.n, token), group="chat", exit_on_error=False)
            else:
                self.ask("no", shown=f"no: {question}", remember=False)

        self.push_screen(ConfirmScreen(question, detail), answered)

    # --- navigation ----------------------------------------------------------------------------------

    def action_show_mode(self, mode: str) -> None:
        if mode == self.current_mode:
            self._to_base()  # the screen's own key again: back to its list
            return
        self._mode_history.append(self.current_mode)
        del self._mode_history[:-20]
        self.switch_mode(mode)

    def _to_base(self) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ModalScreen):
            self.pop_screen()

    def action_previous_mode(self) -> None:
        if self._mode_history:
            self.switch_mode(self._mode_history.pop())

    def action_toggle_chat(self) -> None:
        self.chat_docked = not self.chat_docked
        screen = self.screen
        if isinstance(screen, AuroraScreen):
            screen.sync_chat(focus=True)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def open_service(self, service: str) -> None:
        self.action_show_mode("services")
        self._to_base()
        base = self.screen_stack[0]
        if isinstance(base, ServicesScreen):
            base.open_details(service)

    def open_incident(self, incident_id: int) -> None:
        self.action_show_mode("incidents")
        self._to_base()
        self.push_screen(IncidentDetailScreen(int(incident_id)))

    def open_plan(self, plan_id: int) -> None:
        self.action_show_mode("approvals")
        self._to_base()
        self.push_screen(PlanDetailScreen(int(plan_id)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_chat" and isinstance(self.screen, (ChatScreen, HelpScreen)):
            return False
        if isinstance(self.screen, ModalScreen) and action in ("show_mode", "toggle_chat", "help", "request_quit"):
            return False
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title == "Quit":
                yield SystemCommand("Quit", "Quit Aurora (asks first)", self.action_request_quit)
            else:
                yield command

    def action_request_quit(self) -> None:
        snapshot = self.snapshot
        count = len(snapshot.services) if snapshot else self.service_count
        if self.engine_mode == "attached":
            pid = snapshot.engine_pid if snapshot else "?"
            detail = f"You are attached: the engine (pid {pid}) and its {count} services keep running."
        else:
            detail = f"This console runs its own engine: quitting stops the {count} services it supervises."

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen("Quit Aurora?", detail), answered)


if TYPE_CHECKING:

    def _is_a_host(app: AuroraApp) -> ConsoleHost:
        """For the type checker: the app is what its screens and widgets take it for."""
        return app


def confirm_detail(reply: str, question: str) -> str:
    """What the dispatcher said will happen, as plain text: the rest of the line that asks ``question``."""
    for line in reply.splitlines():
        plain = re.sub(r"\\(.)", r"\1", line.replace("**", "").replace("`", "")).strip()
        if plain.startswith(question):
            rest = plain[len(question):].strip()
            if rest:
                return rest
    return "The dispatcher asks before it changes anything."


def _exit_on_signals(app: AuroraApp) -> None:
    loop = asyncio.get_running_loop()
    # SIGHUP: the terminal is gone (an SSH session dropped). Exit rather than spin on a dead tty.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, app.exit)


def run_console(config: Config) -> int:
    from .own_engine import open_own_engine

    async def main() -> int:
        engine = await open_own_engine(config)
        if isinstance(engine, int):  # not opened: why was said on stderr
            return engine
        app = AuroraApp(engine, service_count=len(config.services))
        _exit_on_signals(app)
        try:
            engine.launch()
            await app.run_async()
        finally:
            await engine.close()
        return 0

    return asyncio.run(main())


def run_attached(db: Path) -> int:
    """The console on an engine that runs elsewhere (``aurora run --headless``). Quitting leaves it running."""
    from .core.control import NoEngine
    from .core.remote import RemoteEngine

    async def main() -> int:
        engine = RemoteEngine(db)
        try:
            await engine.open()
        except NoEngine as exc:
            print(f"aurora: {exc}", file=sys.stderr)
            return 1
        app = AuroraApp(engine, engine_mode="attached")
        _exit_on_signals(app)
        try:
            await app.run_async()
        finally:
            await engine.close()
        return 0

    return asyncio.run(main())
