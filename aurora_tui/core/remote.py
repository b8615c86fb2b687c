"""An engine that runs elsewhere, reached through its control socket.

:class:`RemoteEngine` is derived from the one declaration of :class:`~aurora_tui.core.api.EngineAPI`:
each declared method becomes one JSON-lines request (see :mod:`.control`) whose answer is rebuilt into
the declared result type. The event stream is a connection of its own. Closing a RemoteEngine closes
connections only: the engine and its fleet keep running.

Several requests may be in flight at once (a slow restart must not hold up the next snapshot), so the
calls share a small pool of connections instead of one.
"""
from __future__ import annotations

import abc
import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from .api import ACTION, EngineAPI, EngineInfo, RpcMethod, rpc_methods
from .control import ControlClient, ControlError, NoEngine
from .model import Event, from_jsonable

# Requests that only read answer quickly; operator actions may wait for a stop timeout and a start grace.
QUERY_TIMEOUT = 20.0
ACTION_TIMEOUT = 300.0
MAX_CONNECTIONS = 4


class Unsupported(NotImplementedError):
    """The engine on the other side does not know this method (it predates the feature)."""


def _remote_method(method: RpcMethod) -> Callable[..., Any]:
    timeout = ACTION_TIMEOUT if method.kind == ACTION else QUERY_TIMEOUT
    signature = method.signature

    async def call(self: "RemoteEngine", *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        params = {name: value for name, value in list(bound.arguments.items())[1:]}
        return from_jsonable(method.returns, await self._call(method.wire, self.timeout or timeout, **params))

    call.__name__ = call.__qualname__ = method.name
    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__doc__ = f"``{method.wire}`` on the engine's control socket."
    return call


def _derive_from_api(cls: type) -> type:
    """Fill in every EngineAPI method that ``cls`` does not define itself with a socket request."""
    for method in rpc_methods():
        if method.name not in cls.__dict__:
            setattr(cls, method.name, _remote_method(method))
    abc.update_abstractmethods(cls)
    return cls


@_derive_from_api
class RemoteEngine(EngineAPI):
    def __init__(self, db: Path, timeout: float | None = None) -> None:
        self.db = Path(db)
        self.db_path = self.db
        # How long any one answer may take, instead of the defaults by kind (the CLI's --timeout).
        self.timeout = timeout
        self._idle: list[ControlClient] = []
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._unsupported: set[str] = set()
        self.engine_pid: int | None = None

    # --- connection ----------------------------------------------------------------------------------

    async def open(self) -> EngineInfo:
        """Check that an engine answers on ``db`` (raises :class:`NoEngine` if not)."""
        info = await self.ping()
        self.engine_pid = info.pid
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
        return super().supports(method) and method not in self._unsupported

    async def _call(self, wire: str, timeout: float, **params: Any) -> Any:
        async with self._slots:
            client = self._idle.pop() if self._idle else ControlClient(self.db)
            try:
                result = await asyncio.wait_for(client.call(wire, **params), timeout)
            except ControlError as exc:
                self._idle.append(client)  # the connection is fine; the engine said no
                if str(exc).startswith(f"unknown method {wire!r}"):
                    self._unsupported.add(_name_of(wire))
                    raise Unsupported(f"the engine does not offer {wire!r} (it is older than this console)") from None
                raise
            except (OSError, EOFError, ValueError, asyncio.TimeoutError) as exc:
                await client.close()
                if isinstance(exc, NoEngine):
                    raise
                if isinstance(exc, asyncio.TimeoutError):
                    # A stopped (SIGSTOP) or overloaded engine still accepts connections; it just never answers.
                    after = "; it may still carry the request out" if _is_action(wire) else ""
                    raise NoEngine(
                        f"the engine on {self.db} did not answer {wire!r} within {timeout:g}s (is it stopped or overloaded?){after}"
                    ) from None
                raise NoEngine(f"lost the engine: {exc}") from None
            except BaseException:
                # Cancelled mid-request: the answer may still arrive on this connection, so it cannot be reused.
                await client.close()
                raise
            self._idle.append(client)
            return result

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


def _is_action(wire: str) -> bool:
    return any(wire in (m.wire, *m.aliases) and m.kind == ACTION for m in rpc_methods())


def _name_of(wire: str) -> str:
    return next((m.name for m in rpc_methods() if wire in (m.wire, *m.aliases)), wire)
