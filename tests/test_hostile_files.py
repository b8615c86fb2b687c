"""Files that cannot be turned against Aurora: a lock file planted as a symbolic link (or a hard link, or
another user's file) is refused and its target left untouched; what Aurora creates is 0600 in 0700
directories, which another user cannot read; and a second engine cannot take a database while the first
lives, even once the first one's lock file (and socket) are gone, and its shutdown never removes another's socket.

Everything is real: the ``aurora`` command in subprocesses, a world-writable sticky directory like /tmp,
and, as root, the unprivileged user ``nobody`` trying to read the files.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from aurora_tui.core.control import ControlServer, socket_path
from aurora_tui.core.enginelock import lock_path

from .helpers import wait_until
from .test_headless_cli import AURORA, aurora, kill_engine_and_services

NOBODY = 65534
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the files are read as the unprivileged user nobody")
PRECIOUS = "precious content that no engine may truncate\n"


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    """A Python program run as the unprivileged user nobody (the test's own interpreter may live
    where nobody cannot reach, such as /root)."""
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                   if os.access(p, os.X_OK) and not os.path.realpath(p).startswith("/root/")), None)
    if python is None:
        pytest.skip("no python3 that the user nobody can run")
    return subprocess.run(
        [python, "-c", *argv], user=NOBODY, group=NOBODY, extra_groups=[], cwd="/",
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def shared():
    """A directory anyone may write to, sticky like /tmp, where another user can plant files."""
    path = Path(tempfile.mkdtemp(prefix="aurora-shared-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _config(where: Path, log_dir: Path) -> Path:
    config = where / "fleet.toml"
    config.write_text(
        f'[aurora]\nlog_dir = "{log_dir}"\n\n'
        f'[[service]]\nname = "idle"\ncommand = ["{sys.executable}", "-c", "import time; time.sleep(600)"]\n'
    )
    return config


class Engine:
    """``aurora run --headless`` on ``db``, with its stderr kept."""

    def __init__(self, config: Path, db: Path, err: Path) -> None:
        self.db = db
        self.stderr = open(err, "w+")
        self.proc = subprocess.Popen(
            [*AURORA, "run", "--headless", "--config", str(config), "--db", str(db), "--interval", "0.5"],
            stdout=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True,
        )

    def answering(self) -> dict:
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the engine exited with {self.proc.returncode}: {self.err()}")
            result = aurora("status", "--json", "--db", str(self.db), "--timeout", "10")
            services = json.loads(result.stdout) if result.returncode == 0 else None
            return {s["name"]: s for s in services} if services and all(s["pid"] for s in services) else None

        return wait_until(up, timeout=30, interval=0.1, what="the engine answering with its fleet started")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, self.err()
        assert "Traceback" not in self.err()

    def err(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def kill(self) -> None:
        kill_engine_and_services(self.proc)
        self.stderr.close()


def _run_refused(config: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return aurora("run", "--headless", "--config", str(config), "--db", str(db), timeout=60)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_planted_lock_file_is_refused_and_what_it_points_to_is_untouched(shared, tmp_path):
    config = _config(tmp_path, tmp_path / "logs")
    target = tmp_path / "precious"
    target.write_text(PRECIOUS)

    # The attack of the issue: in a shared directory, another user links <db>.lock to a file of root's.
    link = lock_path(shared / "shared.db")
    link.symlink_to(target)
    if os.geteuid() == 0:
        os.lchown(link, NOBODY, NOBODY)
    result = _run_refused(config, shared / "shared.db")
    assert result.returncode == 2
    assert f"refusing to use lock file {link}: it is a symbolic link" in _one_line(result.stderr)
    assert target.read_text() == PRECIOUS
    assert not (shared / "shared.db").exists(), "nothing is created once the lock is refused"

    # A hard link to the same file: no link to follow, but the file is not the lock's own.
    hard = lock_path(shared / "hard.db")
    os.link(target, hard)
    result = _run_refused(config, shared / "hard.db")
    assert result.returncode == 2 and "it has 2 hard links" in _one_line(result.stderr)
    assert target.read_text() == PRECIOUS

    # Something that is not a file at all.
    os.mkfifo(lock_path(shared / "fifo.db"))
    result = _run_refused(config, shared / "fifo.db")
    assert result.returncode == 2 and "not a regular file" in _one_line(result.stderr)

    if os.geteuid() == 0:
        # Another user's own file: its owner could read and change what the engine keeps in it.
        theirs = lock_path(shared / "theirs.db")
        theirs.write_text("")
        os.chown(theirs, NOBODY, NOBODY)
        result = _run_refused(config, shared / "theirs.db")
        assert result.returncode == 2 and f"belongs to uid {NOBODY}" in _one_line(result.stderr)


_READ_AS_NOBODY = r"""
import json, os, socket, sys
seen = {}
for path in sys.argv[1:]:
    try:
        if path.endswith(".sock"):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
        elif os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        seen[path] = "read"
    except PermissionError:
        seen[path] = "denied"
    except OSError as exc:
        seen[path] = f"error: {exc}"
print(json.dumps(seen))
"""


def _modes(paths: list[Path]) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}


def test_what_aurora_creates_is_private_and_its_lock_lives_with_the_engine(shared, tmp_path):
    db = shared / "aurora.db"
    logs = shared / "logs" / "deep"
    engine = Engine(_config(tmp_path, logs), db, tmp_path / "engine.err")
    try:
        fleet = engine.answering()
        files = [db, db.with_name("aurora.db-wal"), db.with_name("aurora.db-shm"), lock_path(db), socket_path(db), logs / "idle.log"]
        assert _modes(files) == {p.name: "0o600" for p in files}
        assert _modes([shared / "logs", logs]) == {"logs": "0o700", "deep": "0o700"}
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777, "a shared directory Aurora did not create keeps its mode"

        # The lock (and the database's own lock) are held on descriptors for the engine's whole life,
        # and no service inherits them.
        engine_fds = {os.readlink(f) for f in Path(f"/proc/{engine.proc.pid}/fd").iterdir()}
        assert {str(lock_path(db)), str(db)} <= engine_fds
        service_fds = {os.readlink(f) for f in Path(f"/proc/{fleet['idle']['pid']}/fd").iterdir()}
        assert not service_fds & {str(lock_path(db)), str(db)}, service_fds

        # The console's own log, <db>.log, is private too.
        console_log = subprocess.run(
            [sys.executable, "-c", "import argparse, sys; from pathlib import Path; from aurora_tui.commands.engine import _log_to_file; "
             "sys.exit(_log_to_file(argparse.Namespace(log_level='INFO', log_format='text'), Path(sys.argv[1])))", str(shared / "console.db")],
            capture_output=True, text=True, timeout=60,
        )
        assert console_log.returncode == 0, console_log.stderr
        assert _modes([shared / "console.db.log"]) == {"console.db.log": "0o600"}

        if os.geteuid() == 0:
            readable = shared / "readable"
            readable.write_text("anyone may read this")
            readable.chmod(0o644)
            targets = [*files, shared / "logs", shared / "console.db.log", readable]
            result = _as_nobody(_READ_AS_NOBODY, *map(str, targets))
            seen = json.loads(result.stdout)
            assert seen.pop(str(readable)) == "read", "the unprivileged reader can read what is meant to be read"
            assert seen == {k: "denied" for k in seen}, seen
        engine.stop()
    finally:
        engine.kill()


@ROOT_ONLY
def test_nobody_cannot_read_the_stored_service_environment(shared, tmp_path):
    """The issue's finding: an unprivileged user read API_TOKEN from the stored service config."""
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[aurora]\nlog_dir = "{tmp_path / "logs"}"\n\n[[service]]\nname = "idle"\n'
        f'command = ["{sys.executable}", "-c", "import time; time.sleep(600)"]\nenv = {{ API_TOKEN = "s3cret-token" }}\n'
    )
    engine = Engine(config, shared / "aurora.db", tmp_path / "engine.err")
    try:
        engine.answering()
        engine.stop()  # a clean stop checkpoints the WAL into the database file itself
        assert b"s3cret-token" in (shared / "aurora.db").read_bytes()
        result = _as_nobody("import sys; open(sys.argv[1], 'rb').read()", str(shared / "aurora.db"))
        assert result.returncode != 0 and "PermissionError" in result.stderr, result.stderr
    finally:
        engine.kill()


def test_no_second_engine_while_the_first_lives_even_without_its_files(tmp_path):
    db = tmp_path / "aurora.db"
    config = _config(tmp_path, tmp_path / "logs")
    first = Engine(config, db, tmp_path / "first.err")
    try:
        idle_pid = first.answering()["idle"]["pid"]

        # Its lock file deleted: the socket still answers, so the first engine still lives there.
        lock_path(db).unlink()
        result = _run_refused(config, db)
        assert result.returncode == 1
        assert f"another Aurora engine (pid {first.proc.pid}) answers on {socket_path(db)}" in _one_line(result.stderr)

        # Its socket deleted as well: the database file itself is still held.
        socket_path(db).unlink()
        result = _run_refused(config, db)
        assert result.returncode == 1 and f"holds the database {db}" in _one_line(result.stderr)

        # The database, its WAL and everything else deleted too: nothing on disk is left to hold, and
        # still no second engine runs (and sweeps the first one's services as leftovers) beside it.
        for path in tmp_path.glob("aurora.db*"):
            path.unlink()
        result = _run_refused(config, db)
        assert result.returncode == 1, result.stderr
        assert f"another Aurora engine (pid {first.proc.pid}) is already running on {db}" in _one_line(result.stderr)
        assert first.proc.poll() is None and os.path.exists(f"/proc/{idle_pid}"), "the refused engine touched nothing"

        first.stop()
    finally:
        first.kill()
    # Once the first is gone the database is free again.
    after = Engine(config, db, tmp_path / "after.err")
    try:
        after.answering()
        after.stop()
    finally:
        after.kill()


class _AnyEngine:
    """Stands in for an engine behind a socket: every declared method answers "pong"."""

    def __getattr__(self, name: str):
        async def answer(**params):
            return "pong"

        return answer


async def test_a_shutdown_leaves_alone_a_socket_that_is_not_its_own(tmp_path):
    """The issue's sequence: the first engine's socket file is deleted, a second engine binds its own at
    the same path, then the first shuts down. The second must stay reachable."""
    path = socket_path(tmp_path / "aurora.db")
    first = ControlServer(_AnyEngine(), path)
    second = ControlServer(_AnyEngine(), path)
    await first.start()
    try:
        path.unlink()
        await second.start()
        await first.close()
        assert path.exists(), "the first engine's shutdown deleted the second one's socket"
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"id": 1, "method": "ping"}\n')
        assert json.loads(await asyncio.wait_for(reader.readline(), 30))["result"] == "pong"
        writer.close()
    finally:
        await first.close()
        await second.close()
    assert not path.exists(), "an engine removes its own socket when it shuts down"
