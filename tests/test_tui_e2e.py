"""End to end: the real ``aurora`` command in a real terminal (tmux), read back with ``capture-pane``.

Each test runs its own tmux server on a socket of its own (``tmux -L``), so parallel runs never meet,
and the server is killed in teardown whatever happened.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from aurora_tui.core.config import demo_config_text

from .helpers import free_demo_offset, gone, wait_until

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
AURORA = [sys.executable, "-m", "aurora_tui"]
# Generous on purpose: the suite must pass on a loaded 2-core machine, and a deadline only costs time
# when something is wrong.
SCREEN_TIMEOUT = 60.0


# Runs a program on the terminal it was given and writes how it ended (its return code) to a file.
RECORD_EXIT = (
    "import subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(code)); sys.exit(code if code >= 0 else 1)"
)


class Terminal:
    def __init__(self, tmp_path: Path, tag: str, width: int = 100, height: int = 30) -> None:
        self.socket = f"aurora-test-{uuid.uuid4().hex[:12]}"
        self.tag = tag
        self.width, self.height = width, height
        self.conf = tmp_path / "tmux.conf"
        # Keep the pane after the program exits, so its exit status can be read.
        self.conf.write_text("set -g remain-on-exit on\nset -g history-limit 100\n")

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TMUX, "-L", self.socket, "-f", str(self.conf), *args], capture_output=True, text=True, timeout=60, check=check)  # type: ignore[list-item]

    def start(self, command: list[str]) -> None:
        line = "exec " + " ".join(shlex.quote(c) for c in command)
        self.tmux(
            "new-session", "-d", "-s", "aurora", "-x", str(self.width), "-y", str(self.height),
            "-e", f"AURORA_TEST_TAG={self.tag}", "-e", "TERM=xterm-256color", line,
        )

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "aurora").stdout

    def keys(self, *keys: str) -> None:
        # tmux delivers keys in order; what each key does is waited for on the screen by the caller.
        for key in keys:
            self.tmux("send-keys", "-t", "aurora", key)

    def pane(self, field: str) -> str:
        return self.tmux("display-message", "-p", "-t", "aurora", f"#{{{field}}}").stdout.strip()

    def wait_for(self, predicate, timeout: float = SCREEN_TIMEOUT, what: str = "the screen") -> str:
        def check():
            text = self.screen()
            return text if predicate(text) else None

        try:
            return wait_until(check, timeout=timeout, interval=0.2, what=what)
        except AssertionError:
            raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{self.screen()}") from None

    def close(self) -> None:
        self.tmux("kill-server", check=False)
        # The server is gone; its socket file stays behind unless removed.
        path = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / self.socket
        path.unlink(missing_ok=True)


@pytest.fixture
def terminal(tmp_path, no_leftover_processes):
    term = Terminal(tmp_path, no_leftover_processes)
    try:
        yield term
    finally:
        term.close()


@pytest.fixture
def fleet(tmp_path):
    config = tmp_path / "fleet.toml"
    config.write_text(demo_config_text(free_demo_offset()).replace("\n[aurora]\n", '\n[aurora]\nlog_dir = "logs"\n', 1))
    return config, tmp_path / "aurora.db"


def status(db: Path) -> list[dict] | None:
    result = subprocess.run([*AURORA, "status", "--json", "--db", str(db)], capture_output=True, text=True, timeout=60)
    return json.loads(result.stdout) if result.returncode == 0 else None


def row(screen: str, service: str) -> str:
    return next((line for line in screen.splitlines() if f" {service} " in line), "")


def test_the_console_in_a_terminal_sees_a_crash_heal_and_quits_cleanly(terminal: Terminal, fleet, tmp_path):
    config, db = fleet
    status_file = tmp_path / "exit-status"
    terminal.start([sys.executable, "-c", RECORD_EXIT, str(status_file), *AURORA, "--config", str(config), "--db", str(db), "--interval", "1"])
    names = ("aurora_ui", "bridge_api", "learning_api", "file_server")
    terminal.wait_for(lambda s: "4/4 healthy" in s and all(n in s for n in names), what="the fleet healthy on screen")

    # Another process asks the engine for the pids, and kills one from outside.
    before = {s["name"]: s["pid"] for s in status(db) or []}
    os.kill(before["file_server"], signal.SIGKILL)

    def replaced() -> int | None:
        now = {s["name"]: s for s in status(db) or []}
        svc = now.get("file_server")
        return svc["pid"] if svc and svc["pid"] not in (None, before["file_server"]) and svc["healthy"] else None

    new_pid = wait_until(replaced, timeout=SCREEN_TIMEOUT, interval=0.2, what="file_server replaced")
    screen = terminal.wait_for(lambda s: str(new_pid) in row(s, "file_server") and "4/4 healthy" in s, what="the new pid on screen")
    assert str(before["file_server"]) not in row(screen, "file_server")

    terminal.keys("q")
    terminal.wait_for(lambda s: "Quit Aurora?" in s and "quitting stops the 4" in s, what="the quit question")
    terminal.keys("y")
    wait_until(lambda: terminal.pane("pane_dead") == "1", timeout=SCREEN_TIMEOUT, what="the console to exit")
    # Read from the wrapper, not from tmux: on a loaded machine tmux 3.3 sometimes marks the pane dead
    # and never records how its program ended, although the program is gone.
    exit_status = wait_until(lambda: status_file.exists() and status_file.read_text(), timeout=SCREEN_TIMEOUT, what="the exit status")
    assert exit_status == "0", f"the console ended with {exit_status} (negative: killed by that signal)"
    # Its own engine stopped the whole fleet on the way out.
    assert all(gone(pid) for pid in [*before.values(), new_pid])


def test_a_dropped_terminal_hangs_up_the_console_which_exits_instead_of_spinning(terminal: Terminal, fleet):
    config, db = fleet
    terminal.start([*AURORA, "--config", str(config), "--db", str(db), "--interval", "1"])
    terminal.wait_for(lambda s: "4/4 healthy" in s, what="the fleet healthy on screen")
    console = psutil.Process(int(terminal.pane("pane_pid")))
    services = [s["pid"] for s in status(db) or []]
    assert len(services) == 4

    # What an SSH drop does: the terminal goes away and the session gets SIGHUP.
    terminal.tmux("kill-session", "-t", "aurora")
    wait_until(lambda: gone(console.pid), timeout=SCREEN_TIMEOUT, what="the console to exit after SIGHUP")
    wait_until(lambda: all(gone(pid) for pid in services), timeout=SCREEN_TIMEOUT, what="its fleet stopped")
