"""Aurora on servers nobody here wrote (issue 10, item 8): nginx and redis from the operating system's
packages, run by a real engine on free 127.0.0.1 ports, with faults caused from outside the service.

Each test skips, saying what to install, when its server is missing (``.ci/run`` installs both).
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from aurora_tui.cli import main
from aurora_tui.core.config import Config, load_config, with_overrides
from aurora_tui.core.engine import Engine
from aurora_tui.core.health import health_check

from .fleet import stop_process, with_logs
from .helpers import async_wait_until, free_port, gone, port_is_free
from .live import incident_for, patterns_seen, restarted_healthy, running

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "real-services.toml"
# Packages put servers in sbin, which a user's PATH may leave out.
SEARCH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/local/sbin", "/usr/sbin", "/sbin"])
NGINX = shutil.which("nginx", path=SEARCH)
REDIS = shutil.which("redis-server", path=SEARCH)
REDIS_CLI = shutil.which("redis-cli", path=SEARCH)

needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx not installed: apt-get install nginx-light")
needs_redis = pytest.mark.skipif(
    REDIS is None or REDIS_CLI is None, reason="redis not installed: apt-get install redis-server"
)

# The pattern for an HTTP status outside what the check expects (3xx, 4xx).
UNEXPECTED_STATUS = "http_unexpected_status"


def fleet(tmp_path: Path, *services: str, auto_heal: bool = True) -> Config:
    """A config file of ``services`` (TOML text, written as a user would), loaded as the engine loads it."""
    settings = f'[aurora]\ninterval = 0.4\ndb = "aurora.db"\nlog_dir = "logs"\nauto_heal = {str(auto_heal).lower()}\n'
    path = tmp_path / "fleet.toml"
    path.write_text("\n".join([settings, *services]))
    return load_config(path)


def toml_list(argv: list[str]) -> str:
    return "[" + ", ".join(f'"{arg}"' for arg in argv) + "]"


# --------------------------------------------------------------------------- nginx


def nginx_service(tmp_path: Path, name: str = "web") -> tuple[str, int]:
    """nginx in the foreground with two workers, everything it writes under ``tmp_path``, and
    /healthz served from a file: deleting the file makes it 404, creating ``forbid`` makes it 403."""
    port = free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "healthz").write_text("ok\n")
    # As root, nginx would run its workers as nobody, who cannot read a test's private directory.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {tmp_path}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""{user}
daemon off;
master_process on;
worker_processes 2;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log notice;
# nginx clears its workers' environment; keeping this lets the suite's guard see a leftover worker.
env AURORA_TEST_TAG;
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/access.log;
{temp}
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location = /healthz {{
            if (-f {tmp_path}/forbid) {{ return 403; }}
        }}
    }}
}}
""")
    command = [NGINX, "-p", f"{tmp_path}/", "-c", str(conf), "-e", f"{tmp_path}/error.log"]
    return f"""[[service]]
name = "{name}"
command = {toml_list(command)}
port = {port}
health = {{ http = "/healthz", expect_status = "2xx", expect_body = "ok", timeout = 1.0 }}
start_grace = 5
stop_timeout = 3
""", port


def workers_of(master: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(master).children()]
    except psutil.Error:
        return []


def in_group(pgid: int) -> list[psutil.Process]:
    """Live processes of process group ``pgid`` (zombies hold nothing and are left out)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (OSError, psutil.Error):
            pass
    return members


@needs_nginx
@pytest.mark.parametrize("fault, status", [("missing", 404), ("forbidden", 403)])
async def test_nginx_answering_4xx_on_its_health_path_opens_an_incident(tmp_path, fault, status):
    service, _port = nginx_service(tmp_path)
    async with running(fleet(tmp_path, service, auto_heal=False)) as engine:
        if fault == "missing":
            (tmp_path / "www" / "healthz").unlink()
        else:
            (tmp_path / "forbid").touch()
        incident = await incident_for(engine, "web", UNEXPECTED_STATUS)
        assert incident.evidence["status_codes"][-1] == status, incident.evidence
        assert incident.evidence["expected"] == "2xx"
        assert f"HTTP {status}" in incident.summary
        # nginx itself is fine: it is the answer that is wrong.
        assert engine.fleet.runners["web"].alive


@needs_nginx
async def test_nginx_comes_back_after_kill_9_of_its_master_with_no_worker_left_over(tmp_path):
    service, port = nginx_service(tmp_path)
    async with running(fleet(tmp_path, service)) as engine:
        runner = engine.fleet.runners["web"]
        master = runner.pid
        workers = await async_wait_until(lambda: w if len(w := workers_of(master)) == 2 else None, what="two nginx workers")
        assert {psutil.Process(pid).uids().effective for pid in workers} == {os.geteuid()}  # they run as the test's user
        os.kill(master, signal.SIGKILL)
        await restarted_healthy(engine, "web", master)
        # Left alone, the workers of a killed master keep serving the port; they went with their master.
        assert all(gone(pid) for pid in workers), [p for p in workers if not gone(p)]
        assert in_group(master) == []
        # So nothing of the old nginx held the port, and no "stale copy" plan had to wait for a human.
        assert await patterns_seen(engine, "web") == {"crashed"}
        answer = await health_check(port, engine.config.service("web").health)
        assert answer is not None and answer.ok and answer.status_code == 200
        assert len(workers_of(runner.pid)) == 2


# --------------------------------------------------------------------------- redis


def redis_service(tmp_path: Path, port: int, health: str, extra: tuple[str, ...] = ()) -> str:
    command = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path), *extra]
    return f"""[[service]]
name = "cache"
command = {toml_list(command)}
port = {port}
health = {health}
start_grace = 5
stop_timeout = 2
"""


def redis_cli(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([REDIS_CLI, "-p", str(port), *args], capture_output=True, text=True, timeout=10)


@needs_redis
async def test_redis_busy_in_a_script_is_noticed_by_send_and_expect_and_healed(tmp_path):
    # A busy script makes redis answer -BUSY once it has run this long (default 5 s).
    port = free_port()
    service = redis_service(
        tmp_path, port, '{ tcp = true, send = "PING\\r\\n", expect = "+PONG", timeout = 1.0 }', extra=("--lua-time-limit", "100"),
    )
    async with running(fleet(tmp_path, service)) as engine:
        runner = engine.fleet.runners["cache"]
        busy_pid = runner.pid
        busy = subprocess.Popen(
            [REDIS_CLI, "-p", str(port), "EVAL", "while true do end", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            # Still accepting connections and still running (state R): only the answer shows it.
            incident = await incident_for(engine, "cache", "health_content_mismatch")
            assert "BUSY" in str(incident.evidence), incident.evidence

            async def healed() -> bool:
                status = engine.monitor.status_of("cache")
                return status.pid not in (None, busy_pid) and bool(status.healthy)

            await async_wait_until(healed, timeout=60, what="redis restarted and answering")
            assert gone(busy_pid)
            assert redis_cli(port, "ping").stdout.strip() == "PONG"
        finally:
            stop_process(busy)


@needs_redis
async def test_an_exec_check_with_redis_cli_ping(tmp_path):
    port = free_port()
    service = redis_service(tmp_path, port, f'{{ exec = ["{REDIS_CLI}", "-p", "{port}", "ping"], timeout = 1.0 }}')
    async with running(fleet(tmp_path, service, auto_heal=False)) as engine:
        check = engine.config.service("cache").health
        assert check.kind == "exec"
        status = engine.monitor.status_of("cache")
        assert status.healthy and engine.monitor.samples["cache"].health.kind == "exec"
        pid = status.pid

        os.kill(pid, signal.SIGSTOP)  # accepts on the backlog, never answers: redis-cli waits
        try:
            stopped = await async_wait_until(
                lambda: (h := engine.monitor.samples["cache"].health) is not None and h.ok is False and h, what="the exec check failing"
            )
            assert "timed out" in (stopped.error or "")
            assert not engine.monitor.status_of("cache").healthy
        finally:
            os.kill(pid, signal.SIGCONT)
        await async_wait_until(lambda: engine.monitor.status_of("cache").healthy, what="healthy again once continued")

        os.kill(pid, signal.SIGKILL)
        await async_wait_until(lambda: not engine.monitor.status_of("cache").healthy, what="unhealthy once killed")
        dead = await health_check(port, check)
        assert dead is not None and dead.ok is False
        assert "Could not connect" in (dead.body_excerpt or "") + (dead.error or ""), dead


@needs_redis
async def test_an_empty_argument_reaches_redis_save_off(tmp_path, capsys):
    port = free_port()
    service = redis_service(tmp_path, port, '{ tcp = true, send = "PING\\r\\n", expect = "+PONG" }')
    config = fleet(tmp_path, service)
    assert main(["check-config", str(tmp_path / "fleet.toml")]) == 0, capsys.readouterr().err
    assert "" in config.service("cache").command
    async with running(config) as engine:
        assert engine.monitor.status_of("cache").healthy
        # CONFIG GET prints the name and then the value, here empty: snapshots are off.
        assert redis_cli(port, "CONFIG", "GET", "save").stdout.split("\n")[:2] == ["save", ""]


# --------------------------------------------------------------------------- the example config


def test_check_config_accepts_the_example_of_real_services(capsys):
    assert main(["check-config", str(EXAMPLE)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "ok (2 services, 2 managed" in out
    config = load_config(EXAMPLE)
    assert {s.health.kind for s in config.services} == {"http", "tcp"}


@needs_nginx
@needs_redis
async def test_the_example_of_real_services_runs(tmp_path, monkeypatch):
    """The example as shipped, on its own ports if they are free, with its files copied away from the repo."""
    shutil.copytree(EXAMPLE.parent / "real-services", tmp_path / "real-services")
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    monkeypatch.setenv("PATH", SEARCH)  # it names its servers bare, as a user would
    config = with_overrides(load_config(tmp_path / EXAMPLE.name), db=tmp_path / "aurora.db", interval=0.4)
    config = with_logs(config, tmp_path / "logs")
    for svc in config.services:
        if not port_is_free(svc.port):
            pytest.skip(f"port {svc.port} of the example's {svc.name} is taken on this machine")
    async with Engine(config) as engine:
        engine.launch()

        async def up() -> bool:
            snap = await engine.snapshot()
            return snap.scans >= 1 and all(s.healthy for s in snap.services)

        await async_wait_until(up, timeout=30, what="the example's nginx and redis healthy")
