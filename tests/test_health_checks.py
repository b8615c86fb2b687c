"""Health checks against real servers (tests/health_servers.py): HTTP and HTTPS with expected statuses
and headers, TCP send/expect against peers that answer right, wrong or never, exec checks that pass,
fail or hang; then, through the real engine, what each failure is diagnosed as."""
from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from aurora_tui.core.config import Config, HealthCheck, parse_config
from aurora_tui.core.health import health_check

from .health_servers import line_handler, static_server
from .helpers import async_wait_until, free_port, gone, wait_until
from .live import incident_for, patterns_seen, running, scans_pass

pytestmark = pytest.mark.timeout(90)

PY = sys.executable
SERVERS = Path(__file__).with_name("health_servers.py")


def site(tmp_path: Path) -> Path:
    """A document root: a health file, a directory with an index, and one without."""
    root = tmp_path / "site"
    (root / "status").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "health.txt").write_text("ok\n")
    (root / "status" / "index.html").write_text("<p>ok</p>\n")
    return root


@contextlib.contextmanager
def serving(root: Path, **options) -> Iterator[int]:
    server = static_server(root, **options)
    thread = threading.Thread(target=server.serve_forever, name="static-server", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.asynccontextmanager
async def tcp_peer(handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def checks_from(text: str, tmp_path: Path | None = None) -> list[HealthCheck]:
    """The health checks of config text with one [[service]] per ``health = ...`` line (port 1)."""
    services = [f'[[service]]\nname = "s{i}"\ncommand = [{json.dumps(PY)}]\nport = {i + 1}\n{line}\n' for i, line in enumerate(text.strip().splitlines())]
    config = parse_config("\n".join(services), "checks.toml", base_dir=tmp_path)
    return [svc.health for svc in config.services]


# --- http --------------------------------------------------------------------------------------------


async def test_http_status_expectations_against_an_nginx_style_server(tmp_path):
    with serving(site(tmp_path)) as port:
        async def check(path: str, **kw) -> object:
            return await health_check(port, HealthCheck("http", path, **kw))

        ok = await check("/health.txt", expect_body="ok")
        assert ok.ok and ok.status_code == 200
        missing = await check("/gone.txt")
        assert not missing.ok and missing.status_code == 404
        assert missing.error == "HTTP 404, expected 200" and "404 Not Found" in missing.body_excerpt
        forbidden = await check("/empty/")
        assert not forbidden.ok and forbidden.status_code == 403 and "403 Forbidden" in forbidden.body_excerpt
        moved = await check("/status")
        assert not moved.ok and moved.status_code == 301 and "(Location: /status/)" in moved.error
        # A class, a list, or both; whatever is not expected fails.
        assert (await check("/status", expect_status="3xx")).ok
        assert (await check("/gone.txt", expect_status=(200, 404))).ok
        assert (await check("/status/", expect_status=(204, "2xx"), expect_body="ok")).ok
        wrong_class = await check("/health.txt", expect_status="4xx")
        assert not wrong_class.ok and wrong_class.error == "HTTP 200, expected 4xx"


async def test_http_headers_from_the_config_reach_the_server(tmp_path):
    plain, with_token, wrong_token = checks_from("""
        health = { http = "/health.txt" }
        health = { http = "/health.txt", headers = { X-Health-Token = "s3cret" } }
        health = { http = "/health.txt", headers = { X-Health-Token = "guess" } }
    """)
    with serving(site(tmp_path), required=("X-Health-Token", "s3cret")) as port:
        denied = await health_check(port, plain)
        assert not denied.ok and denied.status_code == 401
        assert (await health_check(port, with_token)).ok
        assert (await health_check(port, wrong_token)).status_code == 401


def _openssl_certificate(cert: Path, key: Path) -> bool:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    return True


def _cryptography_certificate(cert: Path, key: Path) -> bool:
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    built = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(names, critical=False).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return True


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made now."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if not (_openssl_certificate(cert, key) or _cryptography_certificate(cert, key)):
        pytest.skip("no openssl binary and no cryptography package to make a self-signed certificate with")
    return cert, key


async def test_https_verifies_the_certificate_unless_told_not_to(tmp_path, certificate, monkeypatch):
    insecure, verified, by_name, wrong_name = checks_from("""
        health = { http = "/health.txt", scheme = "https", verify_tls = false, expect_body = "ok" }
        health = { http = "/health.txt", scheme = "https" }
        health = { http = "/health.txt", scheme = "https", headers = { Host = "localhost" } }
        health = { http = "/health.txt", scheme = "https", headers = { Host = "www.example.com" } }
    """)
    assert verified.verify_tls is True  # the default
    with serving(site(tmp_path), tls=certificate) as port:
        assert (await health_check(port, insecure)).ok
        untrusted = await health_check(port, verified)
        assert not untrusted.ok and untrusted.status_code is None and "certificate verify failed" in untrusted.error
        # Trusted once its CA is the system's (OpenSSL reads SSL_CERT_FILE), and then checked by name:
        # the address, or the Host header's name, must be in the certificate.
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        assert (await health_check(port, verified)).ok
        assert (await health_check(port, by_name)).ok
        mismatch = await health_check(port, wrong_name)
        assert not mismatch.ok and "www.example.com" in mismatch.error


# --- tcp ---------------------------------------------------------------------------------------------


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, reads, never says a word (until the other side hangs up)."""
    await reader.read()
    writer.close()


async def test_tcp_send_expect_tells_silence_from_a_wrong_answer():
    ping = HealthCheck("tcp", send="PING\r\n", expect="+PONG", timeout=0.5)
    async with tcp_peer(line_handler({})) as port:
        right = await health_check(port, ping)
        assert right.ok and right.body_excerpt == "+PONG\r\n"
    async with tcp_peer(line_handler({"busy": True})) as port:
        wrong = await health_check(port, ping)
        assert not wrong.ok and wrong.error.startswith("answer does not contain '+PONG'")
        assert wrong.body_excerpt.startswith("-BUSY Redis is busy")
    async with tcp_peer(_silent) as port:
        # Connecting proves nothing: the kernel accepts for a process that never answers.
        assert (await health_check(port, HealthCheck("tcp", timeout=0.5))).ok
        silent = await health_check(port, ping)
        assert not silent.ok and silent.body_excerpt == ""
        assert silent.error == "timed out after 0.5s with no answer to 'PING\\r\\n'"


async def test_tcp_escapes_in_basic_and_literal_strings_send_the_same_bytes():
    received: list[bytes] = []

    async def recorder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"PING\r\n"))
        writer.write(b"+PONG\r\n")
        await writer.drain()
        writer.close()

    checks = checks_from(r"""
        health = { tcp = true, send = "PING\r\n", expect = "+PONG" }
        health = { tcp = true, send = 'PING\r\n', expect = '+PONG\r\n' }
        health = { tcp = true, send = '\x2a1\r\n$4\r\nPING\r\n', expect = "+PONG" }
    """)
    async with tcp_peer(recorder) as port:
        for check in checks:
            assert (await health_check(port, check)).ok, check
    assert received == [b"PING\r\n", b"PING\r\n", b"*1\r\n$4\r\nPING\r\n"]


# --- exec --------------------------------------------------------------------------------------------


async def test_exec_exit_status_and_output():
    ok = await health_check(None, HealthCheck("exec", exec=(PY, "-c", "print('127.0.0.1:5432 - accepting connections')")))
    assert ok.ok and ok.body_excerpt == "127.0.0.1:5432 - accepting connections"
    failed = await health_check(None, HealthCheck("exec", exec=(PY, "-c", "import sys; sys.exit('127.0.0.1:5432 - no response')")))
    assert not failed.ok and failed.body_excerpt == "127.0.0.1:5432 - no response"
    assert failed.error == "check exited with status 1: 127.0.0.1:5432 - no response"
    echo = shutil.which("echo")
    assert echo is not None
    # No shell: what looks like shell syntax reaches the program as it is.
    literal = await health_check(None, HealthCheck("exec", exec=(echo, "$HOME; echo pwned")))
    assert literal.ok and literal.body_excerpt == "$HOME; echo pwned"
    missing = await health_check(None, HealthCheck("exec", exec=("/nonexistent/pg_isready",)))
    assert not missing.ok and "cannot run" in missing.error


HANGS = """
import subprocess, sys
child = subprocess.Popen(["sleep", "600"])
with open(sys.argv[1], "w") as f:
    f.write(f"{__import__('os').getpid()} {child.pid}")
print("waiting for the database", flush=True)
child.wait()
"""

LEAVES_A_CHILD = """
import subprocess, sys
child = subprocess.Popen(["sleep", "600"])
with open(sys.argv[1], "w") as f:
    f.write(f"{__import__('os').getpid()} {child.pid}")
print("ok", flush=True)
"""


async def test_exec_timeout_kills_the_whole_group_and_reaps(tmp_path):
    pids = tmp_path / "pids"
    result = await health_check(None, HealthCheck("exec", exec=(PY, "-c", HANGS, str(pids)), timeout=3.0))
    assert not result.ok and result.error == "timed out after 3s; killed its process group"
    assert result.body_excerpt == "waiting for the database"
    parent, child = map(int, pids.read_text().split())
    wait_until(lambda: gone(parent) and gone(child), timeout=10, what="the check and its child to be gone")


async def test_exec_leaves_nothing_behind_after_a_pass(tmp_path):
    pids = tmp_path / "pids"
    result = await health_check(None, HealthCheck("exec", exec=(PY, "-c", LEAVES_A_CHILD, str(pids))))
    assert result.ok and result.body_excerpt == "ok"
    parent, child = map(int, pids.read_text().split())
    wait_until(lambda: gone(parent) and gone(child), timeout=10, what="the check's leftover child to be gone")


# --- through the engine --------------------------------------------------------------------------------


def fleet(tmp_path: Path, *services: str, interval: float = 0.4) -> Config:
    text = f'[aurora]\ninterval = {interval}\ndb = "aurora.db"\nlog_dir = "logs"\n\n' + "\n".join(services)
    return parse_config(text, str(tmp_path / "fleet.toml"), base_dir=tmp_path)


def service(name: str, command: list[str], health: str, port: int | None = None) -> str:
    lines = [f'[[service]]\nname = "{name}"', f"command = {json.dumps(command)}", f"health = {health}",
             "start_grace = 5", "stop_timeout = 3", "restart_delay = 0.1"]
    if port is not None:
        lines.append(f"port = {port}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("health_path", "remove", "code"), [("/health.txt", "health.txt", 404), ("/status/", "status/index.html", 403)])
async def test_a_wrong_status_is_diagnosed_and_escalated_not_restarted(tmp_path, health_path, remove, code):
    root, port = site(tmp_path), free_port()
    health = f'{{ http = "{health_path}", expect_status = "2xx", expect_body = "ok", timeout = 1 }}'
    config = fleet(tmp_path, service("web", [PY, str(SERVERS), "static", str(root), str(port)], health, port))
    async with running(config) as engine:
        pid = engine.fleet.runners["web"].pid
        (root / remove).unlink()  # content lost (404) or an index gone from a directory (403)
        incident = await incident_for(engine, "web", "http_unexpected_status")
        evidence = incident.evidence
        assert evidence["status_codes"][-1] == code and evidence["expected"] == "2xx"
        assert str(code) in evidence["body_excerpt"] and f"http://127.0.0.1:{port}{health_path}" in evidence["check"]
        assert incident.summary.startswith(f"web answered HTTP {code} where 2xx was expected to ")

        async def plan():
            plans = [p for p in await engine.list_plans(status=None) if p.incident_id == incident.id]
            return plans[0] if plans else None

        escalation = await async_wait_until(plan, what="the plan for the wrong status")
        assert escalation.fix == "notify"
        await scans_pass(engine, 3)
        # One diagnosis (the body is wrong too, but that is the same cause), and nobody restarted nginx.
        assert await patterns_seen(engine, "web") == {"http_unexpected_status"}
        assert engine.fleet.runners["web"].pid == pid and engine.fleet.runners["web"].restarts == 0
        (root / remove).write_text("ok\n")

        async def resolved():
            return (await engine.incident(incident.id)).status == "resolved"

        await async_wait_until(resolved, timeout=30, what="the incident to close once the content is back")


async def _say(port: int, line: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(line)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


def line_service(port: int, timeout: float = 0.5) -> str:
    return service("cache", [PY, str(SERVERS), "line", str(port)], f'{{ tcp = true, send = "PING\\r\\n", expect = "+PONG", timeout = {timeout} }}', port)


async def answering_again(engine, old_pid: int) -> bool:
    status = (await engine.snapshot()).service("cache")
    return status.pid not in (None, old_pid) and bool(status.healthy)


@pytest.mark.parametrize(("command", "state"), [(b"DEBUG SPIN\r\n", "running"), (b"DEBUG SLEEP\r\n", "sleeping")])
async def test_a_peer_that_accepts_but_never_answers_is_hung(tmp_path, command, state):
    port = free_port()
    async with running(fleet(tmp_path, line_service(port))) as engine:
        pid = engine.fleet.runners["cache"].pid
        assert await _say(port, command) == b"+OK\r\n"  # from now on its only thread never comes back
        incident = await incident_for(engine, "cache", "hung")
        evidence = incident.evidence
        assert evidence["pid"] == pid and evidence["answer"] == ""
        assert state in evidence["process_states"] and "stopped" not in evidence["process_states"]
        assert "send 'PING\\r\\n'" in evidence["check"] and evidence["health_error"].startswith("timed out")
        # Healed as a hang: terminated and started again, and the new process answers.
        await async_wait_until(lambda: answering_again(engine, pid), timeout=60, what="a new process that answers PING")
        assert "health_content_mismatch" not in await patterns_seen(engine, "cache")


async def test_a_peer_that_answers_something_else_is_wrong_content_and_healed(tmp_path):
    port = free_port()
    async with running(fleet(tmp_path, line_service(port))) as engine:
        pid = engine.fleet.runners["cache"].pid
        assert await _say(port, b"SCRIPT BUSY\r\n") == b"+OK\r\n"
        incident = await incident_for(engine, "cache", "health_content_mismatch")
        assert incident.evidence["body_excerpt"].startswith("-BUSY Redis is busy")
        assert incident.evidence["expected"] == "+PONG"
        assert incident.summary.startswith("cache answered '-BUSY Redis is busy")
        await async_wait_until(lambda: answering_again(engine, pid), timeout=60, what="a restarted process that answers PING")
        assert await _say(port, b"PING\r\n") == b"+PONG\r\n"
        assert "hung" not in await patterns_seen(engine, "cache")


async def test_an_exec_check_decides_health_without_a_port(tmp_path):
    ready = tmp_path / "ready"
    ready.write_text("")
    test_program = shutil.which("test")
    assert test_program is not None
    health = f"{{ exec = {json.dumps([test_program, '-f', str(ready)])}, timeout = 2 }}"
    config = fleet(tmp_path, service("worker", ["sleep", "600"], health))
    assert config.service("worker").port is None
    async with running(config) as engine:
        async def status():
            return (await engine.snapshot()).service("worker")

        assert (await status()).healthy
        ready.unlink()
        incident = await incident_for(engine, "worker", "health_content_mismatch")
        assert incident.evidence["health_error"] == "check exited with status 1"
        assert incident.evidence["expected"] == "exit status 0"
        assert not (await status()).healthy
        ready.write_text("")

        async def healthy_again():
            return (await status()).healthy and (await engine.incident(incident.id)).status == "resolved"

        await async_wait_until(healthy_again, timeout=30, what="healthy once the check passes again")
