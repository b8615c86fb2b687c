"""Health checks, run on the loop: HTTP(S), TCP (optionally send and expect), and exec.

Each returns a :class:`HealthResult` saying what it saw, and never acts. How a failed check's error
text begins tells the detectors what kind of failure it was (see the constants in :mod:`.model`): a
check that got no answer in time "timed out", one that got the wrong answer names what it wanted.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field

from .config import HealthCheck
from .config_model import decode_escapes
from .model import EXEC_FAILED, TIMED_OUT, WRONG_ANSWER, WRONG_BODY, HealthResult

BODY_EXCERPT = 200
MAX_BODY = 64 * 1024
# A tcp peer that keeps talking without ever saying the expected text is cut off here.
MAX_ANSWER = 16 * 1024
# What an exec check's output keeps: its end, where a failing command says why.
OUTPUT_KEPT = 4 * 1024
USER_AGENT = "aurora-health-check"


async def health_check(port: int | None, check: HealthCheck) -> HealthResult | None:
    """The check's verdict, or None when there is nothing to check (no check, or no port to check)."""
    if check.kind == "exec":
        return await exec_check(check)
    if check.kind == "none" or port is None:
        return None
    if check.kind == "tcp":
        return await tcp_check(port, check)
    return await http_check(port, check)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"{TIMED_OUT} after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


def _excerpt(data: bytes) -> str:
    return data[:BODY_EXCERPT].decode("utf-8", errors="backslashreplace")


# --- http ------------------------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    body: str
    latency_ms: float
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


def _tls_context(verify: bool) -> ssl.SSLContext:
    # Made per check, not cached: a CA bundle renewed on the host (or SSL_CERT_FILE) is seen at once.
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _host_name(netloc: str) -> str:
    """The host part of a Host header: "[::1]:8443" -> "::1", "example.com:8443" -> "example.com"."""
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _request(method: str, path: str, host_header: str, extra: tuple[tuple[str, str], ...]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if not any(name.lower() == "host" for name, _ in extra):
        lines.append(f"Host: {host_header}")
    if not any(name.lower() == "user-agent" for name, _ in extra):
        lines.append(f"User-Agent: {USER_AGENT}")
    lines += [f"{name}: {value}" for name, value in extra]
    lines += ["Content-Length: 0", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1", errors="replace")


def _dechunk(body: bytes) -> bytes:
    """A chunked body's data (as much of it as arrived)."""
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def _parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {status_line[:60]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    return int(parts[1]), headers, body


async def _exchange_tls(host: str, port: int, request: bytes, tls: ssl.SSLContext, server_name: str | None) -> bytes:
    reader, writer = await asyncio.open_connection(host, port, ssl=tls, server_hostname=server_name)
    try:
        writer.write(request)
        await writer.drain()
        raw = b""
        while len(raw) < MAX_BODY:
            more = await reader.read(MAX_BODY - len(raw))
            if not more:
                break
            raw += more
        return raw
    finally:
        writer.close()


async def _exchange_plain(host: str, port: int, request: bytes) -> bytes:
    """Connect, ask, and read to the end, on a bare non-blocking socket: a check every second on every
    service is most of what the engine does, and a stream's transport, protocol and reader cost several
    times what the exchange itself does."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, request)
        raw = b""
        while len(raw) < MAX_BODY:
            more = await loop.sock_recv(sock, MAX_BODY - len(raw))
            if not more:
                break
            raw += more
        return raw
    finally:
        sock.close()


async def http_request(
    port: int, path: str, timeout: float, host: str = "127.0.0.1", method: str = "GET", *,
    tls: ssl.SSLContext | None = None, headers: tuple[tuple[str, str], ...] = (),
) -> HttpAnswer:
    """One HTTP/1.1 request with ``Connection: close``, read to its end (at most MAX_BODY)."""
    start = time.perf_counter()
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    host_header = next((value for name, value in headers if name.lower() == "host"), netloc)
    # With TLS, the name the certificate must carry is the one the request is for.
    server_name = _host_name(host_header) if tls else None

    request = _request(method, path, host_header, headers)
    if tls is not None:
        raw = await asyncio.wait_for(_exchange_tls(host, port, request, tls, server_name), timeout)
    else:
        async with asyncio.timeout(timeout):
            raw = await _exchange_plain(host, port, request)
    status, answer_headers, body = _parse_response(raw)
    return HttpAnswer(status, body.decode("utf-8", errors="replace"), (time.perf_counter() - start) * 1000, answer_headers)


async def http_get(
    port: int, path: str, timeout: float, host: str = "127.0.0.1", method: str = "GET"
) -> tuple[int, str, float]:
    """A plain HTTP request to a local port. Returns (status, body, latency in ms)."""
    answer = await http_request(port, path, timeout, host, method)
    return answer.status, answer.body, answer.latency_ms


async def http_check(port: int, check: HealthCheck) -> HealthResult:
    tls = _tls_context(check.verify_tls) if check.scheme == "https" else None
    try:
        answer = await http_request(port, check.path or "/", check.timeout, check.host, tls=tls, headers=check.headers)
    except (OSError, ValueError, asyncio.TimeoutError) as exc:
        return HealthResult("http", False, error=_describe(exc, check.timeout))
    excerpt = answer.body[:BODY_EXCERPT]
    status, latency = answer.status, answer.latency_ms
    if not check.expects_status(status):
        # Where a redirect points is most of the diagnosis (http -> https, a missing trailing slash).
        location = answer.headers.get("location")
        where = f" (Location: {location[:120]})" if location else ""
        return HealthResult("http", False, latency, status, excerpt, f"HTTP {status}, expected {check.expected_statuses()}{where}")
    if check.expect_body is not None and check.expect_body not in answer.body:
        return HealthResult("http", False, latency, status, excerpt, f"{WRONG_BODY} {check.expect_body!r}")
    return HealthResult("http", True, latency, status, excerpt)


# --- tcp -------------------------------------------------------------------------------------------


async def _read_until(reader: asyncio.StreamReader, expected: bytes, deadline: float) -> tuple[bytes, str]:
    """What the peer said, and why reading stopped: "seen", "closed", "full" or "timeout"."""
    answer = b""
    while expected not in answer:
        if len(answer) >= MAX_ANSWER:
            return answer, "full"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return answer, "timeout"
        try:
            chunk = await asyncio.wait_for(reader.read(4096), remaining)
        except asyncio.TimeoutError:
            return answer, "timeout"
        if not chunk:
            return answer, "closed"
        answer += chunk
    return answer, "seen"


async def tcp_check(port: int, check: HealthCheck) -> HealthResult:
    """Connect; with ``send``/``expect``, also say something and wait for the expected answer.

    A kernel accepts connections on a listening socket's backlog even when the process behind it
    is stuck, so only an answer proves the service is there. Silence until the timeout is a hang;
    anything else said instead is a wrong answer, kept as evidence."""
    start = time.perf_counter()
    deadline = time.monotonic() + check.timeout
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(check.host, port), check.timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return HealthResult("tcp", False, error=_describe(exc, check.timeout))
    try:
        if check.expect is None:
            return HealthResult("tcp", True, latency_ms=(time.perf_counter() - start) * 1000)
        if check.send is not None:
            writer.write(decode_escapes(check.send))
            await asyncio.wait_for(writer.drain(), max(0.0, deadline - time.monotonic()))
        answer, why = await _read_until(reader, decode_escapes(check.expect), deadline)
    except (OSError, asyncio.TimeoutError) as exc:
        return HealthResult("tcp", False, error=_describe(exc, check.timeout))
    finally:
        writer.close()
    if why == "seen":
        return HealthResult("tcp", True, (time.perf_counter() - start) * 1000, body_excerpt=_excerpt(answer))
    # No latency for a failure: waiting out the timeout says nothing about how fast the service is.
    asked = f" to {check.send!r}" if check.send is not None else ""
    if not answer and why == "timeout":
        return HealthResult("tcp", False, body_excerpt="", error=f"{TIMED_OUT} after {check.timeout:g}s with no answer{asked}")
    said = "closed the connection without a word" if not answer else f"answered {_excerpt(answer)[:80]!r}{asked}"
    return HealthResult("tcp", False, body_excerpt=_excerpt(answer), error=f"{WRONG_ANSWER} {check.expect!r}: {said}")


# --- exec ------------------------------------------------------------------------------------------


class _CheckProtocol(asyncio.SubprocessProtocol):
    """Keeps the end of what an exec check writes, and says when it exited and when its pipe closed.

    Its exit is watched, not ``Process.wait()``: that waits for the pipe too, which anything the
    check started in the background may hold open long after the check itself is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.output = b""

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        # Read as it comes and only the end kept: a check never blocks on a full pipe.
        self.output = (self.output + data)[-OUTPUT_KEPT:]

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def exec_check(check: HealthCheck) -> HealthResult:
    """Run the check's argv (never through a shell) in a session of its own; exit 0 means healthy.

    At its timeout the whole process group is killed, and the check reaped. Whatever the command
    left behind in its group is killed too: a health check must not leave processes running."""
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _CheckProtocol(loop), *check.exec, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        return HealthResult("exec", False, error=f"cannot run {check.exec[0]!r}: {exc.strerror or exc}")
    try:
        done, _ = await asyncio.wait({protocol.exited}, timeout=check.timeout)
        timed_out = not done
        latency = None if timed_out else (time.perf_counter() - start) * 1000
    finally:
        # Before an exit the leader is not reaped, so its group id names no one else; after one, the
        # id cannot be reused while anything the check left in its group still lives.
        _kill_group(transport.get_pid())
        await protocol.exited  # reaped by the loop's child watcher
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.closed), 1.0)
        transport.close()
    text = protocol.output.decode("utf-8", errors="backslashreplace").strip()[-BODY_EXCERPT:]
    if timed_out:
        return HealthResult("exec", False, latency, body_excerpt=text, error=f"{TIMED_OUT} after {check.timeout:g}s; killed its process group")
    code = transport.get_returncode()
    if code == 0:
        return HealthResult("exec", True, latency, body_excerpt=text)
    last_line = f": {text.splitlines()[-1][:120]}" if text else ""
    return HealthResult("exec", False, latency, body_excerpt=text, error=f"{EXEC_FAILED} with {_exit_text(code)}{last_line}")


def _exit_text(code: int | None) -> str:
    if code is None or code >= 0:
        return f"status {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"
