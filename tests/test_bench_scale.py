"""Smoke test of the scale benchmark at a small N, through its real run(): Aurora, supervisord (only if
already installed: no pip in a test) and Monit (when /usr/bin/monit exists) each supervise six real tiny
services, are measured, take real kills and SIGSTOPs, and are stopped. No duration is asserted; the
figures are the benchmark's business. conftest.py's fixture, and the psutil check below, fail the test
if a service survives (Monit's services lose the inherited environment, so they are found by the tag on
their command line)."""
from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time

import psutil
import pytest

from aurora_tui.bench import BENCHMARKS, scale

ROWS = ("start-up, all", "CPU while steady, 1 s checks", "CPU while steady, default interval",
        "start -> end of the 1 s window", "start -> end of the default-interval window", "database growth",
        "killed at once", "one service killed", "a hung (SIGSTOPped) service")


def _get(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


def test_tiny_service_answers_with_its_pid_keeps_alive_and_exits_on_sigterm():
    port = scale._free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(scale.TINY), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the tiny service never listened"
                time.sleep(0.01)
        with conn:
            # Two requests on one connection (keep-alive), the second asking to close.
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = conn.recv(65536)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            rest = b""
            while chunk := conn.recv(65536):
                rest += chunk
        assert first.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in first
        assert f'{{"status": "ok", "pid": {proc.pid}}}'.encode() in first
        assert rest.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in rest
        assert _get(port, b"GET /other HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        assert _get(port, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")  # 1.0: closes after
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(300)  # three supervisors, each started two or three times; every wait in it is bounded
def test_scale_benchmark_small_fleet():
    with_supervisord = importlib.util.find_spec("supervisor") is not None
    result = scale.run(services=6, trials=2, window=2.0, warmup=1.0,
                       include_supervisord=with_supervisord, hung_bound=3.0)
    assert result["benchmark"] == "scale" and BENCHMARKS["scale"] is scale.run
    assert result["errors"] == [], result["errors"]
    report, rows = result["report"], result["rows"]
    for label in ROWS:
        assert any(label in r["row"] for r in rows), label
        assert label in report, label
    by = {label: next(r for r in rows if label in r["row"]) for label in ROWS}
    memory = ("start -> end of the 1 s window", "start -> end of the default-interval window")
    for label in ROWS:
        cell = by[label]["aurora"]
        if label in memory:  # "start -> end", both in MB
            assert re.fullmatch(r"[\d.]+ -> [\d.]+", cell), (label, cell)
        else:
            assert isinstance(cell, (int, float)), (label, cell)
    # The kill rows were answered by new processes, all of them.
    aurora = result["aurora"]["faults"]
    assert aurora["new_pids"] and aurora["kill10_back"] == aurora["kill10_killed"] == 6
    assert len(aurora["single_s"]) == 2 and len(aurora["hung_s"]) == 2
    assert "every recovery counted answered by a new pid: yes" in report
    if "monit" in result["skipped"]:
        assert "monit skipped:" in report
    else:
        monit = result["monit"]["faults"]
        assert monit["new_pids"] and monit["kill10_back"] == 6 and len(monit["single_s"]) == 2
        assert isinstance(by["one service killed"]["monit"], (int, float))
    if with_supervisord:
        assert str(by["a hung (SIGSTOPped) service"]["supervisord"]).startswith("never")
    else:
        assert "supervisord skipped:" in report
    # Nothing the benchmark ran survives it.
    assert result["left_behind"] == []
    tag = result["tag"]  # on every service's command line, whoever started it
    survivors = []
    for proc in psutil.process_iter():
        try:
            if tag in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                survivors.append(proc.pid)
        except psutil.Error:
            pass
    assert survivors == []
