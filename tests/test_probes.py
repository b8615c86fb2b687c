"""Probes against real processes: memory that was really allocated, a port that was really squatted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from aurora_tui.core.config import HealthCheck
from aurora_tui.core.health import health_check
from aurora_tui.core.probes import ConnectionTable, ProcessProber, host_sample, port_facts

from .fleet import free_port, http_service, squat, stop_process
from .helpers import wait_until

ALLOCATE_MB = 150


@pytest.fixture
def allocator():
    code = (
        "import sys, time\n"
        f"block = bytearray({ALLOCATE_MB} * 1024 * 1024)\n"
        "block[::4096] = b'x' * len(block[::4096])  # touch every page so it is resident\n"
        "print('allocated', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "allocated"
    yield proc
    stop_process(proc)


@pytest.fixture
def web():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", http_service(port)], start_new_session=True)
    wait_until(lambda: port in ConnectionTable.read().sockets.listening, what="test web server listening")
    yield proc, port
    stop_process(proc)


def test_rss_of_a_process_that_allocated_memory(allocator):
    facts = ProcessProber().tree(allocator.pid, None, ConnectionTable.read())
    assert facts is not None
    assert facts.rss >= ALLOCATE_MB * 1024 * 1024
    assert facts.rss == pytest.approx(psutil.Process(allocator.pid).memory_info().rss, rel=0.05)
    assert facts.threads >= 1 and facts.fds >= 3 and facts.status in ("sleeping", "running")


def test_a_reused_pid_is_not_mistaken_for_the_service(allocator):
    real = psutil.Process(allocator.pid).create_time()
    assert ProcessProber().tree(allocator.pid, real - 100.0, ConnectionTable.read()) is None
    assert ProcessProber().tree(allocator.pid, real, ConnectionTable.read()) is not None


def test_a_vanished_process_gives_no_facts():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert ProcessProber().tree(proc.pid, None, ConnectionTable.read()) is None


def test_the_real_holder_of_a_squatted_port():
    port = free_port()
    squatter = squat(port)
    try:
        facts = port_facts(port, ConnectionTable.read(), service_pids={os.getpid()})
        assert facts.listening and facts.holder_pid == squatter.pid
        assert "port-squatter" in facts.holder_cmdline
        assert facts.holder_is_service is False
        assert facts.holder_username == psutil.Process(squatter.pid).username()
    finally:
        stop_process(squatter)
    assert port_facts(port, ConnectionTable.read(), set()).listening is False


def test_tree_counts_children_zombies_and_connections(web):
    proc, port = web
    code = (
        "import socket, subprocess, sys, time\n"
        "z = subprocess.Popen([sys.executable, '-c', 'pass'])\n"
        "k = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"c = socket.create_connection(('127.0.0.1', {port}))\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        prober = ProcessProber()
        facts = wait_until(
            lambda: (f := prober.tree(parent.pid, None, ConnectionTable.read())) and f.zombies == 1 and f,
            what="the short-lived child to become a zombie",
        )
        assert facts.children == 2 and facts.zombies == 1 and len(facts.pids) == 3
        assert facts.connections >= 1
    finally:
        stop_process(parent)


async def test_health_checks_tell_ok_from_wrong(web):
    proc, port = web
    ok = await health_check(port, HealthCheck("http", path="/", expect_body="ok"))
    assert ok.ok and ok.status_code == 200 and ok.latency_ms is not None
    wrong = await health_check(port, HealthCheck("http", path="/", expect_body="banana"))
    assert wrong.ok is False and "does not contain 'banana'" in wrong.error
    status = await health_check(port, HealthCheck("http", path="/", expect_status=204))
    assert status.ok is False and "HTTP 200, expected 204" in status.error
    tcp = await health_check(port, HealthCheck("tcp"))
    assert tcp.ok
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        hung = await health_check(port, HealthCheck("http", path="/", timeout=0.3))
        assert hung.ok is False and "timed out after 0.3s" in hung.error
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    closed = await health_check(free_port(), HealthCheck("tcp", timeout=0.5))
    assert closed.ok is False and closed.error == "connection refused"
    assert await health_check(None, HealthCheck("none")) is None


def test_host_sample_is_sane(tmp_path):
    host = host_sample(tmp_path)
    assert 0 < host.mem_available and 0 <= host.mem_percent <= 100
    assert 0 <= host.disk_percent <= 100 and host.disk_free > 0 and host.cpu_count >= 1


def test_socket_table_agrees_with_psutil(web):
    """The kernel's socket dump (and the /proc/net fallback) must see what psutil sees: the listener
    and its owner, and this process's live connection."""
    import socket

    import psutil

    from aurora_tui.core.procfs import fd_sockets
    from aurora_tui.core.sockdiag import _from_netlink, _from_proc

    proc, port = web
    client = socket.create_connection(("127.0.0.1", port))
    try:
        table = ConnectionTable.read()
        assert table.holders(port) == [proc.pid]
        assert [c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port] == [proc.pid]
        mine = fd_sockets(os.getpid())
        assert mine is not None and table.saw(os.getpid(), mine[1]) >= 1
        for found in (_from_netlink(), _from_proc()):
            assert len(found.listening[port]) == 1 and found.listening[port][0] in table.listening
            assert set(mine[1]) & found.connected
    finally:
        client.close()


def test_a_squatter_found_once_is_confirmed_cheaply(web):
    """A listener no tree holds is searched for among every process once, then remembered."""
    proc, port = web
    owners = ProcessProber().owners
    first = ConnectionTable.read(owners)
    assert first.holders(port) == [proc.pid] and first.owners is None  # searched the host
    second = ConnectionTable.read(owners)
    assert second.holders(port) == [proc.pid] and second.owners is owners  # confirmed, no search
