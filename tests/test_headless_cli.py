"""The real ``aurora`` command: headless engine, control socket and CLI, SIGTERM and kill -9."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from aurora_tui.core.config import demo_config_text
from aurora_tui.core.control import socket_path

from .helpers import free_demo_offset, gone, wait_until

AURORA = [sys.executable, "-m", "aurora_tui"]


def aurora(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AURORA, *args], capture_output=True, text=True, timeout=timeout)


def status(db: Path) -> list[dict] | None:
    result = aurora("status", "--json", "--db", str(db))
    return json.loads(result.stdout) if result.returncode == 0 else None


class Headless:
    def __init__(self, tmp_path: Path, interval: float = 1.0) -> None:
        self.db = tmp_path / "aurora.db"
        self.config = tmp_path / "fleet.toml"
        self.config.write_text(demo_config_text(free_demo_offset()).replace("\n[aurora]\n", '\n[aurora]\nlog_dir = "logs"\n', 1))
        self.stderr = open(tmp_path / "engine.err", "w+")
        self.proc = subprocess.Popen(
            [*AURORA, "run", "--headless", "--config", str(self.config), "--db", str(self.db), "--interval", str(interval)],
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            start_new_session=True,
        )

    def wait_healthy(self) -> list[dict]:
        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"the engine exited with {self.proc.returncode}: {self.err()}")
            services = status(self.db)
            return services if services and all(s["healthy"] for s in services) else None

        return wait_until(healthy, timeout=30, interval=0.2, what="the headless fleet healthy")

    def err(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def kill_everything(self) -> None:
        kill_engine_and_services(self.proc)
        self.stderr.close()


def kill_engine_and_services(engine: subprocess.Popen) -> None:
    """Last-resort cleanup: the engine, and any service it left (identified by the test tag)."""
    for pid in [engine.pid] + [c.pid for c in _children_of_tag()]:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    engine.wait(10)


def _children_of_tag() -> list[psutil.Process]:
    tag = os.environ["AURORA_TEST_TAG"]
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get("AURORA_TEST_TAG") == tag:
                found.append(proc)
        except psutil.Error:
            pass
    return found


@pytest.fixture
def headless(tmp_path):
    engine = Headless(tmp_path)
    try:
        yield engine
    finally:
        engine.kill_everything()


def test_status_restart_chaos_and_sigterm_leave_nothing_behind(headless: Headless):
    services = headless.wait_healthy()
    assert {s["name"] for s in services} == {"aurora_ui", "bridge_api", "learning_api", "file_server"}
    assert set(services[0]) == {"name", "state", "pid", "port", "healthy", "restarts", "uptime", "cpu", "rss", "next_try_at"}
    assert oct(socket_path(headless.db).stat().st_mode & 0o777) == "0o600"

    table = aurora("status", "--db", str(headless.db))
    assert table.returncode == 0 and "4/4 healthy" in table.stdout and "bridge_api" in table.stdout

    before = {s["name"]: s["pid"] for s in services}
    restarted = aurora("restart", "file_server", "--db", str(headless.db))
    assert restarted.returncode == 0, restarted.stderr
    assert "file_server: running" in restarted.stdout and "healthy" in restarted.stdout

    chaos = aurora("chaos", "kill", "learning_api", "--db", str(headless.db))
    assert chaos.returncode == 0, chaos.stderr

    def replaced():
        now = {s["name"]: s for s in status(headless.db) or []}
        return all(
            now[n]["pid"] not in (None, before[n]) and now[n]["healthy"] for n in ("file_server", "learning_api")
        ) and now

    now = wait_until(replaced, timeout=60, interval=0.2, what="file_server and learning_api replaced")
    assert now["learning_api"]["restarts"] == 1 and now["file_server"]["restarts"] == 1

    refused = aurora("chaos", "nosuchfault", "aurora_ui", "--db", str(headless.db))
    assert refused.returncode == 1 and "unknown fault" in refused.stderr

    unknown = aurora("restart", "brige_api", "--db", str(headless.db))
    assert unknown.returncode == 1 and "unknown service 'brige_api'" in unknown.stderr

    logs = aurora("logs", "learning_api", "--db", str(headless.db))
    assert "killed by SIGKILL" in logs.stdout and "listening on 127.0.0.1" in logs.stdout

    second = aurora("run", "--headless", "--config", str(headless.config), "--db", str(headless.db))
    assert second.returncode == 1 and "already running" in second.stderr

    pids = [s["pid"] for s in status(headless.db)]
    headless.proc.send_signal(signal.SIGTERM)
    assert headless.proc.wait(30) == 0, headless.err()
    assert not _children_of_tag(), "services survived the engine's SIGTERM"
    assert all(gone(pid) for pid in pids)
    assert not socket_path(headless.db).exists()

    no_engine = aurora("status", "--db", str(headless.db))
    assert no_engine.returncode == 1 and "no Aurora engine is running" in no_engine.stderr


def test_store_survives_kill_9_and_next_engine_stops_the_orphans(headless: Headless, tmp_path):
    headless.wait_healthy()
    restarted = aurora("restart", "aurora_ui", "--db", str(headless.db))
    assert restarted.returncode == 0
    # The restart was acknowledged, so its event is committed: kill the engine at once.
    os.kill(headless.proc.pid, signal.SIGKILL)
    headless.proc.wait(10)

    db = sqlite3.connect(headless.db)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kinds = [r[0] for r in db.execute("SELECT kind FROM events WHERE service = 'aurora_ui'")]
    assert "restart" in kinds
    assert db.execute("SELECT count(*) FROM samples").fetchone()[0] > 0
    assert db.execute("SELECT clean_exit FROM engine_runs").fetchone()[0] == 0
    db.close()

    orphans = _children_of_tag()
    assert len(orphans) >= 4, "the services keep running when their engine is killed"

    # A new engine recognises its predecessor's processes by pid, create time and command line.
    after = Headless.__new__(Headless)
    after.db, after.config = headless.db, headless.config
    after.stderr = open(tmp_path / "engine2.err", "w+")
    after.proc = subprocess.Popen(
        [*AURORA, "run", "--headless", "--config", str(headless.config), "--db", str(headless.db), "--interval", "1"],
        stdout=subprocess.DEVNULL, stderr=after.stderr, start_new_session=True,
    )
    try:
        fresh = after.wait_healthy()
        old_pids = {p.pid for p in orphans}
        assert not old_pids & {s["pid"] for s in fresh}
        # Once stopped they belong to PID 1, which reaps in its own time: a zombie is already gone.
        wait_until(lambda: all(gone(p) for p in old_pids), timeout=60, what="orphans stopped")
        events = json.loads(aurora("events", "--json", "-n", "100", "--db", str(headless.db)).stdout)
        assert sum(e["kind"] == "stale_stopped" for e in events) >= 4
        after.proc.send_signal(signal.SIGTERM)
        assert after.proc.wait(30) == 0
    finally:
        after.kill_everything()


def test_cli_without_an_engine_says_so(tmp_path):
    for args in (["status"], ["restart", "x"], ["chaos", "kill", "x"], ["logs", "x"]):
        result = aurora(*args, "--db", str(tmp_path / "none.db"))
        assert result.returncode == 1
        assert "no Aurora engine is running" in result.stderr


def test_demo_config_is_valid_and_shifted(tmp_path):
    result = aurora("demo-config", "--port-offset", "7")
    assert result.returncode == 0
    path = tmp_path / "demo.toml"
    path.write_text(result.stdout)
    check = aurora("check-config", str(path))
    assert check.returncode == 0 and "ok (4 services" in check.stdout
    assert "port = 5007" in result.stdout and "port = 8087" in result.stdout
