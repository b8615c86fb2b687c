"""``aurora bench faults``: a machine that misbehaves around Aurora, one fault per row, each caused for real.

Every row starts a real headless engine over two demo services (see :mod:`.faultbed`), causes its fault
(a full or read-only filesystem, a deleted database, a symlinked lock, ``kill -9`` of the engine amid a
restart storm, garbage on the socket...) and answers four questions:

- **kept supervising**: after the fault, a service killed with ``kill -9`` from outside is healthy again;
- **healed**: the fault's own harm was undone, or reported as it should be (the row's note says which);
- **lost**: operations the engine acknowledged (silences with a unique reason, set through the CLI) that
  the database no longer holds once the engine is gone;
- **left behind**: processes of the bed still alive after the engine stopped.

Rows that need root (mounts) are skipped with the reason without it.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..core import procfs
from ..core.control import reachable, socket_path
from .faultbed import Bed, Outcome, fill, free_port, tmpfs, wait_for

NEEDS_ROOT = None if os.geteuid() == 0 else "needs root (mounts a tmpfs)"
Fault = Callable[[Path], Outcome]
FAULTS: list[tuple[str, str, str | None, Fault]] = []


def fault(name: str, how: str, skip: str | None = None) -> Callable[[Fault], Fault]:
    def register(fn: Fault) -> Fault:
        FAULTS.append((name, how, skip, fn))
        return fn
    return register


def finish(bed: Bed, out: Outcome, db: Path | None = None) -> Outcome:
    """Stop the bed, then fill in what was left behind and what was lost."""
    out.left = bed.left_behind()
    out.lost = bed.lost(db)
    return out


def open_incident(bed: Bed, pattern: str, timeout: float = 30.0) -> dict[str, Any] | None:
    def found() -> dict[str, Any] | None:
        done = bed.cli("incidents", "--json", "--open")
        rows = json.loads(done.stdout) if done.returncode == 0 else []
        rows = rows.get("incidents", rows) if isinstance(rows, dict) else rows
        return next((r for r in rows if r.get("pattern") == pattern), None)
    return wait_for(found, timeout, poll=0.3)


def resolved(bed: Bed, pattern: str, timeout: float = 30.0) -> bool:
    """Whether the open incident of ``pattern`` goes away (read from a database the CLI could read)."""
    def closed() -> bool:
        done = bed.cli("incidents", "--json", "--open", "--pattern", pattern)
        return done.returncode == 0 and not json.loads(done.stdout or "[]")
    return bool(wait_for(closed, timeout, poll=0.3))


def storage_reported(bed: Bed, word: str, timeout: float = 20.0) -> bool:
    """Whether ``aurora status`` (the engine's own view, not the database's) reports a storage problem."""
    def said() -> bool:
        return any(line.startswith("storage:") and word in line for line in bed.cli("status").stdout.splitlines())
    return bool(wait_for(said, timeout, poll=0.3))


def one_line_error(done: subprocess.CompletedProcess[str], status: int = 1) -> bool:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode == status and len(lines) == 1 and "Traceback" not in done.stderr


def raw_requests(db: Path, lines: list[bytes], timeout: float = 10.0) -> list[bytes]:
    """Send each line on one connection and collect one answer line per request."""
    answers = []
    with reachable(socket_path(db)) as where, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(where)
        reader = conn.makefile("rb")
        for line in lines:
            conn.sendall(line + b"\n")
            answers.append(reader.readline())
    return answers


def restart_storm(bed: Bed) -> list[subprocess.Popen[Any]]:
    """``aurora restart`` of every service at once, from separate CLI processes."""
    return [
        subprocess.Popen([sys.executable, "-m", "aurora_tui.cli", "restart", name, "--db", str(bed.db)], env=bed.env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        for name in bed.ports
    ]


def reap(procs: list[subprocess.Popen[Any]]) -> None:
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- storage ------------------------------------------------------------------------------------------

@fault("log dir full", "log_dir on a 1 MiB tmpfs, filled; kill -9 a service; then free the space", NEEDS_ROOT)
def log_dir_full(work: Path) -> Outcome:
    with tmpfs(work / "logs") as logs:
        with Bed(work, log_dir=logs) as bed:
            bed.start()
            bed.acknowledge("before")
            filler = fill(logs)
            bed.cli("chaos", "logerrors", "web", "--param", "rate=50", "--param", "duration=2")  # output with nowhere to go
            out = Outcome(supervising=bed.kept_supervising("web"))
            incident = open_incident(bed, "storage_unwritable")
            filler.unlink()
            cleared = resolved(bed, "storage_unwritable")
            again = bed.kept_supervising("api")
            out.healed = bool(incident) and cleared and again
            out.note = ("storage_unwritable opened, resolved once space returned" if out.healed
                        else f"incident={bool(incident)} resolved={cleared} supervised after={again}")
            bed.acknowledge("after")
            return finish(bed, out)


@fault("log dir read-only", "log_dir on a read-only filesystem; kill -9 a service", NEEDS_ROOT)
def log_dir_readonly(work: Path) -> Outcome:
    with tmpfs(work / "logs", "1m", read_only=True) as logs:
        with Bed(work, log_dir=logs) as bed:
            bed.start()
            bed.acknowledge("before")
            out = Outcome(supervising=bed.kept_supervising("web"))
            incident = open_incident(bed, "storage_unwritable")
            out.healed = bool(incident) and str(logs) in json.dumps(incident)
            out.note = "storage_unwritable names the log path" if out.healed else f"incident={bool(incident)}"
            return finish(bed, out)


@fault("database disk full", "the database's tmpfs filled; kill -9 a service; an approve is tried; space freed", NEEDS_ROOT)
def db_disk_full(work: Path) -> Outcome:
    with tmpfs(work / "db", "4m") as dbdir:
        with Bed(work, db_dir=dbdir) as bed:
            bed.start()
            bed.acknowledge("before")
            filler = fill(dbdir)
            out = Outcome(supervising=bed.kept_supervising("web"))
            # A decision that cannot be committed must be refused, not carried out behind the database's back.
            refused = bed.cli("restart", "api")
            bed.acknowledge("during")  # refused or acknowledged: either way it must not be lost if acknowledged
            filler.unlink()
            out.healed = refused.returncode == 1 and resolved(bed, "storage_unwritable")
            out.note = f"restart while full refused: {refused.stderr.strip()[:60]!r}; incident resolved once space returned"
            out = finish(bed, out)
            with contextlib.closing(sqlite3.connect(bed.db)) as conn:
                if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    out.lost.append("integrity_check failed")
            return out


@fault("database read-only", "the database on a read-only filesystem; the engine and the CLI started on it", NEEDS_ROOT)
def db_readonly(work: Path) -> Outcome:
    with tmpfs(work / "db", "1m", read_only=True) as dbdir:
        with Bed(work, db_dir=dbdir) as bed:
            return _refused_database(bed)


def _refused_database(bed: Bed) -> Outcome:
    """An engine and a CLI started on a database they cannot use: each says so in one line, exit 1."""
    engine = bed.run_in_foreground()
    status = bed.cli("status")
    out = Outcome(healed=one_line_error(engine) and one_line_error(status))
    out.note = f"engine: exit {engine.returncode} {engine.stderr.strip()[:70]!r}"
    out.left = bed.left_behind()
    return out


def _keep(db: Path) -> Path:
    """Hard links to the database and its WAL, so what was acknowledged can still be read after a delete."""
    kept = db.with_name("kept.db")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.link(f"{db}{suffix}", f"{kept}{suffix}")
    return kept


def _database_gone(work: Path, replace: bool) -> Outcome:
    """The database deleted, or another file put in its place, under a running engine."""
    with Bed(work) as bed:
        bed.start()
        bed.acknowledge("before")
        kept = _keep(bed.db)
        if replace:
            other = work / "other.db"
            with contextlib.closing(sqlite3.connect(other)) as conn:
                conn.execute("CREATE TABLE t(x)")
                conn.commit()
            os.replace(other, bed.db)
        else:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{bed.db}{suffix}")
        out = Outcome(supervising=bed.kept_supervising("web"))
        refused = bed.cli("restart", "api")
        reported = storage_reported(bed, "deleted" if not replace else "replaced")
        out.healed = one_line_error(refused) and reported
        out.note = f"decisions refused ({refused.stderr.strip()[8:60]!r}...), status reports it: {reported}"
        return finish(bed, out, kept)


@fault("database deleted", "aurora.db, -wal and -shm unlinked while the engine runs")
def db_deleted(work: Path) -> Outcome:
    return _database_gone(work, replace=False)


@fault("database replaced", "another SQLite file renamed over aurora.db while the engine runs")
def db_replaced(work: Path) -> Outcome:
    return _database_gone(work, replace=True)


@fault("corrupt database", "garbage written over aurora.db, then the engine and the CLI started on it")
def db_corrupt(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.db.write_bytes(b"this is not a database\0" * 4096)
        return _refused_database(bed)


# --- hostile files --------------------------------------------------------------------------------------

@fault("symlinked lock", "aurora.db.lock is a symlink to a victim file; the engine is started")
def lock_symlink(work: Path) -> Outcome:
    with Bed(work) as bed:
        victim = work / "victim"
        victim.write_text("precious\n")
        os.symlink(victim, f"{bed.db}.lock")
        done = bed.run_in_foreground()
        intact = victim.read_text() == "precious\n"
        out = Outcome(healed=done.returncode != 0 and intact and "symbolic link" in done.stderr)
        out.note = f"refused: exit {done.returncode}, victim intact: {intact}"
        out.left = bed.left_behind()
        return out


@fault("files deleted, second engine", "the lock, the socket, the database and its WAL unlinked; a second engine started on the same --db")
def files_deleted(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.start()
        bed.acknowledge("before")
        kept = _keep(bed.db)
        for path in (Path(f"{bed.db}.lock"), socket_path(bed.db), *[Path(f"{bed.db}{x}") for x in ("", "-wal", "-shm")]):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        second = bed.run_in_foreground()
        alone = bed.engine is not None and bed.engine.poll() is None and one_line_error(second)
        out = Outcome(supervising=bed.kept_supervising_unseen("web"), healed=alone)
        out.note = f"second engine refused: {second.stderr.strip()[:70]!r}"
        return finish(bed, out, kept)


@fault("private files", "modes of the database, logs, lock and socket, read by nobody (uid 65534)", NEEDS_ROOT)
def private_files(work: Path) -> Outcome:
    home = work / "private"
    home.mkdir(mode=0o755)
    with Bed(home) as bed:
        bed.start()
        paths = [bed.db, Path(f"{bed.db}.lock"), socket_path(bed.db), *bed.log_dir.glob("*.log")]
        loose = [f"{p.name} {oct(p.stat().st_mode & 0o777)}" for p in paths if p.exists() and p.stat().st_mode & 0o077]
        dirs = [d for d in (bed.log_dir,) if d.stat().st_mode & 0o077]
        reader = subprocess.run(["head", "-c", "16", str(bed.db)], user=65534, capture_output=True)
        out = Outcome(supervising=bed.kept_supervising("web"), healed=not loose and not dirs and reader.returncode != 0)
        out.note = "all 0600 in 0700, nobody cannot read" if out.healed else f"loose: {loose + [str(d) for d in dirs]}"
        return finish(bed, out)


# --- the engine itself --------------------------------------------------------------------------------

@fault("engine kill -9", "kill -9 of an idle engine, then a new engine on the same database")
def engine_kill9(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.start()
        bed.acknowledge("before")
        old = {n: r["pid"] for n, r in bed.status().items()}
        bed.kill9()
        bed.start(wait_healthy=False)
        healthy = bed.healthy(45.0, not_pids=old)
        orphans = [pid for pid in old.values() if pid and procfs.running(pid)]
        out = Outcome(supervising=bed.kept_supervising("web"), healed=bool(healthy) and not orphans)
        out.note = f"new generation healthy, orphans of the old: {len(orphans)}"
        return finish(bed, out)


@fault("engine kill -9 in a restart storm", "aurora restart of every service in parallel, kill -9 of the engine amid it, 3 times")
def engine_kill9_storm(work: Path) -> Outcome:
    with Bed(work, services={"web": {}, "api": {}, "cache": {}}) as bed:
        bed.start()
        bed.acknowledge("before")
        ok = True
        for _ in range(3):
            old = {n: r["pid"] for n, r in bed.status().items()}
            storm = restart_storm(bed)
            time.sleep(0.3)  # amid the storm: the restarts have been asked for and are running
            bed.kill9()
            reap(storm)
            bed.start(wait_healthy=False)
            healthy = bed.healthy(60.0)
            ok = ok and bool(healthy) and not [p for p in old.values() if p and procfs.running(p) and p not in {r["pid"] for r in healthy.values()}]
        out = Outcome(supervising=bed.kept_supervising("web"), healed=ok, note="3 storms, healthy after each, no orphan")
        return finish(bed, out)


# A service that takes its whole stop_timeout to stop: SIGTERM is ignored, so an operator's restart
# stays in flight for seconds, long enough to kill the engine amid it.
STUBBORN = """
import signal, socket, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    s.accept()[0].close()
"""


@fault("engine kill -9 amid an operator restart", "aurora restart of a slow-stopping service, kill -9 of the engine while it executes")
def engine_kill9_inflight(work: Path) -> Outcome:
    port = free_port()
    stubborn = (f'[[service]]\nname = "stubborn"\ncommand = {json.dumps([sys.executable, "-c", STUBBORN, str(port)])}\n'
                f"port = {port}\nhealth = {{ tcp = true, timeout = 1.0 }}\nstop_timeout = 4\nstart_grace = 5\n")
    with Bed(work, services={"web": {}}, extra_toml=stubborn) as bed:
        bed.start()
        bed.ports["stubborn"] = port
        bed.acknowledge("before")
        restart = subprocess.Popen([sys.executable, "-m", "aurora_tui.cli", "restart", "stubborn", "--db", str(bed.db)], env=bed.env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        plan = wait_for(lambda: _plan_executing(bed.db, "stubborn"), 20, poll=0.02)
        bed.kill9()
        reap([restart])
        reborn = time.time()
        bed.start(wait_healthy=False)
        healthy = bed.healthy(45.0)
        status = wait_for(lambda: _plan_decided(bed.db, plan), 20) if plan else None
        starts = _starts_since(bed.db, "stubborn", reborn)
        out = Outcome(supervising=bed.kept_supervising("web"), healed=bool(plan) and bool(healthy) and status == "superseded" and starts == 1)
        out.note = f"plan #{plan} in flight -> {status}; started {starts}x by the new engine" if plan else "the restart was never seen executing"
        return finish(bed, out)


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def _plan_executing(db: Path, service: str) -> int | None:
    with contextlib.closing(_ro(db)) as conn:
        row = conn.execute("SELECT id FROM plans WHERE service = ? AND status = 'executing' ORDER BY id DESC LIMIT 1", (service,)).fetchone()
    return row[0] if row else None


def _plan_status(db: Path, plan: int | None) -> str | None:
    with contextlib.closing(_ro(db)) as conn:
        row = conn.execute("SELECT status FROM plans WHERE id = ?", (plan,)).fetchone()
    return row[0] if row else None


def _plan_decided(db: Path, plan: int) -> str | None:
    """The plan's status once the new engine has judged it again (None while it has not)."""
    status = _plan_status(db, plan)
    return status if status not in ("executing", "approved") else None


def _starts_since(db: Path, service: str, since: float) -> int:
    with contextlib.closing(_ro(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM owned_processes WHERE service = ? AND started_at > ?", (service, since)).fetchone()[0])


@fault("engine SIGTERM in a restart storm", "aurora restart of every service in parallel, SIGTERM of the engine amid it")
def engine_term_storm(work: Path) -> Outcome:
    with Bed(work, services={"web": {}, "api": {}, "cache": {}}) as bed:
        bed.start()
        bed.acknowledge("before")
        storm = restart_storm(bed)
        time.sleep(0.3)
        code = bed.stop()
        reap(storm)
        out = Outcome(healed=code == 0, note=f"engine exit status {code}")
        return finish(bed, out)


@fault("engine SIGSTOP", "the engine frozen with SIGSTOP; the CLI asked; then SIGCONT")
def engine_sigstop(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.start()
        assert bed.engine is not None
        bed.engine.send_signal(signal.SIGSTOP)
        try:
            done = bed.cli("status", "--timeout", "3") if _has_timeout_flag(bed) else bed.cli("status")
        finally:
            bed.engine.send_signal(signal.SIGCONT)
        out = Outcome(supervising=bed.kept_supervising("web"))
        out.healed = one_line_error(done) and bed.cli("status").returncode == 0
        out.note = f"frozen: exit {done.returncode} {done.stderr.strip()[:60]!r}"
        return finish(bed, out)


def _has_timeout_flag(bed: Bed) -> bool:
    return "--timeout" in bed.cli("status", "--help").stdout


@fault("leader died while the engine was down", "kill -9 of the engine, then of a service leader; its worker keeps the port")
def dead_leader_worker(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.start()
        rows = bed.status()
        port = bed.ports["web"]
        worker = _fork_worker(bed, port)
        bed.kill9()
        leader = rows["web"]["pid"]
        os.kill(leader, signal.SIGKILL)
        bed.start(wait_healthy=False)
        healthy = bed.healthy(45.0, not_pids={"web": leader})
        worker_gone = wait_for(lambda: worker is None or not procfs.running(worker), 15)
        out = Outcome(supervising=bed.kept_supervising("api"), healed=bool(healthy) and bool(worker_gone))
        out.note = f"worker {'stopped' if worker_gone else 'left running'}" if worker else "no worker could be forked"
        return finish(bed, out)


def _fork_worker(bed: Bed, port: int) -> int | None:
    """A worker of the leader that outlives it: the demo's ``orphans`` switch double-forks one into the
    service's process group, holding memory, like a forgotten background worker."""
    import urllib.request
    try:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/fault/orphans?count=1", method="POST"), timeout=10).close()
    except OSError:
        return None
    found = wait_for(lambda: [p.pid for p in bed.tagged() if "aurora-demo-orphan" in " ".join(p.cmdline())], 10)
    return found[0] if found else None


# --- the socket -----------------------------------------------------------------------------------------

GARBAGE = [b"{", b"\xff\xfe", b"[]", b'{"id": 1e400, "method": "ping"}', b'{"id": 1180591620717411303424, "method": "ping"}',
           b'{"id": NaN, "method": "ping"}', b'{"id": {"a": 1}, "method": "ping"}', b'{"id": 1, "method": "chaos", "params": [1]}',
           b'{"id": 1, "method": "nope"}', b"[" * 100000 + b"]" * 100000, b'{"id": 1, "method": "ping", "params": {"x": 1}}',
           b"x" * (4 << 20)]


@fault("garbage on the socket", f"{len(GARBAGE)} malformed requests on one connection (bad JSON, ids, params, nesting, 4 MiB line)")
def socket_garbage(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.start()
        answers = raw_requests(bed.db, GARBAGE + [b'{"id": 2, "method": "ping"}'])
        parsed = [json.loads(a) if a else None for a in answers]
        answered = sum(1 for p in parsed[:-1] if p and p.get("ok") is False)
        still = bool(parsed[-1] and parsed[-1].get("ok"))
        out = Outcome(supervising=bed.kept_supervising("web"), healed=answered == len(GARBAGE) and still)
        out = finish(bed, out)
        tracebacks = bed.stderr().count("Traceback")
        out.healed = bool(out.healed) and tracebacks == 0
        out.note = f"{answered}/{len(GARBAGE)} answered with an error, then ping ok: {still}; tracebacks: {tracebacks}"
        return out


@fault("1000 concurrent clients", "1000 connections at once, each asking ping")
def socket_thousand(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.start()
        barrier = threading.Barrier(1000, timeout=60)

        def one(_: int) -> bool:
            with reachable(socket_path(bed.db)) as where, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(60)
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
                conn.connect(where)
                conn.sendall(b'{"id": 1, "method": "ping"}\n')
                return bool(json.loads(conn.makefile("rb").readline()).get("ok"))

        with ThreadPoolExecutor(1000) as pool:
            results = list(pool.map(lambda i: _safe(one, i), range(1000)))
        ok = sum(results)
        out = Outcome(supervising=bed.kept_supervising("web"), healed=ok == 1000, note=f"{ok}/1000 answered")
        return finish(bed, out)


def _safe(fn: Callable[[int], bool], i: int) -> bool:
    try:
        return fn(i)
    except (OSError, ValueError):
        return False


# --- bounds and neighbours ------------------------------------------------------------------------------

@fault("unbounded start_grace", "start_grace = 99999999999999999999 in the config; check-config and run")
def bound_start_grace(work: Path) -> Outcome:
    with Bed(work, services={"web": {"start_grace": 99999999999999999999}}) as bed:
        check = bed.cli("check-config", str(bed.config))
        run = bed.run_in_foreground(20)
        out = Outcome(healed=check.returncode == 2 and run.returncode == 2 and "start_grace" in check.stdout + check.stderr)
        out.note = f"check-config exit {check.returncode}, run exit {run.returncode}"
        out.left = bed.left_behind()
        return out


@fault("unbounded interval", "interval = 1e308 in the config; check-config and run")
def bound_interval(work: Path) -> Outcome:
    with Bed(work, interval=1e308) as bed:
        check = bed.cli("check-config", str(bed.config))
        run = bed.run_in_foreground(20)
        out = Outcome(healed=check.returncode == 2 and run.returncode == 2 and "interval" in check.stdout + check.stderr)
        out.note = f"check-config exit {check.returncode}, run exit {run.returncode}"
        out.left = bed.left_behind()
        return out


@fault("slow starter", "one service never healthy with start_grace = 3600; the others and the scans go on")
def slow_starter(work: Path) -> Outcome:
    bed = Bed(work, services={"slow": {"start_grace": 3600}, "web": {}})
    # "slow" answers on another port than its health check asks: it never becomes healthy.
    text = bed.config.read_text().replace(f'"--port", "{bed.ports["slow"]}"', f'"--port", "{free_port()}"', 1)
    bed.config.write_text(text)
    try:
        bed.start(wait_healthy=False)
        web = bed.healthy(30.0, names=("web",))
        still_starting = bed.status().get("slow", {}).get("state") == "starting"
        out = Outcome(supervising=bed.kept_supervising("web"), healed=bool(web) and still_starting)
        out.note = "web healthy while slow starts" if web else "web held up by slow"
        return finish(bed, out)
    finally:
        bed.close()


@fault("another engine's port", "a second engine on another database configured with the first one's port")
def other_engine_port(work: Path) -> Outcome:
    first = Bed(work, "first")
    second = Bed(work, "second", services={"web": {"port": 0}})
    try:
        first.start()
        text = second.config.read_text().replace(str(second.ports["web"]), str(first.ports["web"]))
        second.config.write_text(text)
        second.ports["web"] = first.ports["web"]
        first_pid = first.status()["web"]["pid"]
        second.start(wait_healthy=False)
        said = wait_for(lambda: any(str(first.db) in json.dumps(r) for r in _incidents(second)), 30)
        untouched = first.status().get("web", {}).get("pid") == first_pid
        out = Outcome(supervising=first.kept_supervising("web"), healed=bool(said) and untouched)
        out.note = f"named the other engine: {bool(said)}; its service untouched: {untouched}"
        second.left_behind()
        return finish(first, out)
    finally:
        second.close()
        first.close()


def _incidents(bed: Bed) -> list[dict[str, Any]]:
    done = bed.cli("incidents", "--json")
    rows = json.loads(done.stdout) if done.returncode == 0 else []
    return rows.get("incidents", rows) if isinstance(rows, dict) else rows


@fault("foreign squatter", "a foreign process binds a service's port while it is stopped; the service is started")
def foreign_squatter(work: Path) -> Outcome:
    bed = Bed(work)
    squatter = None
    try:
        bed.start()
        bed.cli("stop", "web")
        squatter = subprocess.Popen([sys.executable, "-c", _SQUAT, str(bed.ports["web"])], env=bed.env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert squatter.stdout is not None
        squatter.stdout.readline()
        bed.cli("start", "web", timeout=30)
        incident = open_incident(bed, "port_conflict_foreign", 30)
        out = Outcome(supervising=bed.kept_supervising("api"), healed=bool(incident) and squatter.poll() is None)
        out.note = "foreign holder named, never killed without a human" if out.healed else f"incident={bool(incident)}, squatter alive={squatter.poll() is None}"
        squatter.kill()
        squatter.wait()
        return finish(bed, out)
    finally:
        if squatter is not None and squatter.poll() is None:
            squatter.kill()
            squatter.wait()
        bed.close()


# SO_REUSEADDR, as real servers set it: the service's closed health connections sit in TIME_WAIT.
_SQUAT = "import socket, sys, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', int(sys.argv[1])))\ns.listen()\nprint('bound', flush=True)\ntime.sleep(120)\n"


@fault("service frozen", "SIGSTOP of a service from outside (alive, never answers)")
def service_sigstop(work: Path) -> Outcome:
    with Bed(work) as bed:
        bed.start()
        pid = bed.status()["web"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        healed = bed.healthy(45.0, names=("web",), not_pids={"web": pid})
        out = Outcome(supervising=bed.kept_supervising("api"), healed=bool(healed), note="hung -> restarted")
        return finish(bed, out)


# --- the run --------------------------------------------------------------------------------------------

def run(only: str | None = None) -> dict[str, Any]:
    rows = []
    for name, how, skip, fn in FAULTS:
        if only and only not in name:
            continue
        started = time.monotonic()
        if skip:
            rows.append({"fault": name, "how": how, "skipped": skip})
            continue
        with tempfile.TemporaryDirectory(prefix="aurora-faults-") as tmp:
            try:
                out = fn(Path(tmp))
            except Exception as exc:  # one broken row must not hide the others
                out = Outcome(note=f"error: {type(exc).__name__}: {exc}"[:160], healed=False)
        rows.append({"fault": name, "how": how, "supervising": out.supervising, "healed": out.healed, "lost": out.lost,
                     "left": out.left, "note": out.note, "seconds": round(time.monotonic() - started, 1)})
    return {"rows": rows, "report": report(rows)}


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def report(rows: list[dict[str, Any]]) -> str:
    lines = ["| fault | kept supervising | healed | acknowledged lost | left behind | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['fault']} | skipped | | | | {r['skipped']} |")
            continue
        lost = "none" if not r["lost"] else f"**{len(r['lost'])}**: {'; '.join(r['lost'])[:60]}"
        left = "none" if not r["left"] else f"**{len(r['left'])}**: {'; '.join(r['left'])[:60]}"
        lines.append(f"| {r['fault']} | {_yes(r['supervising'])} | {_yes(r['healed'])} | {lost} | {left} | {r['note']} |")
    ran = [r for r in rows if "skipped" not in r]
    lines.append("")
    lines.append(f"{len(ran)} faults run, {len(rows) - len(ran)} skipped; healed {sum(1 for r in ran if r['healed'])}/{len(ran)}; "
                 f"acknowledged lost: {sum(len(r['lost']) for r in ran)}; left behind: {sum(len(r['left']) for r in ran)}")
    return "\n".join(lines)
