"""Trust after a crash of the engine, caused for real: ``kill -9`` of headless engines amid restart
storms, leaders killed while no engine watches, a zombie caught before its reap, SIGSTOP, a restart in
flight when the engine dies, and two engines on different databases configured with the same port."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aurora_tui.core import procfs
from aurora_tui.core.control import NoEngine
from aurora_tui.core.engine import Engine
from aurora_tui.core.lineage import TAG_VAR, Owner, cgroup2_base, engine_key, owner_of
from aurora_tui.core.model import FleetSnapshot, ProcessIdentity
from aurora_tui.core.plans import Action, ProcessTarget
from aurora_tui.core.records import Records
from aurora_tui.core.rejudge import Now, moot
from aurora_tui.core.remote import RemoteEngine

from .fleet import script_fleet
from .helpers import async_wait_until, free_port, gone, wait_until
from .live import demo_service, fleet_config, incident_for, restarted_healthy, running
from .test_descendants import CGROUP_WRITABLE, MODES, mode  # noqa: F401  (the fixture: cgroup or subreaper)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

AURORA = [sys.executable, "-m", "aurora_tui"]
PY = sys.executable

# An HTTP service that holds on to SIGTERM while its hold file exists: a stop of it stays in flight.
HOLDING = """
import http.server, os, pathlib, signal, sys
port, hold = int(sys.argv[1]), pathlib.Path(sys.argv[2])
def on_term(signum, frame):
    if not hold.exists():
        os._exit(0)
signal.signal(signal.SIGTERM, on_term)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

# A leader with one worker in its process group, which runs a program of its own.
WITH_WORKER = """
import os, sys, time
if os.fork() == 0:
    os.execv(sys.executable, [sys.executable, "-c", "import time\\nwhile True: time.sleep(60)", "worker-of-leader"])
while True:
    time.sleep(60)
"""


# --- a headless engine, reached as an operator reaches it -------------------------------------------


class Headless:
    """``aurora run --headless`` on ``db``, with its stderr kept for the log lines it writes."""

    def __init__(self, config: Path, db: Path, err: Path, interval: float = 0.5) -> None:
        self.db = db
        self.err_path = err
        with open(err, "a") as handle:
            self.proc = subprocess.Popen(
                [*AURORA, "run", "--headless", "--config", str(config), "--db", str(db), "--interval", str(interval)],
                stdout=subprocess.DEVNULL, stderr=handle, start_new_session=True,
            )

    def err(self) -> str:
        return self.err_path.read_text()

    def snapshot(self) -> FleetSnapshot | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the engine exited with {self.proc.returncode}:\n{self.err()[-3000:]}")

        async def ask() -> FleetSnapshot:
            remote = RemoteEngine(self.db)
            try:
                return await remote.snapshot()
            finally:
                await remote.close()

        try:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(ask())
            with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from an async test
                return pool.submit(asyncio.run, ask()).result()
        except (NoEngine, OSError):
            return None

    def wait_healthy(self, timeout: float = 60) -> FleetSnapshot:
        def healthy():
            snap = self.snapshot()
            return snap if snap is not None and all(s.healthy and s.pid for s in snap.services) else None

        return wait_until(healthy, timeout=timeout, interval=0.05, what="the fleet healthy")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, self.err()[-3000:]

    def cleanup(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@contextlib.contextmanager
def engines():
    """Every engine a test starts, killed at the end whatever happened (services of a killed engine
    are the next engine's to stop; the leftovers guard catches what is not)."""
    started: list[Headless] = []
    try:
        yield started
    finally:
        for engine in started:
            engine.cleanup()
        for pid, _ in lineage_processes_of_test().items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def toml(tmp_path: Path, services: list[dict]) -> Path:
    """A fleet file: each service a dict of keys (command as a list, health as a table)."""
    lines = ['[aurora]\nlog_dir = "logs"\n']
    for svc in services:
        lines.append("[[service]]")
        for key, value in svc.items():
            if isinstance(value, dict):
                value = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
            else:
                value = json.dumps(value)
            lines.append(f"{key} = {value}")
        lines.append("")
    path = tmp_path / "fleet.toml"
    path.write_text("\n".join(lines))
    return path


def demo(name: str, port: int) -> dict:
    return {
        "name": name, "command": [PY, "-m", "aurora_tui.demo.service", "--name", name, "--port", str(port)], "port": port,
        "health": {"http": "/healthz", "expect_body": '"status": "ok"', "timeout": 1.0},
        "start_grace": 5, "stop_timeout": 1, "restart_delay": 0.1,
    }


def lineage_processes(db: Path) -> dict[int, float]:
    """Every live process carrying the lineage tag of the engine on ``db``: pid -> create time."""
    prefix = engine_key(db) + "/"
    found = {}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TAG_VAR, "").startswith(prefix) and proc.status() != psutil.STATUS_ZOMBIE:
                found[proc.pid] = proc.create_time()
        except (psutil.Error, OSError):
            pass
    return found


def lineage_processes_of_test() -> dict[int, float]:
    tag = os.environ["AURORA_TEST_TAG"]
    found = {}
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            if env.get("AURORA_TEST_TAG") == tag and TAG_VAR in env and proc.status() != psutil.STATUS_ZOMBIE:
                found[proc.pid] = proc.create_time()
        except (psutil.Error, OSError):
            pass
    return found


def same_process_alive(pid: int, create_time: float) -> bool:
    """Whether the very process (pid *and* start time) still runs; a zombie holds nothing and counts as gone."""
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == create_time and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def tree(pid: int) -> set[int]:
    try:
        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return set()


# --- kill -9 amid restart storms, ten times in a row ------------------------------------------------


@pytest.mark.timeout(420)
def test_kill_9_amid_restart_storms_ten_times_leaves_no_orphan_and_restarts_nothing_twice(tmp_path):
    names = ("alpha", "beta", "gamma")
    config = toml(tmp_path, [demo(name, free_port()) for name in names])
    db = tmp_path / "aurora.db"
    with engines() as started:
        engine = Headless(config, db, tmp_path / "engine-0.err")
        started.append(engine)
        reclaimed = 0
        for round_ in range(10):
            engine.wait_healthy()
            mark = time.time()
            storm = [subprocess.Popen([*AURORA, "restart", name, "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for name in names]
            # Killed at a different point of the storm each round: after 1 to 4 of its steps (a restart
            # request taken, a leader stopped, a new one started).
            steps = 1 + round_ % 4
            wait_until(lambda: query(db, "SELECT count(*) FROM events WHERE ts >= ? AND kind IN ('restart', 'exited', 'started')",
                                     (mark,))[0][0] >= steps, timeout=60, interval=0.01, what=f"{steps} steps of the storm")
            engine.kill9()
            for client in storm:
                client.communicate(timeout=60)  # "the engine closed the connection", or done just before
            # What the dead engine left: services it was not stopping, leaders it had just started
            # (a stop already signalled may also end on its own meanwhile).
            left_by_old = lineage_processes(db)
            reclaimed += len(left_by_old)

            engine = Headless(config, db, tmp_path / f"engine-{round_ + 1}.err")
            started.append(engine)
            snap = engine.wait_healthy()
            orphans = {pid: ct for pid, ct in left_by_old.items() if same_process_alive(pid, ct)}
            assert not orphans, f"round {round_}: the old generation survived: {orphans}\n{engine.err()[-3000:]}"
            fleet = set().union(*(tree(s.pid) for s in snap.services))
            assert set(lineage_processes(db)) <= fleet, f"round {round_}: processes of ours outside the fleet"

            # The restarts in flight were judged again, not run again: the new engine started each
            # service once (its own start of the fleet), and no plan of the old one is left running.
            def settled():
                return not query(db, "SELECT id FROM plans WHERE status IN ('approved', 'executing')")

            wait_until(settled, timeout=60, what="the interrupted plans judged again")
            run_id = query(db, "SELECT max(id) FROM engine_runs")[0][0]
            starts = dict(query(db, "SELECT service, count(*) FROM owned_processes WHERE run_id = ? GROUP BY service", (run_id,)))
            assert starts == {name: 1 for name in names}, f"round {round_}: {starts}"
        superseded = query(db, "SELECT count(*) FROM plans WHERE pattern = 'manual' AND status = 'superseded'")[0][0]
        assert superseded >= 1, "no restart was in flight at any of the ten kills"
        assert reclaimed >= 10, "the kills left (almost) nothing for the next engine to stop"
        engine.terminate()
        assert not lineage_processes(db)


# --- workers of a leader that died while no engine was watching -------------------------------------


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_workers_of_a_leader_killed_while_the_engine_was_down_are_stopped_and_logged(tmp_path, mode):
    (tmp_path / "leader.py").write_text(WITH_WORKER)
    config = toml(tmp_path, [{"name": "pool", "command": [PY, str(tmp_path / "leader.py")], "start_grace": 0.5, "stop_timeout": 1}])
    db = tmp_path / "aurora.db"
    with engines() as started:
        first = Headless(config, db, tmp_path / "first.err")
        started.append(first)
        leader = first.wait_healthy().services[0].pid
        worker = wait_until(lambda: next((c.pid for c in psutil.Process(leader).children()
                                          if "worker-of-leader" in c.cmdline()), None), what="the worker")
        first.kill9()
        os.kill(leader, signal.SIGKILL)
        wait_until(lambda: gone(leader), what="the leader gone")
        assert procfs.running(worker) and os.getpgid(worker) == leader, "the worker outlives its leader"

        second = Headless(config, db, tmp_path / "second.err")
        started.append(second)
        second.wait_healthy()
        assert gone(worker), "the new engine left the dead leader's worker running"
        log = second.err()
        assert f"pid {worker}" in log and "worker-of-leader" in log, log
        events = query(db, "SELECT data_json FROM events WHERE kind = 'stale_stopped'")
        data = [json.loads(row[0]) for row in events]
        assert any(worker in d["pids"] and any("worker-of-leader" in c for c in d["commands"]) for d in data), data
        second.terminate()


# --- identity recorded only after exec --------------------------------------------------------------


def _proc_stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


@pytest.mark.parametrize("mode", MODES, indirect=True)
async def test_every_recorded_identity_is_of_the_execd_program_and_matches_proc(tmp_path, mode):
    svc = demo_service("web")
    async with running(fleet_config(tmp_path, svc, interval=3600)) as engine:
        for _ in range(5):
            pid = engine.fleet.runners["web"].pid
            rows = await engine.records.store.fetch(
                "SELECT pid, create_time, cmdline, starttime, exe, pgid, sid, cgroup, boot_id FROM owned_processes ORDER BY id DESC LIMIT 1"
            )
            row = dict(rows[0])
            stat = _proc_stat(pid)
            assert row["pid"] == pid
            assert row["starttime"] == int(stat[19])  # /proc/PID/stat field 22, exactly
            assert row["exe"] == os.readlink(f"/proc/{pid}/exe")
            assert row["pgid"] == os.getpgid(pid) == pid and row["sid"] == os.getsid(pid) == pid
            cgroup = next(line[3:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line.startswith("0::"))
            assert row["cgroup"] == cgroup and (cgroup.endswith(f"{engine_key(tmp_path / 'aurora.db')}/web") == (mode == "cgroup"))
            assert row["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            assert json.loads(row["cmdline"]) == list(svc.command) == psutil.Process(pid).cmdline()
            assert abs(row["create_time"] - psutil.Process(pid).create_time()) < 1e-6
            await engine.restart("web")
        rows = await engine.records.store.fetch("SELECT cmdline, starttime, exe, pgid, sid FROM owned_processes")
        assert len(rows) == 6
        assert all(json.loads(r["cmdline"]) == list(svc.command) and None not in (r["starttime"], r["exe"], r["pgid"], r["sid"]) for r in rows)


def test_records_of_the_old_schema_are_matched_the_old_way(tmp_path):
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)", "old-row"], start_new_session=True)
    try:
        ps = wait_until(lambda: p if (p := psutil.Process(proc.pid)).cmdline()[-1:] == ["old-row"] else None, what="the exec")
        old = ProcessIdentity(proc.pid, ps.create_time(), tuple(ps.cmdline()))  # no start time: an old row
        assert procfs.matches(old, procfs.current(proc.pid))
        assert not procfs.matches(ProcessIdentity(proc.pid, ps.create_time() - 1.0, old.cmdline), procfs.current(proc.pid))
        new = procfs.identity(proc.pid)
        assert new is not None and procfs.matches(new, procfs.current(proc.pid))
        reused = ProcessIdentity(proc.pid, new.create_time, new.cmdline, starttime=new.starttime + 1, exe=new.exe)
        assert not procfs.matches(reused, procfs.current(proc.pid))  # same pid, another start: another process
    finally:
        proc.kill()
        proc.wait()


# --- status never lies ------------------------------------------------------------------------------


def _block_until_state(pid: int, states: str) -> None:
    """Wait for the kernel to show ``pid`` in one of ``states`` while NOT running the event loop (so
    the engine cannot reap it meanwhile). Bounded."""
    deadline = time.monotonic() + 10
    while procfs.state(pid) not in set(states):
        assert time.monotonic() < deadline, f"pid {pid} never reached state {states} (is {procfs.state(pid)})"
        time.sleep(0.001)


async def test_status_never_reports_a_killed_zombie_or_stopped_leader_healthy(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("web"), interval=3600)) as engine:
        runner = engine.fleet.runners["web"]
        pid = runner.pid
        assert engine.monitor.status_of("web").healthy and engine.fleet.health["web"].ok

        # SIGSTOP: really there, so its pid stays; it cannot answer, so it is not healthy, even though
        # the last health answer (kept in the fleet's cache) was a good one.
        os.kill(pid, signal.SIGSTOP)
        _block_until_state(pid, "Tt")
        status = engine.monitor.status_of("web")
        assert status.pid == pid and status.healthy is False and "stopped" in status.health_error
        assert engine.fleet.health["web"].ok  # the cache alone would have said healthy
        os.kill(pid, signal.SIGCONT)
        _block_until_state(pid, "RSD")
        assert engine.monitor.status_of("web").healthy

        # SIGKILL, then the status between the kill and the reap: the leader is a zombie, its exit not
        # collected yet (the loop, which would collect it, is not running here).
        os.kill(pid, signal.SIGKILL)
        _block_until_state(pid, "Z")
        assert runner.exited_unreaped and not runner.alive
        snap = await engine.snapshot()  # computed without yielding to the loop
        status = snap.service("web")
        assert status.pid is None and status.healthy is False and "not collected" in status.health_error
        assert snap.healthy_count == 0
        assert engine.monitor.owned_pids() == set()

        # Once reaped it is a crash like any other: healed.
        await restarted_healthy(engine, "web", pid, timeout=60)
        assert engine.monitor.status_of("web").pid != pid


# --- re-judged after a crash, not re-run --------------------------------------------------------------


def test_operator_actions_in_flight_at_kill_9_are_judged_again_not_run_again(tmp_path):
    """A restart in flight is superseded by the new engine's own start of the fleet; a stop in flight is
    still needed after that start, so it is carried out."""
    (tmp_path / "holding.py").write_text(HOLDING)
    hold = tmp_path / "hold"
    services = [
        {"name": name, "command": [PY, str(tmp_path / "holding.py"), str(port), str(hold)], "port": port,
         "health": {"http": "/", "expect_body": "ok", "timeout": 1.0}, "start_grace": 5, "stop_timeout": 30}
        for name, port in (("restarted", free_port()), ("stopped", free_port()))
    ]
    config, db = toml(tmp_path, services), tmp_path / "aurora.db"
    with engines() as started:
        first = Headless(config, db, tmp_path / "first.err")
        started.append(first)
        old = {s.name: s.pid for s in first.wait_healthy().services}
        hold.write_text("SIGTERM is held: the stops stay in flight")
        clients = [subprocess.Popen([*AURORA, verb, name, "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for verb, name in (("restart", "restarted"), ("stop", "stopped"))]

        def in_flight():
            rows = query(db, "SELECT service, id, status FROM plans WHERE pattern = 'manual'")
            return {r[0]: r[1] for r in rows if r[2] == "executing"} if len(rows) == 2 else None

        plans = wait_until(lambda: (p := in_flight()) and len(p) == 2 and p, timeout=30, what="both operator actions executing")
        wait_until(lambda: all(procfs.state(p) is not None for p in old.values()), what="the old leaders (still holding SIGTERM)")
        first.kill9()
        for client in clients:
            _, err = client.communicate(timeout=60)
            assert client.returncode == 1, err  # the operator was told it did not finish
        hold.unlink()  # from now on SIGTERM ends them

        second = Headless(config, db, tmp_path / "second.err")
        started.append(second)

        def decided():
            rows = {r[0]: r for r in query(db, "SELECT id, status, outcome FROM plans WHERE id IN (?, ?)", tuple(plans.values()))}
            return rows if all(r[1] not in ("approved", "executing") for r in rows.values()) else None

        rows = wait_until(decided, timeout=60, what="the interrupted actions judged again")
        restart_plan, stop_plan = rows[plans["restarted"]], rows[plans["stopped"]]
        assert restart_plan[1] == "superseded" and "already restarted since" in restart_plan[2], restart_plan
        assert stop_plan[1] == "executed", stop_plan
        assert all(gone(pid) for pid in old.values())

        def stopped_for_good():
            snap = second.snapshot()
            return snap if snap and snap.service("stopped").state == "stopped" and snap.service("restarted").healthy else None

        snap = wait_until(stopped_for_good, timeout=60, what="'stopped' stopped and 'restarted' running")
        run_id = query(db, "SELECT max(id) FROM engine_runs")[0][0]
        starts = dict(query(db, "SELECT service, count(*) FROM owned_processes WHERE run_id = ? GROUP BY service", (run_id,)))
        # The new engine started each once (its start of the fleet): the restart was not run a second time.
        assert starts == {"restarted": 1, "stopped": 1}, starts
        assert snap.service("restarted").restarts == 0
        events = [json.loads(r[0]) for r in query(db, "SELECT data_json FROM events WHERE kind = 'plan_finished'")]
        assert any(e.get("plan") == plans["restarted"] for e in events)
        second.terminate()


# --- a port held by another Aurora engine -------------------------------------------------------------


async def test_a_port_held_by_another_aurora_engine_is_named_not_killed(tmp_path):
    port = free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "web.py").write_text(HOLDING)
    command = [PY, str(tmp_path / "web.py"), str(port), str(tmp_path / "no-hold")]
    svc = {"name": "web", "command": command, "port": port, "health": {"http": "/", "expect_body": "ok", "timeout": 1.0},
           "start_grace": 2, "stop_timeout": 2}
    db_a = tmp_path / "a" / "other.db"
    with engines() as started:
        other = Headless(toml(tmp_path / "a", [svc]), db_a, tmp_path / "a.err")
        started.append(other)
        holder = other.wait_healthy().services[0].pid
        # The same service, on the same port, under a second engine on another database.
        config = script_fleet(tmp_path / "b", {"web": {"script": HOLDING, "port": port, "health": {"http": "/", "expect_body": "ok"},
                                                       "start_grace": 2, "stop_timeout": 2}})
        config = dataclasses_replace_command(config, command)
        async with running(config, healthy=False) as engine:
            incident = await incident_for(engine, "web", "port_conflict_foreign", timeout=60)
            assert f"held by pid {holder}, service web of the Aurora engine on {db_a.resolve()}" in incident.summary, incident.summary
            assert incident.evidence["holder_engine"] == str(db_a.resolve()) and incident.evidence["holder_service"] == "web"

            async def plan():
                rows = [p for p in await engine.list_plans(status=None) if p.incident_id == incident.id and p.status != "executing"]
                return rows[0] if rows else None

            row = await async_wait_until(plan, timeout=60, what="the plan for the conflict")
            assert row.fix == "notify" and row.status == "escalated", row
            assert [a["params"].get("holder_engine") for a in row.actions] == [str(db_a.resolve())]
            assert "port_conflict_stale" not in {i.pattern for i in await engine.list_incidents(service="web")}
            log = await engine.records.store.fetch("SELECT kind FROM actions_log WHERE kind IN ('free_port', 'terminate', 'kill')")
            assert log == []
        assert procfs.running(holder) and other.snapshot().services[0].pid == holder  # never touched
        other.terminate()


def dataclasses_replace_command(config, command):
    import dataclasses

    svc = dataclasses.replace(config.services[0], command=tuple(command))
    return dataclasses.replace(config, services=(svc,))


@pytest.mark.skipif(not CGROUP_WRITABLE, reason="cgroup v2 is not writable here")
def test_a_holder_without_a_readable_tag_is_named_by_its_aurora_cgroup(tmp_path):
    """Another user's process hides its environment from a non-root engine; its cgroup still names it."""
    group = cgroup2_base() / engine_key(tmp_path / "elsewhere.db") / "web"
    group.mkdir(parents=True)
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"], env={"PATH": os.environ.get("PATH", "")})
    try:
        (group / "cgroup.procs").write_text(str(proc.pid))
        owner = owner_of(proc.pid)
        assert owner == Owner(engine_key(tmp_path / "elsewhere.db"), "web", None)
        assert owner.describe() == f"service web of another Aurora engine ({engine_key(tmp_path / 'elsewhere.db')})"
        assert owner_of(os.getpid()) is None
    finally:
        proc.kill()
        proc.wait()
        wait_until(lambda: not (group / "cgroup.procs").read_text().strip(), what="the cgroup emptied")
        group.rmdir()
        group.parent.rmdir()


def test_rejudging_keeps_what_is_still_needed_and_drops_what_is_done():
    target = ProcessTarget(4242, 1.0, ("squatter",), 0, False, "port holder")
    plan = [Action("free_port", "web", target), Action("start", "web")]
    # The holder is gone and the new engine's start of the fleet runs the service: nothing left to do.
    done = Now("web", since=100.0, starts=((150.0, 7),), running=7, running_since=150.0, gone=("pid 4242 is gone", None))
    assert all(moot(plan, done))
    # The holder still holds the port, so the service could not start: both are still needed.
    held = Now("web", since=100.0, starts=((150.0, 7),), running=None, running_since=None, gone=(None, None))
    assert moot(plan, held) == [None, None]
    # A stop asked for before the crash is still needed once the new engine has started the service.
    stop = [Action("stop", "web")]
    assert moot(stop, done) == [None]
    assert moot(stop, held) == ["stop: web is not running"]
    # A restart by the service's own process started before the plan was decided proves nothing.
    early = Now("web", since=100.0, starts=(), running=7, running_since=50.0, gone=(None,))
    assert moot([Action("restart", "web")], early) == [None]


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a process as another user (nobody) needs root")
@pytest.mark.parametrize("mode", ["subreaper"], indirect=True)
async def test_the_sweep_never_touches_pid_1_itself_or_another_users_process(tmp_path, mode):
    config = script_fleet(tmp_path, {"svc": {"script": "import time\ntime.sleep(60)\n", "start_grace": 0.5}})
    db = Path(config.settings.db)
    tag = {**os.environ, TAG_VAR: f"{engine_key(db)}/svc"}
    sleeper = [shutil.which("sleep") or "/bin/sleep", "60"]  # a program any user may run
    started: list[subprocess.Popen] = []
    try:
        ours = subprocess.Popen(sleeper, env=tag)
        started.append(ours)
        theirs = subprocess.Popen(sleeper, env=tag, user=65534)
        started.append(theirs)
        for proc in (ours, theirs):
            wait_until(lambda p=proc: procfs.identity(p.pid), what="the exec")
        # Records that name PID 1, the engine itself and another user's process exactly, as if a crashed
        # engine had started them: the identity check passes, the sweep must still leave them alone.
        records = Records(db)
        await records.open()
        await records.start_run("<test>", 1, config.services)
        for pid in (1, os.getpid(), theirs.pid):
            records.process_started("svc", procfs.current(pid), time.time())
        await records.close()
        engine = Engine(config)
        await engine.open()
        try:
            await async_wait_until(lambda: ours.poll() is not None, timeout=10, what="our own tagged leftover stopped")
            assert theirs.poll() is None and procfs.running(theirs.pid), "another user's process was touched"
            assert procfs.running(1)
        finally:
            await engine.close()
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
