"""The demo fleet's service program: a tiny HTTP service that can be told to misbehave on purpose.

Aurora's demo needs services whose failures are *real* (memory that really grows, processes that
really hang, zombies that really show up in ``ps``) so that diagnosis and healing are exercised
against the operating system rather than against mocks. Every fault is bounded so it can never
harm the host, and only the standard library is used so the fleet starts fast anywhere.

Run: ``python -m aurora_tui.demo.service --name NAME --port PORT [--state-dir DIR] [--upstream URL]``
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

MB, PAGE = 1024 * 1024, 4096
MAX_BODY = MB
HEADER_TIMEOUT = 10.0  # a silent client must not pin a handler forever
UPSTREAM_TIMEOUT = 0.5
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: what a real daemon returns on a bad config

Params = dict[str, float]
Undo = Callable[[], Any]
Handler = Callable[["Service", Params], "Undo | None"]
Reply = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, extra headers


class BadRequest(Exception):
    """The client sent something that is not the HTTP we speak."""


def is_loopback_peer(peer: Any) -> bool:
    """True if a socket peer address (as given by ``peername``) is a loopback address."""
    if not isinstance(peer, (tuple, list)) or not peer or not isinstance(peer[0], str):
        return False
    try:
        ip = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return False
    # An IPv4 client of a dual-stack socket shows up as ::ffff:127.0.0.1.
    return bool((getattr(ip, "ipv4_mapped", None) or ip).is_loopback)


_out = functools.partial(print, flush=True)  # a supervisor reads us through a pipe: never sit on a line
_err = functools.partial(print, file=sys.stderr, flush=True)


def _accrue(svc: Service, bucket: list[Any], rate: float, limit: int, take: Callable[[], Any],
            give_back: Callable[[Any], Any] = lambda item: None) -> Undo:
    """Take a resource into ``bucket`` ``rate`` times a second up to ``limit``; undo gives it all back."""

    async def run() -> None:
        start = time.monotonic()
        while len(bucket) < limit:
            while len(bucket) < min(limit, int(rate * (time.monotonic() - start)) + 1):
                try:
                    item = take()
                    bucket.append(await item if asyncio.iscoroutine(item) else item)
                except (OSError, RuntimeError):  # the OS said no: hold what we have, like a real leak
                    return
            await asyncio.sleep(0.05)

    task = svc.spawn(run())

    def undo() -> None:
        task.cancel()
        while bucket:
            give_back(bucket.pop())

    return undo


# --- faults ------------------------------------------------------------------------------------------
# A handler switches its fault on and returns how to switch it off; faults without a handler are
# flags that request handling reads from Service.active.


def _crash(svc: Service, p: Params) -> Undo | None:
    def die() -> None:
        _err("FATAL: crash requested")
        os._exit(int(p["code"]))

    asyncio.get_running_loop().call_later(0.05, die)  # late enough for the 200 to reach the client
    return None


def _hang(svc: Service, p: Params) -> Undo | None:
    def block() -> None:
        while True:  # stuck for good: only the Python-level signal handler gets us out of here
            time.sleep(1)

    asyncio.get_running_loop().call_later(0.05, block)
    return None


def _leak(svc: Service, p: Params) -> Undo | None:
    chunk, cap = int(p["rate_mb"] * MB / 4), int(p["max_mb"] * MB)

    def take() -> bytearray:
        block = bytearray(min(chunk, cap - sum(map(len, svc.leaked))))
        # bytearray() gets lazily mapped zero pages; one write per page makes the RSS real.
        block[::PAGE] = b"\x01" * len(range(0, len(block), PAGE))
        return block

    return _accrue(svc, svc.leaked, 4, math.ceil(cap / chunk), take)


def _cpu(svc: Service, p: Params) -> Undo | None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass  # pure Python: the GIL keeps one spinning thread to about one core

    for i in range(int(p["threads"])):
        threading.Thread(target=spin, name=f"spin-{i}", daemon=True).start()
    return stop.set


def _fds(svc: Service, p: Params) -> Undo | None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A real leak meets a limit sized for its service. Lowering our own soft limit (hosts give 20000+)
    # lets the leak reach the share Aurora watches by default without opening tens of thousands of files.
    soft = min(before[0], int(p["soft"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    # Stop short of the limit so the server itself can still accept and answer.
    limit = min(int(p["max"]), int(soft * p["percent"] / 100) - _open_fds(), soft - 64)
    give_back = _accrue(svc, svc.fds, p["rate"], max(0, limit), lambda: os.open(os.devnull, os.O_RDONLY), os.close)

    def undo() -> None:
        give_back()
        resource.setrlimit(resource.RLIMIT_NOFILE, before)

    return undo


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: count only what the fault opens
        return 0


def _conns(svc: Service, p: Params) -> Undo | None:
    async def connect() -> asyncio.StreamWriter:
        # A second listener that never answers keeps the held sockets ESTABLISHED without
        # occupying the HTTP server or tripping its idle timeout.
        if svc.sink is None:
            svc.sink = await asyncio.start_server(_hold, "127.0.0.1", 0, backlog=1024)
        port = svc.sink.sockets[0].getsockname()[1]
        return (await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2.0))[1]

    # Closing our end is enough: the listener's end sees EOF and lets go too.
    return _accrue(svc, svc.held, p["rate"], int(p["count"]), connect, lambda writer: writer.close())


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.read()  # until the other end lets go
    except OSError:
        pass
    writer.close()


def _threads(svc: Service, p: Params) -> Undo | None:
    stop = threading.Event()

    def take() -> threading.Thread:
        thread = threading.Thread(target=stop.wait, name="idle", daemon=True)
        thread.start()  # RuntimeError "can't start new thread" ends the growth
        return thread

    return _accrue(svc, svc.threads, p["rate"], int(p["max"]), take, lambda thread: stop.set())


def _zombies(svc: Service, p: Params) -> Undo | None:
    cmd = ["/bin/true"] if os.path.exists("/bin/true") else [sys.executable, "-c", "pass"]
    # subprocess only reaps children whose Popen object is gone; holding them and never calling
    # wait() keeps them zombies for as long as we live.
    return _accrue(svc, svc.zombies, 1000, int(p["count"]), lambda: subprocess.Popen(cmd), lambda z: z.wait())


def _logerrors(svc: Service, p: Params) -> Undo | None:
    async def burst() -> None:
        end, n = time.monotonic() + p["duration"], 0
        while time.monotonic() < end:
            n += 1
            _err(f"ERROR request failed: upstream timeout (req_id={random.getrandbits(48):012x})")
            if n % 10 == 0:
                _err(f'Traceback (most recent call last):\n  File "/srv/{svc.name}/handlers.py", line 88, '
                     f"in handle\n    resp = await upstream.fetch(req)\nTimeoutError: upstream timed out")
            await asyncio.sleep(1 / p["rate"])
        svc.active.pop("logerrors", None)  # a burst is over once it has run its course
        svc.undo.pop("logerrors", None)

    return svc.spawn(burst()).cancel


def _unlisten(svc: Service, p: Params) -> Undo | None:
    # The process stays alive but stops listening: connections to its port are refused.
    assert svc.server is not None
    svc.server.close()
    relisten = lambda: svc.spawn(svc.listen())  # noqa: E731
    if p["duration"] > 0:
        asyncio.get_running_loop().call_later(p["duration"], lambda: svc.switch_off("unlisten"))
    return relisten


def _orphans(svc: Service, p: Params) -> Undo | None:
    # A double fork: the middle process exits at once, so its child is re-parented away from us
    # but stays in our process group holding memory, like a forgotten background worker.
    hold = (f"import time; b = bytearray({int(p['mb'])} * 2**20); b[::4096] = b'x' * len(b[::4096]); "
            f"time.sleep({p['seconds']})")
    # The grandchild must not inherit the middle process's stdout, or reading it would never end.
    spawn = ("import subprocess, sys; d = subprocess.DEVNULL; "
             f"print(subprocess.Popen([sys.executable, '-c', {hold!r}, 'aurora-demo-orphan'], "
             "stdin=d, stdout=d, stderr=d).pid, flush=True)")
    pids: list[int] = []
    for _ in range(int(p["count"])):
        middle = subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True, timeout=10)
        pids.extend(int(line) for line in middle.stdout.split() if line.isdigit())
    svc.orphans = pids

    def undo() -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        svc.orphans = []

    return undo


def _failstart(svc: Service, p: Params) -> Undo | None:
    svc.failstart_file.write_text(f"{int(p['count'])}\n")
    return lambda: svc.failstart_file.unlink(missing_ok=True)


FAULTS: dict[str, tuple[Params, Handler | None]] = {
    "crash": ({"code": 1}, _crash),
    "hang": ({}, _hang),
    "leak": ({"rate_mb": 8, "max_mb": 400}, _leak),
    "cpu": ({"threads": 1}, _cpu),
    "errors": ({"rate": 1.0}, None),
    "ratelimit": ({"rate": 1.0}, None),
    "slow": ({"delay": 1.5}, None),
    "fds": ({"rate": 100, "max": 4000, "percent": 90, "soft": 1024}, _fds),
    "conns": ({"count": 200, "rate": 100}, _conns),
    "threads": ({"rate": 50, "max": 400}, _threads),
    "zombies": ({"count": 5}, _zombies),
    "badhealth": ({}, None),
    "logerrors": ({"rate": 20, "duration": 10.0}, _logerrors),
    "failstart": ({"count": 1}, _failstart),
    "unlisten": ({"duration": 0.0}, _unlisten),
    "orphans": ({"count": 2, "mb": 16, "seconds": 600.0}, _orphans),
    "flap": ({"period": 1.5}, None),
}
# Hard bounds per parameter: the demo must never be able to take the host down with it.
LIMITS: dict[str, tuple[float, float]] = {
    "crash.code": (0, 255), "leak.rate_mb": (1, 256), "leak.max_mb": (1, 1024), "cpu.threads": (1, 8),
    "errors.rate": (0, 1), "ratelimit.rate": (0, 1), "slow.delay": (0, 60), "fds.rate": (1, 2000),
    "fds.max": (1, 4000), "fds.percent": (1, 95), "fds.soft": (256, 1 << 20), "conns.count": (1, 1000),
    "conns.rate": (1, 1000), "threads.rate": (1, 1000),
    "threads.max": (1, 1000), "zombies.count": (1, 50), "logerrors.rate": (1, 500),
    "logerrors.duration": (0.1, 600), "failstart.count": (1, 100), "unlisten.duration": (0, 600),
    "orphans.count": (1, 10), "orphans.mb": (1, 128), "orphans.seconds": (1, 3600), "flap.period": (0.2, 60),
}
UNCLEARABLE = {"crash", "hang"}  # there is no coming back from these


def parse_params(fault: str, query: dict[str, list[str]]) -> Params:
    """A fault's defaults overridden by query parameters of the same type; ValueError if any is bad."""
    params: Params = dict(FAULTS[fault][0])
    for key, values in query.items():
        if key == "off":
            continue
        if key not in params:
            raise ValueError(f"unknown parameter {key!r} for fault {fault!r} (known: {sorted(params)})")
        kind = type(params[key])
        try:
            value = kind(values[-1])
        except ValueError:
            raise ValueError(f"parameter {key!r} must be {kind.__name__}, got {values[-1]!r}") from None
        lo, hi = LIMITS.get(f"{fault}.{key}", (0, math.inf))
        if not lo <= value <= hi:  # also rejects nan
            raise ValueError(f"parameter {key!r} must be between {lo} and {hi}, got {value}")
        params[key] = value
    return params


# --- the service -------------------------------------------------------------------------------------


class Service:
    def __init__(self, name: str, port: int, host: str, upstream: str | None, state_dir: Path) -> None:
        self.name, self.port, self.host, self.upstream = name, port, host, upstream
        self.failstart_file = state_dir / f"{name}-{port}.failstart"
        self.active: dict[str, Params] = {}
        self.undo: dict[str, Undo] = {}
        self.served = 0
        self.leaked: list[bytearray] = []
        self.fds: list[int] = []
        self.held: list[asyncio.StreamWriter] = []
        self.threads: list[threading.Thread] = []
        self.zombies: list[subprocess.Popen[bytes]] = []
        self.sink: asyncio.Server | None = None
        self.server: asyncio.Server | None = None
        self.orphans: list[int] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.started = time.monotonic()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self.tasks.discard)
        return task

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self.handle, self.host, self.port)

    async def serve(self) -> int:
        try:
            await self.listen()
        except OSError as exc:
            _err(f"{self.name}: cannot bind {self.host}:{self.port}: {exc}")
            return 1
        _out(f"{self.name} listening on {self.host}:{self.port} pid={os.getpid()}")
        # Not serve_forever(): the unlisten fault closes the server and the process must live on.
        await asyncio.Event().wait()
        return 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        extra: dict[str, str] = {}
        unread = False
        try:
            try:
                method, target = await asyncio.wait_for(read_request(reader), HEADER_TIMEOUT)
                status, payload, extra = await self.route(method, target, writer.get_extra_info("peername"))
            except BadRequest as exc:
                status, payload, unread = 400, {"error": f"bad request: {exc}"}, True
            except asyncio.TimeoutError:
                status, payload = 408, {"error": "request timeout"}
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    return  # the client left without saying anything
                status, payload = 400, {"error": "bad request: truncated"}
            except Exception as exc:  # a bug here must cost one request, never the process
                status, payload = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
            body = json.dumps(payload).encode()
            head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Type: application/json",
                    f"Content-Length: {len(body)}", "Connection: close", *map(": ".join, extra.items())]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            self.served += 1
            if unread:  # closing on unread input would reset the connection and lose our answer
                writer.write_eof()
                await asyncio.wait_for(_discard(reader), 1.0)
        except OSError:  # includes TimeoutError
            pass  # the client went away, or will not stop talking; nothing more to tell it
        finally:
            writer.close()

    async def route(self, method: str, target: str, peer: Any) -> Reply:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        if path.startswith("/fault/"):
            if not is_loopback_peer(peer):
                return 403, {"error": "faults can only be injected from loopback"}, {}
            if method != "POST":
                return 405, {"error": "use POST"}, {"Allow": "POST"}
            return self.fault(path[len("/fault/"):], query)
        if path == "/status":
            return 200, self.status(), {}
        if "hang" in self.active:
            await asyncio.Event().wait()  # never answer, even in the moment before the loop blocks
        if "slow" in self.active:
            await asyncio.sleep(self.active["slow"]["delay"])
        if "errors" in self.active and random.random() < self.active["errors"]["rate"]:
            return 500, {"error": "internal server error (injected)"}, {}
        if "ratelimit" in self.active and random.random() < self.active["ratelimit"]["rate"]:
            return 429, {"error": "too many requests (injected)"}, {"Retry-After": "1"}
        if path == "/healthz":
            return await self.health()
        if path == "/":
            return 200, {"hello": f"this is {self.name}", "see": ["/healthz", "/status"]}, {}
        return 404, {"error": f"no such path: {path}"}, {}

    async def health(self) -> Reply:
        if "flap" in self.active and int((time.monotonic() - self.started) / self.active["flap"]["period"]) % 2:
            return 503, {"status": "degraded", "service": self.name, "reason": "flapping (injected)"}, {}
        if "badhealth" in self.active:
            return 200, {"status": "degraded", "service": self.name}, {}
        problem = self.upstream and await probe(self.upstream)
        if problem:
            reason = f"upstream {self.upstream} unreachable"
            return 503, {"status": "degraded", "service": self.name, "reason": reason, "detail": problem}, {}
        return 200, {"status": "ok", "service": self.name}, {}

    def fault(self, name: str, query: dict[str, list[str]]) -> Reply:
        if name == "clear":
            cleared = [n for n in list(self.active) if n not in UNCLEARABLE]
            for n in cleared:
                self.switch_off(n)
            _out(f"{self.name} faults cleared {cleared}")
            return 200, {"cleared": cleared}, {}
        if name not in FAULTS:
            return 404, {"error": f"unknown fault {name!r}", "known": sorted(FAULTS)}, {}
        try:
            params = parse_params(name, query)
        except ValueError as exc:
            return 400, {"error": str(exc)}, {}
        if query.get("off", ["0"])[-1].lower() in ("1", "true", "yes", "on"):
            was_on = self.switch_off(name)
            _out(f"{self.name} fault {name} off")
            return 200, {"fault": name, "off": True, "was_active": was_on}, {}
        self.switch_off(name)  # re-arming restarts the fault with the new parameters
        _out(f"{self.name} fault {name} on {json.dumps(params)}")
        handler = FAULTS[name][1]
        undo = handler(self, params) if handler else None
        if undo is not None:
            self.undo[name] = undo
        self.active[name] = params
        return 200, {"fault": name, "params": params}, {}

    def switch_off(self, name: str) -> bool:
        undo = self.undo.pop(name, None)
        if undo is not None:
            undo()
        elif name == "failstart":  # armed by an earlier run of this service
            self.failstart_file.unlink(missing_ok=True)
        return self.active.pop(name, None) is not None

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "pid": os.getpid(), "port": self.port, "upstream": self.upstream,
            "uptime_s": round(time.monotonic() - self.started, 1), "faults": self.active,
            "counters": {
                "requests_served": self.served, "leaked_mb": round(sum(map(len, self.leaked)) / MB, 1),
                "fds_leaked": len(self.fds), "conns_held": len(self.held),
                "threads_spawned": len(self.threads), "zombies": len(self.zombies), "orphans": self.orphans,
            },
        }


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """Read one HTTP/1.x request (request line, headers, Content-Length body); return method and target."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest("header section too large") from None
    lines = head.decode("latin-1").split("\r\n")[:-2]
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise BadRequest("malformed request line")
    if parts[2] not in ("HTTP/1.0", "HTTP/1.1") or not parts[1].startswith("/"):
        raise BadRequest("unsupported version or target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            raise BadRequest("malformed header")
        headers[key.lower()] = value.strip()
    length = headers.get("content-length", "0")
    if "transfer-encoding" in headers or not length.isdigit() or int(length) > MAX_BODY:
        raise BadRequest("only bodies with a sane Content-Length are supported")
    await reader.readexactly(int(length))  # no route needs the body, but it must be consumed
    return parts[0], parts[1]


async def probe(url: str) -> str | None:
    """GET ``url`` with a short deadline; None if it answered 200, else what went wrong."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def fetch() -> bytes:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()

    try:
        fields = (await asyncio.wait_for(fetch(), UPSTREAM_TIMEOUT)).split()
    except asyncio.TimeoutError:
        return f"no answer within {UPSTREAM_TIMEOUT}s"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if fields[1:2] == [b"200"] else f"answered {b' '.join(fields).decode('latin-1') or 'nothing'}"


def default_state_dir() -> Path:
    env = os.environ.get("AURORA_DEMO_STATE_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"aurora-demo-state-{os.getuid()}"


def consume_failstart(path: Path) -> bool:
    """If a failstart is armed, use up one of its failures; True if this start must fail."""
    try:
        count = int(path.read_text().strip())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        count = 0  # a mangled counter is disarmed rather than trusted
    if count > 1:
        path.write_text(f"{count - 1}\n")
    else:
        path.unlink(missing_ok=True)
    return count > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aurora_tui.demo.service", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--upstream", default=None, help="http:// URL this service's /healthz depends on")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if not is_loopback_peer((args.host, 0)):
        parser.error("--host must be a loopback address: the demo never listens on the network")
    if args.upstream and (urlsplit(args.upstream).scheme != "http" or not urlsplit(args.upstream).hostname):
        parser.error("--upstream must be an http:// URL")
    state_dir = args.state_dir or default_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    name = args.name

    if consume_failstart(state_dir / f"{name}-{args.port}.failstart"):
        _err(f"ConfigError: invalid value for 'workers' in {name}.conf: expected an integer, got 'many'")
        return EXIT_CONFIG

    def on_signal(signum: int, frame: Any) -> None:
        # os.write, not print: the signal may land in the middle of a print to the same stream.
        os.write(1, f"{name} shutting down\n".encode())
        os._exit(0)  # prompt, and no waiting on a loop that the hang fault may have blocked

    # signal.signal rather than loop.add_signal_handler: the latter is only delivered by a running
    # loop, and the hang fault blocks it on purpose.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 4096):  # headroom so the fds and conns faults fit side by side
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    return asyncio.run(Service(name, args.port, args.host, args.upstream, state_dir).serve())


if __name__ == "__main__":
    sys.exit(main())
