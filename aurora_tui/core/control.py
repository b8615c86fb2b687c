"""The control socket: JSON lines over a Unix socket next to the database (``<db>.sock``, mode 0600).

A request is ``{"id": 1, "method": "status", "params": {...}}``; the answer is ``{"id": 1, "ok": true,
"result": ..., "api": 1}`` or ``{"id": 1, "ok": false, "error": "...", "api": 1}``. ``subscribe`` turns the
connection into a stream of ``{"event": {...}, "api": 1}`` lines. The method table is derived from the
one declaration of :class:`~aurora_tui.core.api.EngineAPI`; nothing a client sends is ever executed.
Whatever a client sends, it gets one answer per line: a bad line (not JSON, nested too deeply, over
MAX_LINE, an id that is not a 64-bit integer, params that do not fit the declared types) is an error
answer, never a dropped connection or a traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import socket
import types
import typing
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from .api import API_VERSION, EngineAPI, RpcMethod, rpc_methods
from .model import Event, FleetSnapshot, from_jsonable, to_jsonable

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20
# Clients that may wait to be accepted at once (the kernel caps it at net.core.somaxconn); a burst of CLI
# calls beyond the backlog would be refused outright by a Unix socket.
BACKLOG = 1024
# Request ids are echoed back; beyond 64 bits most clients (and JSON readers) can no longer tell them apart.
MAX_ID = 2**63 - 1
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
        self._bound: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket file this server made
        self._clients: set[asyncio.Task[None]] = set()
        self.methods = method_table(engine)
        self.declared = {wire: m for m in rpc_methods() for wire in (m.wire, *m.aliases)}

    async def start(self) -> None:
        # Only the engine holding the database lock gets here, and it has checked that nobody answers
        # on this path (see EngineLock), so a leftover socket file is stale.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Linux gives the socket file the socket inode's mode: 0600 from the start, without touching
            # the process-wide umask.
            os.fchmod(sock.fileno(), 0o600)
            with reachable(self.path) as where:
                sock.bind(where)
            os.chmod(self.path, 0o600)
            st = os.lstat(self.path)
            self._bound = (st.st_dev, st.st_ino)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE, backlog=BACKLOG)
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        self._unlink_own_socket()

    def _unlink_own_socket(self) -> None:
        """Remove the socket file only if it is still the one this server bound: another engine may have
        put its own there since (after ours was deleted), and its clients must keep reaching it."""
        bound, self._bound = self._bound, None
        if bound is None:
            return
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) != bound:
            log.warning("not removing %s: it is no longer this engine's socket", self.path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                line = await _read_line(reader)
                if line is None:
                    break
                if line is TOO_LONG:
                    await _send(writer, _error(None, f"request line too long (over {MAX_LINE} bytes)"))
                    continue
                reply = await self._handle(line)
                if reply is None:  # subscribed: the connection now carries events until it closes
                    await self._stream_events(writer)
                    break
                await _send(writer, reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # the boundary: one broken connection never prints a traceback
            log.warning("control connection failed: %r", exc)
        finally:
            self._clients.discard(task)
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any] | None:
        try:
            return await self._answer(line)
        except RecursionError:
            return _error(None, "bad request: nested too deeply")
        except Exception as exc:  # the boundary: whatever was sent, an answer goes back
            log.warning("control request failed: %r", exc)
            return _error(None, f"request failed: {type(exc).__name__}")

    async def _answer(self, line: bytes) -> dict[str, Any] | None:
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
            return _error(None, f"bad request: id must be an integer, got {_kind(rid)}")
        if rid is not None and abs(rid) > MAX_ID:
            return _error(None, "bad request: id must be an integer of at most 64 bits")
        method = request.get("method")
        params = request.get("params") or {}
        if method == "subscribe":
            return None
        handler = self.methods.get(method) if isinstance(method, str) else None
        if handler is None:
            named = repr(method[:80]) if isinstance(method, str) else _kind(method)
            return _error(rid, f"unknown method {named}; known: {', '.join(sorted(self.methods))}")
        if not isinstance(params, dict):
            return _error(rid, "params must be an object")
        problem = params_problem(self.declared[method], params)
        if problem:
            return _error(rid, f"bad params for {method}: {problem}")
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


def params_problem(method: RpcMethod, params: dict[str, Any]) -> str | None:
    """What is wrong with ``params`` for the declared ``method`` (names and JSON types), or None."""
    try:
        method.signature.bind(None, **params)
    except TypeError as exc:
        return str(exc)
    hints = _param_hints(method.name)
    for name, value in params.items():
        hint = hints.get(name, Any)
        if not _fits(value, hint):
            return f"{name} must be {_type_name(hint)}, got {_kind(value)}"
    return None


@functools.cache
def _param_hints(name: str) -> dict[str, Any]:
    return typing.get_type_hints(getattr(EngineAPI, name))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a decoded JSON value is of the declared type (types the wire cannot carry pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return abs(value) <= MAX_ID if isinstance(value, int) else math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(v, args[1]) for v in value.values())
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    return True


def _type_name(hint: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false", type(None): "null"}
    if hint in names:
        return names[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if origin is dict:
        return f"an object of {_type_name(args[1]).removeprefix('a ').removeprefix('an ')}s"
    if origin is list:
        return "an array"
    return str(hint)


def _error(rid: Any, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": message, "api": API_VERSION}


def _kind(value: Any) -> str:
    """A JSON value's kind for an error message, never its (possibly huge) text."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return "NaN" if value != value else f"number {value!r}"
    if isinstance(value, int):
        return f"integer {value}" if abs(value) <= MAX_ID else "an integer beyond 64 bits"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


class _TooLong(bytes):
    pass


TOO_LONG = _TooLong(b"")


async def _read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next request line; None once the client has gone; TOO_LONG for a line over MAX_LINE, read
    to its end and dropped, so that it gets exactly one answer and the next line is read whole."""
    too_long = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            too_long = True
            await reader.readexactly(exc.consumed)
            continue
        except asyncio.IncompleteReadError as exc:  # the client closed; a last line may lack its newline
            if too_long:
                return TOO_LONG
            return exc.partial or None
        return TOO_LONG if too_long else line


def _encode(message: dict[str, Any]) -> bytes:
    try:
        return json.dumps(message, default=str).encode() + b"\n"
    except (ValueError, TypeError, RecursionError) as exc:
        log.warning("an answer could not be encoded: %r", exc)
        return json.dumps(_error(message.get("id"), f"the answer could not be encoded: {exc}")).encode() + b"\n"


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(_encode(message))
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
        except PermissionError:
            raise NoEngine(f"not allowed to reach the engine on {self.path.with_suffix('')}: {self.path} is another user's") from None

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
        if not isinstance(reply, dict):
            raise NoEngine(f"what answers on {self.path} is not an Aurora engine")
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
