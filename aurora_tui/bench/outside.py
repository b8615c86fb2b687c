"""Faults the chaos benchmark causes from outside a service: signals from another process, a port taken
while the service is down, nginx and redis from the operating system's packages put in a bad state, a
daemon that escaped its service's process group, a monitor-only service killed.

Each bed is a fleet config written as TOML and loaded the way a user's would be, on free 127.0.0.1
ports, with every file under the benchmark's temporary directory.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..core.config import Config, load_config

# Packages put servers in sbin, which a user's PATH may leave out.
SEARCH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/local/sbin", "/usr/sbin", "/sbin"])
NGINX = shutil.which("nginx", path=SEARCH)
REDIS = shutil.which("redis-server", path=SEARCH)
REDIS_CLI = shutil.which("redis-cli", path=SEARCH)
NO_NGINX = None if NGINX else "nginx not installed (apt-get install nginx-light)"
NO_REDIS = None if REDIS and REDIS_CLI else "redis not installed (apt-get install redis-server)"
DAEMON_MARK = "aurora-chaos-daemon"

# A service that double-forks a helper daemon into a new session when told to (SIGUSR1, like a server
# asked to spawn a worker), leaving the service's process group: the middle process exits at once.
DAEMONIZING = f"""
import os, signal, socket, sys
def spawn(signum, frame):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{DAEMON_MARK}", sys.argv[1]])
        os._exit(0)
    os.wait()
signal.signal(signal.SIGUSR1, spawn)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""


@dataclass
class Bed:
    """A fleet for one fault: its config, the services to rotate over, and what the benchmark itself runs."""

    config: Config
    targets: tuple[str, ...]
    workdir: Path
    ports: dict[str, int] = field(default_factory=dict)
    own: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # monitor-only servers we run

    def close(self) -> None:
        for proc in self.own.values():
            kill_group(proc)
        for pid in [pid for port in self.ports.values() for pid in daemons(port)]:
            try:
                os.kill(pid, signal.SIGKILL)  # a daemon that escaped Aurora must not outlive the benchmark
            except ProcessLookupError:
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def daemons(port: int) -> list[int]:
    """Live daemons left by the daemonizing service on ``port``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if DAEMON_MARK in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE and cmd[-1] == str(port):
            found.append(proc.pid)
    return found


def _toml_list(argv: list[str]) -> str:
    # A JSON string is a TOML basic string, escapes (a program's newlines) included.
    return "[" + ", ".join(json.dumps(arg) for arg in argv) + "]"


def _load(workdir: Path, name: str, services: list[str]) -> Config:
    base = workdir / name
    base.mkdir(parents=True, exist_ok=True)
    settings = f'[aurora]\ninterval = 1.0\ndb = "aurora.db"\nlog_dir = "logs"\n'
    path = base / "fleet.toml"
    path.write_text("\n".join([settings, *services]))
    return load_config(path)


def nginx_bed(workdir: Path) -> Bed:
    """nginx with two workers serving /healthz from a file: deleting the file makes it answer 404."""
    root, port = workdir / "nginx", free_port()
    (root / "www").mkdir(parents=True)
    (root / "www" / "healthz").write_text("ok\n")
    # As root, nginx would run its workers as nobody, who cannot read the benchmark's private directory.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {root}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (root / "nginx.conf").write_text(f"""{user}
daemon off;
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
{temp}
    server {{ listen 127.0.0.1:{port}; root {root}/www; }}
}}
""")
    command = [str(NGINX), "-p", f"{root}/", "-c", str(root / "nginx.conf"), "-e", f"{root}/error.log"]
    service = f"""[[service]]
name = "nginx"
command = {_toml_list(command)}
port = {port}
health = {{ http = "/healthz", expect_status = "2xx", expect_body = "ok", timeout = 1.0 }}
start_grace = 5
stop_timeout = 3
"""
    return Bed(_load(workdir, "nginx", [service]), ("nginx",), root, {"nginx": port})


def redis_argv(workdir: Path, port: int) -> list[str]:
    return [str(REDIS), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--lua-time-limit", "100"]


def redis_bed(workdir: Path) -> Bed:
    """redis checked by PING/+PONG: busy in a script it still accepts, but answers -BUSY."""
    root, port = workdir / "redis", free_port()
    root.mkdir(parents=True)
    service = f"""[[service]]
name = "redis"
command = {_toml_list(redis_argv(root, port))}
port = {port}
health = {{ tcp = true, send = "PING\\r\\n", expect = "+PONG", timeout = 1.0 }}
start_grace = 5
stop_timeout = 2
"""
    return Bed(_load(workdir, "redis", [service]), ("redis",), root, {"redis": port})


def daemon_bed(workdir: Path) -> Bed:
    port = free_port()
    service = f"""[[service]]
name = "daemonizer"
command = {_toml_list([sys.executable, "-c", DAEMONIZING.strip(), str(port)])}
port = {port}
health = {{ tcp = true }}
start_grace = 5
stop_timeout = 2
"""
    return Bed(_load(workdir, "daemonizer", [service]), ("daemonizer",), workdir, {"daemonizer": port})


def unmanaged_bed(workdir: Path) -> Bed:
    """A redis the benchmark starts itself and Aurora only watches, found by its port."""
    root, port = workdir / "unmanaged", free_port()
    root.mkdir(parents=True)
    service = f"""[[service]]
name = "watched"
managed = false
port = {port}
health = {{ tcp = true, send = "PING\\r\\n", expect = "+PONG", timeout = 1.0 }}
"""
    bed = Bed(_load(workdir, "unmanaged", [service]), ("watched",), root, {"watched": port})
    start_unmanaged(bed)
    return bed


def start_unmanaged(bed: Bed) -> None:
    port = bed.ports["watched"]
    bed.own["watched"] = subprocess.Popen(redis_argv(bed.workdir, port), stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if listening(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the monitor-only redis did not listen on {port}")


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


SQUATTER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
print("ready", flush=True)
while True:
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
        break
    except OSError:
        time.sleep(0.001)
s.listen()
print("bound", flush=True)
time.sleep(600)
"""


def squatter(port: int) -> subprocess.Popen[str]:
    """A foreign program that takes ``port`` the moment it is free."""
    proc = subprocess.Popen([sys.executable, "-c", SQUATTER, str(port)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    proc.stdout.readline()  # type: ignore[union-attr]
    return proc
