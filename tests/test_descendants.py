"""Own every descendant: daemons that double-fork into a new session and children that call setpgid
are stopped with their service, at engine shutdown, and by a new engine after kill -9 of the old one.
Master/worker servers whose workers left the group are restarted without a human. Each case runs both
with a cgroup v2 per service (where this machine can write one) and with the subreaper fallback."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from aurora_tui.core.lineage import PR_SET_CHILD_SUBREAPER, cgroup2_base, engine_key

from .fleet import script_fleet
from .helpers import async_wait_until, free_port, gone, wait_until
from .live import patterns_seen, restarted_healthy, running
from .test_headless_cli import AURORA, kill_engine_and_services

CGROUP_WRITABLE = (base := cgroup2_base()) is not None and os.access(base, os.W_OK)
MODES = [
    pytest.param("cgroup", marks=pytest.mark.skipif(not CGROUP_WRITABLE, reason="cgroup v2 is not writable here")),
    "subreaper",
]

# A service that leaves two escapees: a daemon (fork, setsid, fork) and a child in its own group.
FAMILY = """
import os, time, pathlib
out = pathlib.Path({out!r})
def publish(name):
    tmp = out / (name + ".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, out / name)
def forever():
    while True:
        time.sleep(60)
first = os.fork()
if first == 0:
    os.setsid()
    if os.fork() == 0:
        publish("daemon.pid")
        forever()
    os._exit(0)
os.waitpid(first, 0)
if os.fork() == 0:
    os.setpgid(0, 0)
    publish("grouped.pid")
    forever()
forever()
"""

# A master whose workers leave its process group and keep serving the inherited listening socket.
MASTER = """
import os, socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port}))
s.listen(64)
for _ in range(2):
    if os.fork() == 0:
        os.setpgid(0, 0)
        while True:
            c, _ = s.accept()
            c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
            c.close()
s.close()
while True:
    time.sleep(60)
"""


@pytest.fixture
def mode(request, monkeypatch):
    if request.param == "subreaper":
        monkeypatch.setenv("AURORA_NO_CGROUP", "1")
    yield request.param
    # An engine run inside the test process made it a subreaper; later tests expect the usual parent.
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def escapees(out: Path) -> tuple[int, int]:
    """The daemon's and the grouped child's pids, once both are running and have escaped."""
    def both():
        try:
            return int((out / "daemon.pid").read_text()), int((out / "grouped.pid").read_text())
        except (OSError, ValueError):
            return None

    daemon, grouped = wait_until(both, timeout=30, what="the daemon and the setpgid child")
    for name in ("daemon.pid", "grouped.pid"):
        (out / name).unlink()  # the next run publishes its own
    # The daemon left the leader's session, the other child only its process group.
    assert os.getsid(daemon) != os.getsid(grouped) and os.getpgid(grouped) == grouped
    return daemon, grouped


def family_config(tmp_path: Path, interval: float = 3600.0):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    config = script_fleet(tmp_path, {"family": {"script": FAMILY.format(out=str(out)), "start_grace": 1, "stop_timeout": 2}}, interval)
    return config, out


def headless(tmp_path: Path) -> subprocess.Popen:
    family_config(tmp_path)  # writes the service's script
    toml = tmp_path / "fleet.toml"
    toml.write_text(f'[aurora]\ndb = "aurora.db"\nlog_dir = "logs"\n\n[[service]]\nname = "family"\n'
                    f'command = ["{sys.executable}", "{tmp_path / "family.py"}"]\nstart_grace = 1\nstop_timeout = 2\n')
    err = open(tmp_path / "engine.err", "a")
    try:
        return subprocess.Popen(
            [*AURORA, "run", "--headless", "--config", str(toml), "--db", str(tmp_path / "aurora.db"), "--interval", "0.5"],
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )
    finally:
        err.close()


def cgroup_of(tmp_path: Path) -> Path:
    """Where the engine on this test's database keeps its cgroups (never created in subreaper mode)."""
    return (base or Path("/nonexistent")) / engine_key(tmp_path / "aurora.db")


def terminate(engine: subprocess.Popen) -> None:
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(60) == 0


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_stop_and_restart_end_every_descendant(tmp_path, mode):
    config, out = family_config(tmp_path)
    async with running(config) as engine:
        daemon, grouped = escapees(out)
        # While it runs, the daemon that left the session is the service's orphan, not nobody's.
        await engine.monitor.probe_service("family")
        tree = engine.monitor.samples["family"].process
        assert daemon in tree.orphans and grouped in tree.pids, tree
        assert {daemon, grouped} <= engine.monitor.owned_pids()
        await engine.restart("family")
        assert gone(daemon) and gone(grouped)
        daemon2, grouped2 = escapees(out)
        await engine.stop_service("family")
        assert gone(daemon2) and gone(grouped2)
        if mode == "subreaper":
            # Adopted by the engine, so reaped by it: no zombie is left in the engine's process table.
            assert not {daemon, daemon2} & {c.pid for c in psutil.Process().children()}


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_engine_sigterm_ends_every_descendant(tmp_path, mode):
    engine = headless(tmp_path)
    try:
        daemon, grouped = escapees(tmp_path / "out")
        assert (cgroup_of(tmp_path) / "family").is_dir() == (mode == "cgroup")
        terminate(engine)
        wait_until(lambda: gone(daemon) and gone(grouped), timeout=10, what="the escapees gone with the engine")
        assert not cgroup_of(tmp_path).exists()  # a clean shutdown leaves no group behind
    finally:
        kill_engine_and_services(engine)


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_a_new_engine_stops_what_a_killed_one_left(tmp_path, mode):
    engine = headless(tmp_path)
    second = None
    try:
        daemon, grouped = escapees(tmp_path / "out")
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        assert not gone(daemon) and not gone(grouped)  # kill -9 leaves them running
        second = headless(tmp_path)
        wait_until(lambda: gone(daemon) and gone(grouped), timeout=30, what="the new engine to stop the old escapees")
        escapees(tmp_path / "out")  # its own run of the service started afterwards
        terminate(second)
        assert not cgroup_of(tmp_path).exists()
    finally:
        kill_engine_and_services(engine)
        if second is not None:
            kill_engine_and_services(second)


def workers_of(master: int, port: int) -> list[int]:
    """The master's children that hold its listening socket (one socket shared by all of them)."""
    holders = []
    for child in psutil.Process(master).children():
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp")):
                holders.append(child.pid)
        except psutil.Error:
            pass
    return holders


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_master_killed_workers_outside_its_group_do_not_block_the_restart(tmp_path, mode):
    port = free_port()
    config = script_fleet(tmp_path, {"web": {
        "script": MASTER.format(port=port), "port": port, "health": {"http": "/"}, "start_grace": 5, "stop_timeout": 2,
    }}, interval=0.3)
    async with running(config) as engine:
        master = engine.fleet.runners["web"].pid
        workers = await async_wait_until(lambda: w if len(w := workers_of(master, port)) == 2 else None, what="two workers")
        assert all(os.getpgid(w) == w for w in workers)
        os.kill(master, signal.SIGKILL)
        await restarted_healthy(engine, "web", master)
        assert all(gone(pid) for pid in workers), [p for p in workers if not gone(p)]
        # No "port held by a stale copy" plan waited for a human: the workers were the service's own.
        assert await patterns_seen(engine, "web") == {"crashed"}
        assert await engine.list_plans(status="pending") == []
