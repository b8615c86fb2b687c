"""An engine that runs elsewhere, reached through its control socket.

:class:`RemoteEngine` offers the same async methods the console calls on an in-process
:class:`~aurora_tui.core.engine.Engine`, so the console cannot tell them apart except by
``engine_mode``. Every call is one JSON-lines request (see :mod:`.control`); the event stream is a
connection of its own. Closing a RemoteEngine closes connections only: the engine and its fleet keep
running.

Several requests may be in flight at once (a slow restart must not hold up the next snapshot), so the
calls share a small pool of connections instead of one.
"""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

from .control import ControlClient, ControlError, NoEngine
from .model import Event, FleetSnapshot, from_jsonable

# Requests that only read answer quickly; operator actions may wait for a stop timeout and a start grace.
QUERY_TIMEOUT = 20.0
ACTION_TIMEOUT = 300.0
MAX_CONNECTIONS = 4


class Unsupported(NotImplementedError):
    """The engine on the other side does not know this method (it predates the feature)."""


class RemoteEngine:
    def __init__(self, db: Path) -> None:
        self.db = Path(db)
        self.db_path = self.db
        self._idle: list[ControlClient] = []
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._unsupported: set[str] = set()
        self.engine_pid: int | None = None

    # --- connection ----------------------------------------------------------------------------------

    async def open(self) -> dict[str, Any]:
        """Check that an engine answers on ``db`` (raises :class:`NoEngine` if not)."""
        info = await self._call("ping", QUERY_TIMEOUT)
        self.engine_pid = info.get("pid")
        return info

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await client.close()

    async def __aenter__(self) -> "RemoteEngine":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def supports(self, method: str) -> bool:
        """False once the engine has answered that it does not know ``method``."""
        return method not in self._unsupported

    async def _call(self, method: str, timeout: float, **params: Any) -> Any:
        async with self._slots:
            client = self._idle.pop() if self._idle else ControlClient(self.db)
            try:
                result = await asyncio.wait_for(client.call(method, **params), timeout)
            except ControlError as exc:
                self._idle.append(client)  # the connection is fine; the engine said no
                if str(exc).startswith(f"unknown method {method!r}"):
                    self._unsupported.add(method)
                    raise Unsupported(f"the engine does not offer {method!r} (it is older than this console)") from None
                raise
            except (OSError, EOFError, ValueError, asyncio.TimeoutError) as exc:
                await client.close()
                if isinstance(exc, NoEngine):
                    raise
                if isinstance(exc, asyncio.TimeoutError):
                    raise NoEngine(f"the engine did not answer {method!r} within {timeout:g}s") from None
                raise NoEngine(f"lost the engine: {exc}") from None
            except BaseException:
                # Cancelled mid-request: the answer may still arrive on this connection, so it cannot be reused.
                await client.close()
                raise
            self._idle.append(client)
            return result

    async def _query(self, method: str, **params: Any) -> Any:
        return await self._call(method, QUERY_TIMEOUT, **params)

    async def _act(self, method: str, **params: Any) -> Any:
        return await self._call(method, ACTION_TIMEOUT, **params)

    # --- fleet ---------------------------------------------------------------------------------------

    async def snapshot(self) -> FleetSnapshot:
        snapshot = from_jsonable(FleetSnapshot, await self._query("status"))
        self.engine_pid = snapshot.engine_pid
        return snapshot

    async def restart(self, service: str) -> dict[str, Any]:
        return await self._act("restart", service=service)

    async def stop_service(self, service: str) -> dict[str, Any]:
        return await self._act("stop", service=service)

    async def start_service(self, service: str) -> dict[str, Any]:
        return await self._act("start", service=service)

    async def scan_now(self) -> FleetSnapshot:
        return from_jsonable(FleetSnapshot, await self._act("scan"))

    async def chaos(self, fault: str, service: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._act("chaos", fault=fault, service=service, params=params or {})

    async def logs(self, service: str, lines: int = 50) -> list[str]:
        return await self._query("logs", service=service, lines=int(lines))

    async def recent_events(self, limit: int = 50, service: str | None = None) -> list[dict[str, Any]]:
        return await self._query("events", limit=int(limit), service=service)

    # --- incidents -----------------------------------------------------------------------------------

    async def list_incidents(
        self, open_only: bool = False, service: str | None = None, pattern: str | None = None,
        since: float | None = None, limit: int = 50, before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        return await self._query(
            "incidents", open_only=open_only, service=service, pattern=pattern, since=since, limit=int(limit), before_id=before_id
        )

    async def incident(self, incident_id: int) -> dict[str, Any]:
        return await self._query("incident", incident_id=int(incident_id))

    async def acknowledge(self, incident_id: int, by: str = "operator") -> dict[str, Any]:
        return await self._act("acknowledge", incident_id=int(incident_id), by=by)

    async def silence(self, service: str, duration_s: float, reason: str = "", by: str = "operator") -> dict[str, Any]:
        return await self._act("silence", service=service, duration_s=float(duration_s), reason=reason, by=by)

    async def unsilence(self, service: str, by: str = "operator") -> dict[str, Any]:
        return await self._act("unsilence", service=service, by=by)

    async def silences(self) -> list[dict[str, Any]]:
        return await self._query("silences")

    # --- approvals (the socket methods arrive with the approval queue) --------------------------------

    async def list_plans(self, status: str | None = "pending", limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        return await self._query("plans", status=status, limit=int(limit), before_id=before_id)

    async def plan(self, plan_id: int) -> dict[str, Any]:
        return await self._query("plan", plan_id=int(plan_id))

    async def approve(self, plan_id: int, grade: int | None = None, comment: str = "", by: str = "operator") -> dict[str, Any]:
        return await self._act("approve", plan_id=int(plan_id), grade=grade, comment=comment, by=by)

    async def reject(self, plan_id: int, reason: str, by: str = "operator") -> dict[str, Any]:
        return await self._act("reject", plan_id=int(plan_id), reason=reason, by=by)

    async def grade(self, plan_id: int, grade: int, by: str = "operator") -> dict[str, Any]:
        return await self._act("grade", plan_id=int(plan_id), grade=int(grade), by=by)

    async def heal_stats(self) -> dict[str, Any]:
        return await self._query("heal_stats")

    # --- the dispatcher ------------------------------------------------------------------------------

    async def ask(self, message: str) -> dict[str, Any]:
        return await self._act("ask", message=message)

    async def confirm(self, token: str) -> dict[str, Any]:
        """Carry out what the dispatcher asked to confirm (the ``token`` of a reply's ``confirm``)."""
        return await self._act("confirm", token=token)

    # --- events --------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        """The engine's event stream on a connection of its own. The iterator ends when the engine goes."""
        client = ControlClient(self.db)
        stream = client.events()

        async def iterate() -> AsyncIterator[Event]:
            try:
                async for event in stream:
                    yield event
            except (OSError, ValueError, KeyError):
                return  # the engine went away mid-line: the stream simply ends

        try:
            yield iterate()
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
            await client.close()
