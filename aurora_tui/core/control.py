"""The control socket: JSON lines over a Unix socket next to the database (``<db>.sock``, mode 0600).

A request is ``{"id": 1, "method": "status", "params": {...}}``; the answer is ``{"id": 1, "ok": true,
"result": ..., "api": 1}`` or ``{"id": 1, "ok": false, "error": "...", "api": 1}``. ``subscribe`` turns the
connection into a stream of ``{"event": {...}, "api": 1}`` lines. The method table is derived from the
one declaration of :class:`~aurora_tui.core.api.EngineAPI`; nothing a client sends is ever executed.
Whatever a client sends, it gets an answer: a bad line is an error answer, never a dropped connection.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from .api import API_VERSION, EngineAPI, rpc_methods
from .model import Event, FleetSnapshot, from_jsonable, to_jsonable

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20
# sun_path holds 108 bytes; longer paths are reached through the directory's /proc/self/fd entry.
SUN_PATH_MAX = 107


class ControlError(RuntimeError):
    """The engine answered with an error."""


class NoEngine(ConnectionError):
    """Nothing listens on the socket: no engine runs on this database."""


def socket_path(db: Path) -> Path:
    return db.with_name(db.name + ".sock")


@contextlib.contextmanager
def reachable(path: Path):
    """Yield a string under the sun_path limit that names ``path``."""
    text = str(path)
    if len(text.encode()) <= SUN_PATH_MAX:
        yield text
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{dir_fd}/{path.name}"
    finally:
        os.close(dir_fd)


def method_table(engine: EngineAPI) -> dict[str, Callable[..., Awaitable[Any]]]:
    """Socket method name -> the engine's bound method, for every method EngineAPI declares."""
    table: dict[str, Callable[..., Awaitable[Any]]] = {}
    for method in rpc_methods():
        handler = getattr(engine, method.name)
        for wire in (method.wire, *method.aliases):
            table[wire] = handler
    return table


class ControlServer:
    def __init__(self, engine: EngineAPI, path: Path) -> None:
        self.engine = engine
        self.path = path
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.methods = method_table(engine)

    async def start(self) -> None:
        # Only the engine holding the database lock gets here, so a leftover socket file is stale.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with reachable(self.path) as where:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                sock.bind(where)
            finally:
                os.umask(old)
        os.chmod(self.path, 0o600)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    # The reader dropped what it had; the rest of the line arrives as its own bad request.
                    await _send(writer, _error(None, f"request line too long (over {MAX_LINE} bytes)"))
                    continue
                if not line:
                    break
                reply = await self._handle(line)
                if reply is None:  # subscribed: the connection now carries events until it closes
                    await self._stream_events(writer)
                    break
                await _send(writer, reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any] | None:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except RecursionError:
            return _error(None, "bad request: nested too deeply")
        except ValueError as exc:  # includes UnicodeDecodeError
            return _error(None, f"bad request: {exc}")
        rid = request.get("id")
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int)):
            return _error(None, f"bad request: id must be an integer, got {type(rid).__name__}")
        method = request.get("method")
        params = request.get("params") or {}
        if method == "subscribe":
            return None
        handler = self.methods.get(method) if isinstance(method, str) else None
        if handler is None:
            return _error(rid, f"unknown method {method!r}; known: {', '.join(sorted(self.methods))}")
        if not isinstance(params, dict):
            return _error(rid, "params must be an object")
        try:
            result = await handler(**params)
        except TypeError as exc:
            return _error(rid, f"bad params for {method}: {exc}")
        except (KeyError, ValueError, RuntimeError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return _error(rid, str(message))
        except Exception as exc:  # the boundary: a client's request must never take the engine's socket down
            log.warning("control request %s failed: %r", method, exc)
            return _error(rid, f"{method} failed: {type(exc).__name__}: {exc}")
        return {"id": rid, "ok": True, "result": to_jsonable(result), "api": API_VERSION}

    async def _stream_events(self, writer: asyncio.StreamWriter) -> None:
        async with self.engine.subscribe() as events:
            async for event in events:
                await _send(writer, {"event": to_jsonable(event), "api": API_VERSION})


def _error(rid: Any, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": message, "api": API_VERSION}


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, default=str).encode() + b"\n")
    await writer.drain()


class ControlClient:
    """Talks to a running engine. One request at a time per client; ``events()`` opens its own connection."""

    def __init__(self, db: Path) -> None:
        self.path = socket_path(db)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 0
        self._lock = asyncio.Lock()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.path.exists():
            raise NoEngine(f"no Aurora engine is running on {self.path.with_suffix('')} (no socket at {self.path})")
        try:
            with reachable(self.path) as where:
                return await asyncio.open_unix_connection(where, limit=MAX_LINE * 16)
        except (ConnectionRefusedError, FileNotFoundError):
            raise NoEngine(f"no Aurora engine is running on {self.path.with_suffix('')} (stale socket)") from None

    async def call(self, method: str, **params: Any) -> Any:
        async with self._lock:
            if self._writer is None:
                self._reader, self._writer = await self._open()
            assert self._reader is not None
            self._next_id += 1
            self._writer.write(json.dumps({"id": self._next_id, "method": method, "params": params}).encode() + b"\n")
            await self._writer.drain()
            line = await self._reader.readline()
        if not line:
            await self.close()
            raise NoEngine("the engine closed the connection")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ControlError(reply.get("error") or "unknown error")
        return reply.get("result")

    async def snapshot(self) -> FleetSnapshot:
        return from_jsonable(FleetSnapshot, await self.call("status"))

    async def events(self) -> AsyncIterator[Event]:
        reader, writer = await self._open()
        try:
            writer.write(b'{"method": "subscribe"}\n')
            await writer.drain()
            while line := await reader.readline():
                yield from_jsonable(Event, json.loads(line)["event"])
        finally:
            writer.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


def call_engine(db: Path, method: str, timeout: float = 30.0, **params: Any) -> Any:
    """One request from synchronous code (the CLI)."""

    async def once() -> Any:
        client = ControlClient(db)
        try:
            return await asyncio.wait_for(client.call(method, **params), timeout)
        finally:
            await client.close()

    return asyncio.run(once())
