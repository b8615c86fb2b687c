"""The bed the fault benchmark runs each fault on: a real headless engine (``aurora run --headless``)
over two demo services on free 127.0.0.1 ports, reached only through the real CLI and the real socket.

Everything the bed starts carries one environment tag, so what is left behind after a fault can be found
by that tag alone, whoever forked it. Every operation the bed sees acknowledged (the CLI exited 0) goes
into a ledger that is checked against the database once the engine is gone: that is "lost".
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil

TAG_VAR = "AURORA_FAULTS_TAG"
CLI_TIMEOUT = 60.0
ENGINE_STOP_WAIT = 30.0
POLL = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, poll: float = POLL) -> Any:
    """The first truthy answer of ``check`` within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)


def demo_service_toml(name: str, port: int, **extra: Any) -> str:
    options = {"start_grace": 5, "stop_timeout": 3, "restart_delay": 0, **extra}
    command = [sys.executable, "-m", "aurora_tui.demo.service", "--name", name, "--port", str(port)]
    lines = [
        "[[service]]",
        f"name = {json.dumps(name)}",
        f"command = {json.dumps(command)}",
        f"port = {port}",
        'health = { http = "/healthz", expect_status = 200, expect_body = "ok", timeout = 1.0 }',
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Outcome:
    """What one fault row found. ``None`` in a column means the question does not apply to this fault."""

    supervising: bool | None = None
    healed: bool | None = None
    lost: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    note: str = ""


class Bed:
    def __init__(self, workdir: Path, name: str = "bed", db_dir: Path | None = None, log_dir: Path | None = None,
                 services: dict[str, dict[str, Any]] | None = None, interval: float = 1.0, extra_toml: str = "") -> None:
        self.workdir = workdir
        self.tag = uuid.uuid4().hex
        self.db = (db_dir or workdir) / f"{name}.db"
        self.log_dir = log_dir or workdir / f"logs-{name}"
        self.ports: dict[str, int] = {}
        body = [f'[aurora]\ninterval = {interval}\ndb = {json.dumps(str(self.db))}\nlog_dir = {json.dumps(str(self.log_dir))}\n']
        for svc, extra in (services if services is not None else {"web": {}, "api": {}}).items():
            self.ports[svc] = int(extra.pop("port", 0)) or free_port()
            body.append(demo_service_toml(svc, self.ports[svc], **extra))
        self.config = workdir / f"{name}.toml"
        self.config.write_text("\n".join(body) + extra_toml)
        self.engine: subprocess.Popen[bytes] | None = None
        self.stderr_path = workdir / f"{name}.stderr"
        self.ledger: list[tuple[str, str]] = []  # (kind, unique text) of every acknowledged operation
        self.generations: list[int] = []

    # --- the engine ------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {**os.environ, TAG_VAR: self.tag}

    def start(self, wait_healthy: bool = True) -> bool:
        self.engine = subprocess.Popen(
            [sys.executable, "-m", "aurora_tui.cli", "run", "--headless", "--config", str(self.config)],
            env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.stderr_path, "ab"), start_new_session=True,
        )
        self.generations.append(self.engine.pid)
        return bool(self.healthy(45.0)) if wait_healthy else True

    def kill9(self) -> None:
        if self.engine is not None and self.engine.poll() is None:
            self.engine.send_signal(signal.SIGKILL)
            self.engine.wait(ENGINE_STOP_WAIT)

    def stop(self) -> int | None:
        """SIGTERM the engine and wait: a clean shutdown stops every service it owns."""
        if self.engine is None or self.engine.poll() is not None:
            return None if self.engine is None else self.engine.returncode
        self.engine.send_signal(signal.SIGCONT)
        self.engine.send_signal(signal.SIGTERM)
        try:
            return self.engine.wait(ENGINE_STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.engine.kill()
            self.engine.wait(ENGINE_STOP_WAIT)
            return None

    # --- the CLI ---------------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT, db: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "aurora_tui.cli", *args]
        if args and args[0] not in ("check-config",):
            argv += ["--db", str(db or self.db)]
        try:
            return subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            # Whatever it started is still tagged: close() and left_behind() find it.
            return subprocess.CompletedProcess(argv, -signal.SIGKILL, "", f"(no answer within {timeout:g}s)")

    def run_in_foreground(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``aurora run --headless`` on this bed's config, waited for: for faults it must refuse at once."""
        return self.cli("run", "--headless", "--config", str(self.config), timeout=timeout)

    def status(self) -> dict[str, dict[str, Any]]:
        done = self.cli("status", "--json", timeout=30.0)
        if done.returncode not in (0, 3):
            return {}
        data = json.loads(done.stdout)
        rows = data.get("services", data) if isinstance(data, dict) else data
        return {row["name"]: row for row in rows}

    def healthy(self, timeout: float = 30.0, names: tuple[str, ...] | None = None, not_pids: dict[str, int] | None = None) -> dict[str, dict[str, Any]] | None:
        """The status once every (named) service is healthy, each with a pid other than ``not_pids``'s."""
        def check() -> dict[str, dict[str, Any]] | None:
            rows = self.status()
            wanted = [rows.get(n) for n in (names or tuple(self.ports))]
            if all(r and r["healthy"] and r["pid"] != (not_pids or {}).get(r["name"]) for r in wanted):
                return rows
            return None
        return wait_for(check, timeout, poll=0.2)

    def kept_supervising(self, service: str = "web", timeout: float = 30.0) -> bool:
        """kill -9 of one service from outside, and it is healthy again as a new process."""
        rows = self.status()
        pid = rows.get(service, {}).get("pid")
        if not pid:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
        return self.healthy(timeout, names=(service,), not_pids={service: int(pid)}) is not None

    def served_pid(self, service: str) -> int | None:
        """The pid that answers on the service's port, asked of the demo service itself (not of Aurora)."""
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[service]}/status", timeout=2) as answer:
                return int(json.loads(answer.read())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def kept_supervising_unseen(self, service: str = "web", timeout: float = 30.0) -> bool:
        """As kept_supervising, for an engine the CLI cannot reach: kill -9 whoever serves the port,
        and a new process serves it again."""
        pid = self.served_pid(service)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return wait_for(lambda: (self.served_pid(service) or pid) != pid, timeout, poll=0.1) is not None

    def acknowledge(self, label: str) -> bool:
        """An operation the engine must never lose once it said yes: a silence with a unique reason,
        lifted again at once (also acknowledged), so that it hides nothing the fault should show."""
        reason = f"faults-{label}-{uuid.uuid4().hex[:8]}"
        done = self.cli("silence", "api", "--for", "2h", "--reason", reason)
        if done.returncode == 0:
            self.ledger.append(("silence", reason))
            self.cli("unsilence", "api")
        return done.returncode == 0

    def lost(self, db: Path | None = None) -> list[str]:
        """Acknowledged operations that the database does not hold. Read with the engine stopped."""
        path = db or self.db
        if not self.ledger:
            return []
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
                text = "\n".join(r[0] or "" for r in conn.execute("SELECT message FROM events WHERE kind = 'silenced'"))
        except sqlite3.Error as exc:
            return [f"{kind} {value} (database unreadable: {exc})" for kind, value in self.ledger]
        return [f"{kind} {value}" for kind, value in self.ledger if value not in text]

    # --- what is left ----------------------------------------------------------------------------------

    def tagged(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and proc.environ().get(TAG_VAR) == self.tag and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    def left_behind(self, grace: float = 10.0) -> list[str]:
        """Stop the engine, then name (and kill) anything of this bed that outlived it."""
        self.stop()
        left = wait_for(lambda: not self.tagged(), grace)
        survivors = [] if left else self.tagged()
        described = []
        for proc in survivors:
            with contextlib.suppress(psutil.Error):
                described.append(f"{proc.pid} {' '.join(proc.cmdline())[:80]}")
                proc.kill()
        return described

    def __enter__(self) -> "Bed":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop()
        for proc in self.tagged():
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``path`` (root only), unmounted afterwards whatever happens. A tmpfs
    with files open for writing cannot be remounted read-only, so a read-only one is mounted so."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True)
    try:
        yield path
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
            time.sleep(0.1)


def fill(directory: Path) -> Path:
    """Write into ``directory`` until the kernel answers ENOSPC, then top up the files already there: the
    last page of each may still hold a few bytes, and a disk that filled while they were written has none."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                for _ in range(1 << 16):
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    for path in directory.iterdir():
        if path == filler or not path.is_file():
            continue
        with contextlib.suppress(OSError):
            tail = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                for _ in range(8192):
                    os.write(tail, b"#")
            finally:
                os.close(tail)
    try:
        (directory / "one-more").write_bytes(b"x" * 8192)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    else:
        raise RuntimeError(f"{directory} still takes writes after filling it")
    return filler
