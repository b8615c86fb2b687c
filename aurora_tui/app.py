"""The Textual console. It talks to the engine only through :class:`EngineAPI`."""
from __future__ import annotations

import asyncio
import signal
import sys

from textual.app import App
from textual.binding import Binding

from .core.api import EngineAPI
from .core.config import Config
from .messages import ActionFinished, EngineEvent, FleetUpdated
from .screens.confirm import ConfirmScreen
from .screens.services import ServicesScreen

# The header's "scan … ago" and each uptime move with the clock even when nothing else happens.
REFRESH_EVERY = 1.0


class AuroraApp(App):
    TITLE = "Aurora"
    CSS_PATH = "styles/app.tcss"
    BINDINGS = [
        Binding("q", "request_quit", "Quit", id="app.quit"),
    ]

    def __init__(self, engine: EngineAPI, *, engine_mode: str = "own engine", service_count: int | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.engine_mode = engine_mode
        self.service_count = service_count
        self.snapshot = None
        self._dirty = asyncio.Event()

    def on_mount(self) -> None:
        self.push_screen(ServicesScreen(self.engine_mode))
        self.run_worker(self._follow_events(), group="engine-events", exit_on_error=False)
        self.run_worker(self._refresh_loop(), group="engine-snapshot", exit_on_error=False)

    # --- workers: they post messages, never touch widgets -------------------------------------------

    async def _follow_events(self) -> None:
        async with self.engine.subscribe() as events:
            async for event in events:
                self._dirty.set()
                self.post_message(EngineEvent(event))

    async def _refresh_loop(self) -> None:
        # One snapshot at a time: the next is asked for only after the last arrived.
        while True:
            self._dirty.clear()
            self.post_message(FleetUpdated(await self.engine.snapshot()))
            try:
                await asyncio.wait_for(self._dirty.wait(), REFRESH_EVERY)
            except asyncio.TimeoutError:
                pass

    async def _act(self, action: str, service: str) -> None:
        call = {"restart": self.engine.restart, "stop": self.engine.stop_service, "start": self.engine.start_service}[action]
        try:
            result = await call(service)
        except Exception as exc:  # the engine's refusal is shown, never raised into the UI
            self.post_message(ActionFinished(action, service, None, str(exc)))
        else:
            self.post_message(ActionFinished(action, service, result, None))

    # --- handlers -----------------------------------------------------------------------------------

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self.snapshot = message.snapshot
        for screen in self.screen_stack:
            if isinstance(screen, ServicesScreen):
                screen.show(message.snapshot)

    def on_action_finished(self, message: ActionFinished) -> None:
        if message.error:
            self.notify(f"{message.action} {message.service} failed: {message.error}", severity="error", timeout=8)
        else:
            result = message.result or {}
            health = "healthy" if result.get("healthy") else "not healthy yet"
            self.notify(f"{message.service} {message.action}ed: pid {result.get('pid')}, {health}")

    def request_action(self, action: str, service: str) -> None:
        self.notify(f"{action} {service}…", timeout=3)
        self.run_worker(self._act(action, service), group=f"action-{service}", exit_on_error=False)

    def action_request_quit(self) -> None:
        count = len(self.snapshot.services) if self.snapshot else self.service_count
        detail = f"This console runs its own engine: the {count} services it supervises are stopped too."

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen("Quit Aurora?", detail), answered)


def run_console(config: Config) -> int:
    from .core.engine import Engine
    from .core.enginelock import EngineAlreadyRunning

    async def main() -> int:
        engine = Engine(config)
        try:
            await engine.open()
        except EngineAlreadyRunning as exc:
            print(f"aurora: {exc}", file=sys.stderr)
            return 1
        app = AuroraApp(engine, service_count=len(config.services))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, app.exit)
        try:
            engine.launch()
            await app.run_async()
        finally:
            await engine.close()
        return 0

    return asyncio.run(main())
