"""The CLI under faults says what is wrong in one line and exits 1, never with a traceback: a database
overwritten with garbage, a database on a read-only filesystem (a real tmpfs remounted read-only), and an
engine that does not answer (a real SIGSTOP) within the CLI's ``--timeout``."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from aurora_tui.bench.faultbed import tmpfs as mounted_tmpfs

from .test_headless_cli import aurora
from .test_hostile_files import Engine, _config

GARBAGE = b"this is not a database, whatever its name says\n" * 200


def _one_line(result: subprocess.CompletedProcess[str], status: int = 1) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status and len(lines) == 1 and "Traceback" not in result.stderr, (result.returncode, result.stderr)
    return lines[0]


def test_a_corrupt_database(tmp_path):
    db = tmp_path / "aurora.db"
    db.write_bytes(GARBAGE)
    assert "no Aurora engine is running" in _one_line(aurora("status", "--db", str(db)))
    assert "no Aurora engine is running" in _one_line(aurora("restart", "idle", "--db", str(db)))
    assert _one_line(aurora("incidents", "--db", str(db))) == f"aurora: cannot read the database {db}: file is not a database"
    started = aurora("run", "--headless", "--config", str(_config(tmp_path, tmp_path / "logs")), "--db", str(db))
    assert f"cannot use the database {db}: file is not a database" in _one_line(started)
    assert db.read_bytes() == GARBAGE, "the engine left the damaged database as it found it"


@pytest.fixture
def tmpfs(tmp_path):
    """A real tmpfs of our own, unmounted whatever happens."""
    with mounted_tmpfs(tmp_path / "mnt", "4m") as where:
        yield where


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs and remount it read-only")
def test_a_read_only_filesystem(tmp_path, tmpfs: Path):
    config = _config(tmp_path, tmp_path / "logs")
    db = tmpfs / "aurora.db"
    engine = Engine(config, db, tmp_path / "engine.err")
    try:
        engine.answering()
        engine.stop()
    finally:
        engine.kill()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True, capture_output=True, timeout=30)

    assert "no Aurora engine is running" in _one_line(aurora("status", "--db", str(db)))
    assert "no Aurora engine is running" in _one_line(aurora("restart", "idle", "--db", str(db)))
    started = aurora("run", "--headless", "--config", str(config), "--db", str(db))
    assert f"cannot use the database {db}: {db}.lock: Read-only file system" in _one_line(started)
    fresh = aurora("run", "--headless", "--config", str(config), "--db", str(tmpfs / "new" / "aurora.db"))
    assert "Read-only file system" in _one_line(fresh)
    # Reading needs no writing: the incidents of a database on a read-only mount can still be read.
    read = aurora("incidents", "--db", str(db))
    assert read.returncode == 0 and read.stderr == "" and "no incidents" in read.stdout, read.stderr


def test_an_engine_that_does_not_answer(tmp_path):
    config = _config(tmp_path, tmp_path / "logs")
    db = tmp_path / "aurora.db"
    engine = Engine(config, db, tmp_path / "engine.err")
    try:
        engine.answering()
        os.kill(engine.proc.pid, signal.SIGSTOP)
        try:
            status = _one_line(aurora("status", "--db", str(db), "--timeout", "1"))
            assert f"the engine on {db} did not answer 'ping' within 1s (is it stopped or overloaded?)" in status
            restart = _one_line(aurora("restart", "idle", "--db", str(db), "--timeout", "1"))
            assert "did not answer 'ping' within 1s" in restart
            second = _one_line(aurora("run", "--headless", "--config", str(config), "--db", str(db)))
            assert f"pid {engine.proc.pid}) is already running" in second
            # Incidents are read from the database, which a stopped engine does not hold up.
            read = aurora("incidents", "--db", str(db))
            assert read.returncode == 0 and "Traceback" not in read.stderr, read.stderr
        finally:
            os.kill(engine.proc.pid, signal.SIGCONT)
        engine.answering()
        engine.stop()
    finally:
        engine.kill()
