"""The control socket: JSON lines over a Unix socket next to the database (``<db>.sock``, mode 0600).

A request is ``{"id": 1, "method": "status", "params": {...}}``; the answer is ``{"id": 1, "ok": true,
"result": ...}`` or ``{"id": 1, "ok": false, "error": "..."}``. ``subscribe`` turns the connection into a
stream of ``{"event": {...}}`` lines. The server only dispatches to a fixed table of engine methods;
nothing a client sends is ever executed.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from .model import Event, FleetSnapshot, from_jsonable, to_jsonable

if TYPE_CHECKING:
    from .engine import Engine

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


class ControlServer:
    def __init__(self, engine: "Engine", path: Path) -> None:
        self.engine = engine
        self.path = path
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.methods: dict[str, Callable[..., Awaitable[Any]]] = {
            "ping": self._ping,
            "status": self._status,
            "snapshot": self._status,
            "restart": engine.restart,
            "stop": engine.stop_service,
            "start": engine.start_service,
            "scan": self._scan,
            "chaos": engine.chaos,
            "logs": engine.logs,
            "events": self._recent_events,
            "incidents": engine.list_incidents,
            "incident": engine.incident,
            "acknowledge": engine.acknowledge,
            "silence": engine.silence,
            "unsilence": engine.unsilence,
            "silences": engine.silences,
            "plans": engine.list_plans,
            "plan": engine.plan,
            "approve": engine.approve,
            "reject": engine.reject,
            "grade": engine.grade,
            "learning": engine.learning,
            "import_learning": engine.import_learning,
            "heal_stats": engine.heal_stats,
            "ask": engine.ask,
            "confirm": engine.confirm,
        }

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
                    await _send(writer, {"id": None, "ok": False, "error": "request line too long"})
                    break
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
        except ValueError as exc:
            return {"id": None, "ok": False, "error": f"bad request: {exc}"}
        rid = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        if method == "subscribe":
            return None
        handler = self.methods.get(method) if isinstance(method, str) else None
        if handler is None:
            return {"id": rid, "ok": False, "error": f"unknown method {method!r}; known: {', '.join(sorted(self.methods))}"}
        if not isinstance(params, dict):
            return {"id": rid, "ok": False, "error": "params must be an object"}
        try:
            result = await handler(**params)
        except TypeError as exc:
            return {"id": rid, "ok": False, "error": f"bad params for {method}: {exc}"}
        except (KeyError, ValueError, RuntimeError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return {"id": rid, "ok": False, "error": str(message)}
        return {"id": rid, "ok": True, "result": to_jsonable(result)}

    async def _stream_events(self, writer: asyncio.StreamWriter) -> None:
        async with self.engine.subscribe() as events:
            async for event in events:
                await _send(writer, {"event": to_jsonable(event)})

    async def _ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "db": str(self.engine.db_path)}

    async def _status(self) -> FleetSnapshot:
        return await self.engine.snapshot()

    async def _scan(self) -> FleetSnapshot:
        return await self.engine.scan_now()

    async def _recent_events(self, limit: int = 50, service: str | None = None) -> list[dict[str, Any]]:
        return await self.engine.recent_events(limit=limit, service=service)


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
