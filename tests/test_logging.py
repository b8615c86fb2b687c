"""What ``aurora run --headless`` writes to stderr: one log line per significant engine event, as text
for journald or as JSON, at the chosen level. Real engine, real service, real signals."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest

from aurora_tui.cli import main

from .helpers import wait_until
from .test_headless_cli import AURORA, kill_engine_and_services, status

TEXT_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: .*")
STARTED = re.compile(r"INFO aurora_tui\.events: idle started as pid (\d+)")
CRASHED = re.compile(r"WARNING aurora_tui\.events: idle killed by SIGKILL after [\d.]+s")


class Headless:
    """``aurora run --headless`` on a one-service fleet, its stderr in a file."""

    def __init__(self, tmp_path: Path, *, before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> None:
        config = tmp_path / "fleet.toml"
        command = json.dumps([sys.executable, "-c", "import time; time.sleep(600)"])
        config.write_text(f'[aurora]\nlog_dir = "logs"\n\n[[service]]\nname = "idle"\ncommand = {command}\n')
        self.db = tmp_path / "aurora.db"
        self.err = tmp_path / "engine.err"
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [*AURORA, *before, "run", "--headless", "--config", str(config), "--db", str(self.db), *after],
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )

    def lines(self) -> list[str]:
        text = self.err.read_text()
        lines = text.splitlines()
        # A line still being written is not a line yet.
        return lines if text.endswith("\n") else lines[:-1]

    def wait_for(self, match: Callable[[str], Any], what: str) -> Any:
        def found() -> Any:
            if self.proc.poll() is not None:
                raise AssertionError(f"the engine exited with {self.proc.returncode}:\n{self.err.read_text()}")
            return next((m for m in map(match, self.lines()) if m), None)

        return wait_until(found, timeout=30, interval=0.05, what=what)

    def stop(self) -> list[str]:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, self.err.read_text()
        return self.lines()


@pytest.fixture
def headless(tmp_path):
    engines: list[Headless] = []

    def start(**options: tuple[str, ...]) -> Headless:
        engines.append(Headless(tmp_path, **options))
        return engines[-1]

    try:
        yield start
    finally:
        for engine in engines:
            kill_engine_and_services(engine.proc)


def test_text_lines_for_start_crash_and_stop(headless):
    engine = headless()
    started = engine.wait_for(STARTED.fullmatch, "the INFO line: idle started")
    os.kill(int(started.group(1)), signal.SIGKILL)
    engine.wait_for(CRASHED.fullmatch, "the WARNING line: idle killed by SIGKILL")
    lines = engine.stop()
    assert [line for line in lines if not TEXT_LINE.fullmatch(line)] == [], lines
    assert any(re.fullmatch(r"INFO aurora_tui\.commands\.engine: engine pid \d+ supervising 1 services; .*", line) for line in lines)
    assert "INFO aurora_tui.commands.engine: SIGTERM received: stopping every service, then exiting" in lines
    assert lines[-1] == "INFO aurora_tui.events: engine stopped cleanly"


def test_json_lines_parse_and_carry_event_and_service(headless):
    engine = headless(after=("--log-format", "json"))

    def started(line: str) -> dict | None:
        record = json.loads(line)
        return record if record.get("event") == "started" and record.get("service") == "idle" else None

    record = engine.wait_for(started, "a JSON record of idle starting")
    assert record["level"] == "INFO" and record["logger"] == "aurora_tui.events"
    assert re.fullmatch(r"idle started as pid \d+", record["message"])
    lines = engine.stop()
    records = [json.loads(line) for line in lines]
    for r in records:
        assert {"ts", "level", "logger", "message"} <= set(r), r
        assert datetime.fromisoformat(r["ts"]).tzinfo is not None
    fleet_wide = next(r for r in records if r.get("event") == "engine_stopped")
    assert "service" not in fleet_wide


def test_warning_level_keeps_the_crash_and_drops_the_info_lines(headless):
    # Given before the subcommand, and in lower case: both are accepted.
    engine = headless(before=("--log-level", "warning"))
    pid = wait_until(lambda: (status(engine.db) or [{"pid": None}])[0]["pid"], timeout=30, interval=0.1, what="idle running")
    os.kill(pid, signal.SIGKILL)
    engine.wait_for(CRASHED.fullmatch, "the WARNING line: idle killed by SIGKILL")
    lines = engine.stop()
    assert [line for line in lines if not line.startswith(("WARNING ", "ERROR "))] == [], lines


def test_an_unknown_log_level_or_format_is_bad_usage(capsys):
    for option, value in (("--log-level", "LOUD"), ("--log-format", "xml")):
        with pytest.raises(SystemExit) as exc:
            main(["run", "--headless", option, value])
        assert exc.value.code == 2
        assert "invalid choice" in capsys.readouterr().err
