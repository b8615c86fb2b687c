"""The demo service's faults, observed through the operating system on real processes."""
from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aurora_tui.demo.service import UPSTREAM_TIMEOUT, is_loopback_peer, parse_params
from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


class Svc:
    def __init__(self, proc: subprocess.Popen[bytes], name: str, port: int, log: Path) -> None:
        self.proc, self.name, self.port, self.log = proc, name, port, log
        self.ps = psutil.Process(proc.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, method: str, path: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, timeout)

    def fault(self, spec: str) -> dict:
        status, _, body = self.request("POST", f"/fault/{spec}")
        assert status == 200, body
        return json.loads(body)

    def status(self) -> dict:
        return json.loads(self.get("/status")[2])

    def exit_code(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def spawn(tmp_path: Path):
    """Start services as real processes, each in its own session; SIGKILL every group at teardown."""
    started: list[tuple[subprocess.Popen[bytes], object]] = []

    def start(name: str = "svc", *extra: str, port: int | None = None, ready: bool = True) -> Svc:
        port = port or free_port()
        log = tmp_path / f"{name}-{len(started)}.log"
        out = open(log, "wb")
        cmd = [sys.executable, "-m", "aurora_tui.demo.service", "--name", name, "--port", str(port),
               "--state-dir", str(tmp_path / "state"), *extra]
        proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
        started.append((proc, out))
        svc = Svc(proc, name, port, log)
        if ready:
            wait_until(lambda: "listening on" in svc.output() or proc.poll() is not None, 30, what="banner")
            assert proc.poll() is None, svc.output()
        return svc

    yield start
    for proc, out in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        out.close()


def test_banner_health_root_and_status(spawn) -> None:
    svc = spawn("alpha")
    assert re.search(rf"^alpha listening on 127\.0\.0\.1:{svc.port} pid={svc.proc.pid}$", svc.output(), re.M)
    status, headers, body = svc.get("/healthz")
    assert status == 200 and body == b'{"status": "ok", "service": "alpha"}'
    assert headers["Connection"] == "close" and headers["Content-Length"] == str(len(body))
    assert svc.get("/")[0] == 200 and svc.get("/nope")[0] == 404
    info = svc.status()
    assert (info["pid"], info["name"], info["port"], info["faults"]) == (svc.proc.pid, "alpha", svc.port, {})
    assert info["counters"]["requests_served"] >= 3


def test_listens_on_loopback_only(spawn) -> None:
    svc = spawn()
    listening = [c.laddr for c in svc.ps.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert listening == [("127.0.0.1", svc.port)]


def test_garbage_requests_get_400_and_never_crash(spawn) -> None:
    svc = spawn()
    garbage = [
        b"\x00\xff garbage\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"a" * 4_000_000 + b"\r\n\r\n",  # far over the header limit
        b"half a request",
    ]
    for raw in garbage:
        with socket.create_connection(("127.0.0.1", svc.port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: s.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 400 "), (raw[:40], answer)
    socket.create_connection(("127.0.0.1", svc.port), timeout=5).close()  # connect and leave silently
    assert svc.get("/healthz")[0] == 200 and svc.proc.poll() is None


def test_fault_api_errors(spawn) -> None:
    svc = spawn()
    status, _, body = svc.request("POST", "/fault/nosuch")
    assert status == 404 and "leak" in json.loads(body)["known"]
    for bad in ("leak?rate_mb=lots", "leak?colour=red", "errors?rate=2", "cpu?threads=0", "slow?delay=nan"):
        assert svc.request("POST", f"/fault/{bad}")[0] == 400, bad
    assert svc.get("/fault/errors")[0] == 405
    assert svc.status()["faults"] == {}


def test_peer_check_and_param_parsing() -> None:
    assert is_loopback_peer(("127.0.0.1", 5000)) and is_loopback_peer(("127.8.9.1", 1))
    assert is_loopback_peer(("::1", 5000, 0, 0)) and is_loopback_peer(("::ffff:127.0.0.1", 5000, 0, 0))
    outside = [("10.0.0.5", 5000), ("192.168.1.2", 1), ("::ffff:8.8.8.8", 1, 0, 0), ("fe80::1%eth0", 1, 0, 1)]
    for peer in (*outside, ("not-an-ip", 1), None, "", ()):
        assert not is_loopback_peer(peer), peer
    assert parse_params("leak", {"rate_mb": ["40"]}) == {"rate_mb": 40, "max_mb": 400}
    assert parse_params("errors", {"rate": ["0.5"], "off": ["1"]}) == {"rate": 0.5}
    with pytest.raises(ValueError):
        parse_params("leak", {"max_mb": ["100000"]})


def test_sigterm_and_sigint_exit_zero(spawn) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        svc = spawn()
        svc.proc.send_signal(sig)
        assert svc.exit_code() == 0
        assert f"{svc.name} shutting down" in svc.output()


def test_port_taken_exits_1_with_clear_message(spawn) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        svc = spawn("beta", port=s.getsockname()[1], ready=False)
        assert svc.exit_code() == 1
    assert f"beta: cannot bind 127.0.0.1:{svc.port}:" in svc.output()


def test_refuses_to_listen_beyond_loopback(spawn) -> None:
    svc = spawn("wide", "--host", "0.0.0.0", ready=False)
    assert svc.exit_code() == 2
    assert "loopback" in svc.output()


def test_crash_exits_with_code(spawn) -> None:
    svc = spawn()
    assert svc.fault("crash?code=3") == {"fault": "crash", "params": {"code": 3}}
    assert svc.exit_code() == 3
    assert "FATAL: crash requested" in svc.output()


def test_hang_stops_answering_but_stays_alive_and_sigterm_still_works(spawn) -> None:
    svc = spawn()
    svc.fault("hang")
    with pytest.raises((TimeoutError, socket.timeout)):
        svc.get("/healthz", timeout=1.0)
    assert svc.proc.poll() is None and svc.ps.status() != psutil.STATUS_ZOMBIE
    svc.proc.terminate()
    assert svc.exit_code() == 0
    assert "shutting down" in svc.output()


def test_leak_grows_rss_until_cap_and_clear_releases(spawn) -> None:
    svc = spawn()
    base = svc.ps.memory_info().rss
    svc.fault("leak?rate_mb=40&max_mb=120")
    wait_until(lambda: svc.ps.memory_info().rss - base >= 50 * 2**20, 30, what="RSS +50 MB")
    wait_until(lambda: svc.status()["counters"]["leaked_mb"] == 120, 30, what="leak to reach its cap")
    assert svc.ps.memory_info().rss - base < 200 * 2**20
    svc.fault("clear")
    wait_until(lambda: svc.ps.memory_info().rss - base < 50 * 2**20, 30, what="RSS released")


def test_cpu_spins_until_cleared(spawn) -> None:
    svc = spawn()
    threads_before = svc.ps.num_threads()
    svc.fault("cpu?threads=1")
    svc.ps.cpu_percent()
    wait_until(lambda: svc.ps.cpu_percent(interval=0.3) > 50, 30, what="cpu > 50%")
    svc.fault("clear")
    wait_until(lambda: svc.ps.num_threads() == threads_before, 30, what="spin thread to stop")
    wait_until(lambda: svc.ps.cpu_percent(interval=0.3) < 30, 30, what="cpu to calm down")


def test_errors_and_ratelimit_switch_on_and_off(spawn) -> None:
    svc = spawn()
    svc.fault("errors")
    assert svc.get("/healthz")[0] == 500 and svc.get("/")[0] == 500
    assert svc.get("/status")[0] == 200
    svc.fault("errors?off=1")
    assert svc.get("/healthz")[0] == 200
    svc.fault("ratelimit?rate=1")
    status, headers, _ = svc.get("/healthz")
    assert status == 429 and headers["Retry-After"] == "1"
    svc.fault("ratelimit?rate=0")
    assert svc.get("/healthz")[0] == 200


def test_badhealth(spawn) -> None:
    svc = spawn("gamma")
    svc.fault("badhealth")
    assert svc.get("/healthz")[:3:2] == (200, b'{"status": "degraded", "service": "gamma"}')
    svc.fault("clear")
    assert svc.get("/healthz")[2] == b'{"status": "ok", "service": "gamma"}'


def test_slow_delays_requests_but_not_status(spawn) -> None:
    svc = spawn()
    svc.fault("slow?delay=0.6")
    t0 = time.monotonic()
    assert svc.get("/healthz", timeout=30)[0] == 200
    assert time.monotonic() - t0 >= 0.6  # the delay is the feature: a lower bound only
    # /status is never delayed: with a 60 s delay on, it answers while a /healthz sent before it is
    # still waiting (an order of events, not a duration).
    svc.fault("slow?delay=60")
    with socket.create_connection(("127.0.0.1", svc.port), timeout=30) as pending:
        pending.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert svc.status()["faults"] == {"slow": {"delay": 60.0}}
        readable, _, _ = select.select([pending], [], [], 0)
        assert not readable, "/healthz answered before the 60 s delay it is under"


def test_fds_leak(spawn) -> None:
    svc = spawn()
    base = svc.ps.num_fds()
    svc.fault("fds?rate=1000&max=150")
    wait_until(lambda: svc.ps.num_fds() - base >= 100, 30, what="+100 fds")
    wait_until(lambda: svc.status()["counters"]["fds_leaked"] == 150, 30, what="fds to reach max")
    svc.fault("fds?off=1")
    wait_until(lambda: svc.ps.num_fds() - base < 10, 30, what="fds released")


def test_conns_held_without_blocking_server(spawn) -> None:
    svc = spawn()

    def established() -> int:
        return sum(c.status == psutil.CONN_ESTABLISHED for c in svc.ps.net_connections("tcp"))

    base = established()
    svc.fault("conns?count=40&rate=200")
    # Both ends of every held connection belong to the service.
    wait_until(lambda: established() - base >= 80, 30, what="80 more ESTABLISHED connections")
    assert svc.get("/healthz", timeout=2)[0] == 200
    assert svc.status()["counters"]["conns_held"] == 40
    svc.fault("clear")
    wait_until(lambda: established() <= base, 30, what="connections released")


def test_threads_leak(spawn) -> None:
    svc = spawn()
    base = svc.ps.num_threads()
    svc.fault("threads?rate=400&max=60")
    wait_until(lambda: svc.ps.num_threads() - base >= 60, 30, what="+60 threads")
    svc.fault("clear")
    wait_until(lambda: svc.ps.num_threads() == base, 30, what="threads to exit")


def test_zombies(spawn) -> None:
    svc = spawn()
    svc.fault("zombies?count=3")

    def zombies() -> int:
        return sum(c.status() == psutil.STATUS_ZOMBIE for c in svc.ps.children())

    wait_until(lambda: zombies() == 3, 30, what="3 zombie children")
    assert svc.get("/healthz")[0] == 200
    svc.fault("clear")
    wait_until(lambda: not svc.ps.children(), 30, what="zombies reaped")


def test_logerrors_burst(spawn) -> None:
    svc = spawn()
    svc.fault("logerrors?rate=100&duration=0.5")
    wait_until(lambda: "logerrors" not in svc.status()["faults"], 30, what="burst to end")
    out = svc.output()
    assert out.count("ERROR request failed: upstream timeout (req_id=") >= 10
    assert "Traceback (most recent call last):" in out


def test_failstart_fails_next_start_then_recovers(spawn, tmp_path: Path) -> None:
    svc = spawn("delta")
    assert svc.fault("failstart?count=1")["params"] == {"count": 1}
    assert (tmp_path / "state" / f"delta-{svc.port}.failstart").read_text().strip() == "1"
    svc.proc.terminate()
    assert svc.exit_code() == 0
    again = spawn("delta", port=svc.port, ready=False)
    assert again.exit_code() == 78
    message = "ConfigError: invalid value for 'workers' in delta.conf: expected an integer, got 'many'"
    assert message in again.output()
    assert "listening" not in again.output()
    assert not (tmp_path / "state" / f"delta-{svc.port}.failstart").exists()
    third = spawn("delta", port=svc.port)
    assert third.get("/healthz")[0] == 200


def test_upstream_health_dependency(spawn) -> None:
    upstream = spawn("db")
    web = spawn("web", "--upstream", f"http://127.0.0.1:{upstream.port}/healthz")
    assert web.get("/healthz")[:3:2] == (200, b'{"status": "ok", "service": "web"}')
    upstream.fault("errors")
    status, _, body = web.get("/healthz")
    reply = json.loads(body)
    assert status == 503 and reply["status"] == "degraded" and reply["service"] == "web"
    assert reply["reason"] == f"upstream http://127.0.0.1:{upstream.port}/healthz unreachable"
    upstream.fault("hang")  # a silent upstream: web gives up at its own probe deadline and says so
    status, _, body = web.get("/healthz", timeout=30)
    assert status == 503 and json.loads(body)["detail"] == f"no answer within {UPSTREAM_TIMEOUT}s"
    upstream.proc.kill()
    upstream.proc.wait()
    assert web.get("/healthz")[0] == 503


def test_clear_switches_every_fault_off(spawn) -> None:
    svc = spawn()
    for spec in ("errors", "slow?delay=0.2", "badhealth", "threads?max=5", "logerrors?rate=1&duration=60"):
        svc.fault(spec)
    assert set(svc.status()["faults"]) == {"errors", "slow", "badhealth", "threads", "logerrors"}
    assert sorted(svc.fault("clear")["cleared"]) == ["badhealth", "errors", "logerrors", "slow", "threads"]
    assert svc.status()["faults"] == {}
    assert svc.get("/healthz")[0] == 200
    assert "fault errors on {\"rate\": 1.0}" in svc.output()
