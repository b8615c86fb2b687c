"""Monitor-only services (issue 10, item 2): found by pid file, command-line match or port; their
disappearance is an incident; Aurora never starts, stops or signals them, except by running their
start_command once a human approved it. Every watched process here is real and started by the test."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from aurora_tui.cli import main
from aurora_tui.core.config import ConfigError, Config, parse_config
from aurora_tui.core.engine import Engine
from aurora_tui.core.diagnose import Diagnosis
from aurora_tui.core.guardians import Belief, GuardContext, judge
from aurora_tui.core.model import ProcessFacts, ServiceSample
from aurora_tui.core.monitor_only import by_match, pid_change, run_program
from aurora_tui.core.patterns import load_patterns
from aurora_tui.core.plans import build_plan

from .fleet import stop_process as kill  # SIGKILL from outside Aurora, as an operator or the OOM killer would
from .helpers import async_wait_until, free_port, gone, wait_until
from .live import incident_for, running, scans_pass

PY = sys.executable

# A server nobody here supervises: it binds its port (if any), writes its pid file (if any), says so.
WATCHED = """
    import os, socket, sys, time
    tag, port, pidfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if port:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); s.listen()
    if pidfile != "-":
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)
    print("ready", flush=True)
    time.sleep(600)
"""

# What an operator's start script does: start the server in the background and return once it is up.
STARTER = """
    import subprocess, sys
    watched, tag, pidfile = sys.argv[1:4]
    p = subprocess.Popen([sys.executable, watched, tag, "0", pidfile], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, start_new_session=True, text=True)
    sys.exit(0 if p.stdout.readline().strip() == "ready" else 1)
"""


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def start_watched(tmp_path: Path, tag: str, port: int = 0, pidfile: str = "-") -> subprocess.Popen:
    proc = subprocess.Popen([PY, str(script(tmp_path, "watched.py", WATCHED)), tag, str(port), pidfile],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_until(lambda: gone(pid), timeout=10, what=f"pid {pid} gone")


def fleet(tmp_path: Path, service: str, interval: float = 0.3) -> Config:
    text = f'[aurora]\ninterval = {interval}\ndb = "aurora.db"\nlog_dir = "logs"\n\n[[service]]\nname = "watched"\nmanaged = false\n{service}'
    return parse_config(text, str(tmp_path / "fleet.toml"), base_dir=tmp_path)


def toml_list(argv: list[str]) -> str:
    return "[" + ", ".join(f'"{a}"' for a in argv) + "]"


async def plans_for(engine: Engine, incident_id: int):
    return [p for p in await engine.list_plans(status=None, limit=100) if p.incident_id == incident_id]


async def a_plan(engine: Engine, incident_id: int, status: str):
    async def found():
        return next((p for p in await plans_for(engine, incident_id) if p.status == status), None)

    return await async_wait_until(found, timeout=30, what=f"a {status} plan for incident #{incident_id}")


async def assert_not_restarted(engine: Engine, tag: str, pid: int) -> None:
    """A few scans later: still gone, no runner, nothing with its command line, no action but telling."""
    await scans_pass(engine, 3)
    status = engine.monitor.status_of("watched")
    assert status is not None and status.pid is None and not status.healthy
    assert "watched" not in engine.fleet.runners
    assert gone(pid) and by_match(tag, {os.getpid()})[0] is None
    assert all(p.fix == "notify" for p in await engine.list_plans(status=None, limit=100) if p.service == "watched")


# --- found, killed from outside, never restarted -------------------------------------------------------------


@pytest.mark.parametrize("finder", ["pidfile", "match", "port"])
async def test_a_monitor_only_service_is_found_and_its_death_is_an_incident_never_a_restart(tmp_path, finder):
    tag = f"watched-{uuid.uuid4().hex[:12]}"
    port = free_port() if finder == "port" else 0
    pidfile = str(tmp_path / "watched.pid") if finder == "pidfile" else "-"
    keys = {"pidfile": 'pidfile = "watched.pid"\n', "match": f'match = "watched\\\\.py {tag} "\n', "port": f"port = {port}\n"}
    proc = start_watched(tmp_path, tag, port, pidfile)
    try:
        async with running(fleet(tmp_path, keys[finder])) as engine:
            status = engine.monitor.status_of("watched")
            assert status is not None and status.pid == proc.pid and status.healthy and not status.managed
            kill(proc)
            incident = await incident_for(engine, "watched", "unmanaged_gone")
            assert incident.is_open and f"was pid {proc.pid}" in incident.summary
            expected = {"pidfile": f"names pid {proc.pid}, which is not running", "match": "matches", "port": f"nothing listens on port {port}"}
            assert expected[finder] in incident.summary and expected[finder] in incident.evidence["found_by"]
            assert incident.evidence["last_pid"] == proc.pid and incident.evidence["start_command"] == []
            # No start_command: all a plan may do is tell the operator.
            plan = await a_plan(engine, incident.id, "escalated")
            assert plan.fix == "notify"
            await assert_not_restarted(engine, tag, proc.pid)
    finally:
        kill(proc)


@pytest.mark.parametrize("finder", ["pidfile", "match"])
async def test_an_outside_restart_is_recorded_with_both_pids_and_is_not_an_incident(tmp_path, finder):
    tag = f"watched-{uuid.uuid4().hex[:12]}"
    pidfile = str(tmp_path / "watched.pid") if finder == "pidfile" else "-"
    key = 'pidfile = "watched.pid"\n' if finder == "pidfile" else f'match = "watched\\\\.py {tag} "\n'
    old = start_watched(tmp_path, tag, 0, pidfile)
    new = None
    try:
        async with running(fleet(tmp_path, key)) as engine:
            # Like a graceful reload: the new copy is up (and owns the pid file) before the old one goes.
            new = start_watched(tmp_path, tag, 0, pidfile)
            kill(old)

            async def recorded():
                events = await engine.recent_events(limit=200, service="watched")
                return next((e for e in events if e.kind == "pid_changed"), None)

            event = await async_wait_until(recorded, timeout=30, what="the outside restart recorded")
            assert event.data == {"old_pid": old.pid, "new_pid": new.pid}
            await scans_pass(engine, 3)
            status = engine.monitor.status_of("watched")
            assert status is not None and status.pid == new.pid and status.healthy
            assert await engine.list_incidents(service="watched", limit=10) == []
    finally:
        kill(old)
        if new is not None:
            kill(new)


# --- start_command: only with a human -------------------------------------------------------------------------


async def test_a_start_command_waits_for_a_human_then_brings_the_service_back(tmp_path):
    tag = f"watched-{uuid.uuid4().hex[:12]}"
    pidfile = tmp_path / "watched.pid"
    watched = script(tmp_path, "watched.py", WATCHED)
    starter = script(tmp_path, "start.py", STARTER)
    key = f'pidfile = "watched.pid"\nstart_command = {toml_list([PY, str(starter), str(watched), tag, str(pidfile)])}\n'
    proc = start_watched(tmp_path, tag, 0, str(pidfile))
    started: list[int] = []
    try:
        async with running(fleet(tmp_path, key)) as engine:
            kill(proc)
            incident = await incident_for(engine, "watched", "unmanaged_gone")
            plan = await a_plan(engine, incident.id, "pending")
            assert plan.fix == "start_command" and plan.risk == "high" and plan.decision == "wait"
            assert any("without a human" in r for v in plan.verdicts if v["level"] == "L1" for r in v["reasons"])
            # Waiting means waiting: scans pass and nothing started it.
            await scans_pass(engine, 3)
            assert (await engine.plan(plan.id)).status == "pending"
            assert by_match(tag, {os.getpid()})[0] is None

            await engine.approve(plan.id, by="tester")
            done = await async_wait_until(lambda: _finished(engine, plan.id), timeout=60, what="the approved plan finished")
            new_pid = int(pidfile.read_text())
            started.append(new_pid)
            assert done.status == "verified", done.outcome
            status = engine.monitor.status_of("watched")
            assert status is not None and status.pid == new_pid != proc.pid and status.healthy
            assert (await engine.incident(incident.id)).resolved_at is not None
    finally:
        kill(proc)
        for pid in started or ([int(pidfile.read_text())] if pidfile.exists() else []):
            kill_pid(pid)


STOPPER = """
    import os, signal, sys, time, psutil
    pid = int(open(sys.argv[1]).read())
    os.kill(pid, signal.SIGTERM); os.kill(pid, signal.SIGCONT)  # a stopped process acts on SIGTERM once continued
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        sys.exit("still running")
"""


async def test_a_hung_monitor_only_service_is_restarted_by_its_own_programs_once_approved(tmp_path):
    tag = f"watched-{uuid.uuid4().hex[:12]}"
    pidfile = tmp_path / "watched.pid"
    watched = script(tmp_path, "watched.py", WATCHED)
    start = [PY, str(script(tmp_path, "start.py", STARTER)), str(watched), tag, str(pidfile)]
    stop = [PY, str(script(tmp_path, "stop.py", STOPPER)), str(pidfile)]
    key = f'pidfile = "watched.pid"\nstart_command = {toml_list(start)}\nstop_command = {toml_list(stop)}\n'
    proc = start_watched(tmp_path, tag, 0, str(pidfile))
    try:
        async with running(fleet(tmp_path, key)) as engine:
            os.kill(proc.pid, signal.SIGSTOP)
            incident = await incident_for(engine, "watched", "hung")
            plan = await a_plan(engine, incident.id, "pending")
            assert plan.fix == "stop_command+start_command" and plan.risk == "high"
            await engine.approve(plan.id, by="tester")
            done = await async_wait_until(lambda: _finished(engine, plan.id), timeout=60, what="the approved plan finished")
            assert done.status == "verified", done.outcome
            assert proc.wait(10) == -signal.SIGTERM  # stopped by its stop program, not by Aurora
            status = engine.monitor.status_of("watched")
            assert status is not None and status.healthy and status.pid == int(pidfile.read_text()) != proc.pid
    finally:
        kill(proc)
        if pidfile.exists() and int(pidfile.read_text()) != proc.pid:
            kill_pid(int(pidfile.read_text()))


async def _finished(engine: Engine, plan_id: int):
    row = await engine.plan(plan_id)
    return row if row.finished_at is not None else None


async def test_a_start_program_is_run_without_a_shell_and_killed_with_its_group_at_its_timeout(tmp_path):
    assert (await run_program((PY, "-c", "import sys; print(sys.argv[1])", "a; b $(x)"), None)).endswith("a; b $(x)")
    with pytest.raises(RuntimeError, match="exited with status 3: no"):
        await run_program((PY, "-c", "print('no'); raise SystemExit(3)"), None)
    # A program that leaves a child behind and hangs: both go at the timeout.
    marker = tmp_path / "child.pid"
    code = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
            f" open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(600)")
    with pytest.raises(RuntimeError, match="killed with its process group"):
        await run_program((PY, "-c", code), None, timeout=2.0)
    wait_until(lambda: gone(int(marker.read_text())), timeout=10, what="the program's child killed with its group")


# --- a real third-party server ----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_a_monitor_only_redis_killed_from_outside_gives_an_incident_and_is_not_restarted(tmp_path):
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        key = f'port = {port}\nhealth = {{ tcp = true, send = "PING\\r\\n", expect = "+PONG" }}\n'
        async with running(fleet(tmp_path, key)) as engine:
            assert engine.monitor.status_of("watched").pid == redis.pid
            kill(redis)
            incident = await incident_for(engine, "watched", "unmanaged_gone")
            assert f"nothing listens on port {port}" in incident.summary
            assert (await a_plan(engine, incident.id, "escalated")).fix == "notify"
            await assert_not_restarted(engine, f"redis-server 127.0.0.1:{port}", redis.pid)
    finally:
        kill(redis)


# --- config ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, key, problem",
    [
        ("", "service[1]", "a monitor-only service (managed = false) needs a way to find its process: give pidfile, match or port"),
        ('match = "(["\n', "service[1].match", "not a valid regular expression"),
        ('match = ""\n', "service[1].match", "must not be empty"),
        ('pidfile = 5\n', "service[1].pidfile", "must be a string"),
        ('port = 80\nstart_command = "redis-server --port 80"\n', "service[1].start_command",
         'must be an argv array such as ["python3", "app.py"], not a shell string'),
    ],
)
def test_check_config_refuses_a_monitor_only_service_it_could_not_find(tmp_path, capsys, extra, key, problem):
    conf = tmp_path / "fleet.toml"
    conf.write_text(f'[[service]]\nname = "db"\nmanaged = false\n{extra}')
    assert main(["check-config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert f"{conf}: {key}: db: {problem}" in err, err


@pytest.mark.parametrize("extra", ['pidfile = "x.pid"\n', 'match = "x"\n', 'start_command = ["x"]\n', 'stop_command = ["x"]\n'])
def test_monitor_only_keys_are_refused_on_a_managed_service(tmp_path, extra):
    with pytest.raises(ConfigError) as exc:
        parse_config(f'[[service]]\nname = "web"\ncommand = ["x"]\n{extra}', "f.toml", tmp_path)
    key = extra.split(" ")[0]
    assert (f"service[1].{key}", "web: only applies to a monitor-only service; add managed = false") in exc.value.problems


def test_a_monitor_only_service_parses_with_its_finders_and_programs(tmp_path, capsys):
    conf = tmp_path / "fleet.toml"
    conf.write_text('[[service]]\nname = "db"\nmanaged = false\npidfile = "run/db.pid"\nmatch = "postgres: main"\n'
                    'start_command = ["./bin/start", "--now"]\nstop_command = ["/nonexistent/stop"]\n')
    config = parse_config(conf.read_text(), str(conf), tmp_path)
    svc = config.services[0]
    assert svc.pidfile == str(tmp_path / "run" / "db.pid") and svc.match == "postgres: main"
    assert svc.start_command == (str(tmp_path / "bin" / "start"), "--now") and svc.stop_command == ("/nonexistent/stop",)
    # check-config looks for the programs a human-approved plan would run.
    assert main(["check-config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert f"service[1].start_command[0]: db: no such file: {str(tmp_path / 'bin' / 'start')!r}" in err
    assert "service[1].stop_command[0]: db: no such file: '/nonexistent/stop'" in err


# --- plans and guardians for a monitor-only service (pure) --------------------------------------------------


def diagnosis(pattern: str) -> Diagnosis:
    p = load_patterns()[pattern]
    return Diagnosis("watched", pattern, p.title, p.severity, "cause", 9, {}, {}, 1.0, p.actions, p.risk)


@pytest.mark.parametrize(
    "pattern, programs, fix",
    [
        ("unmanaged_gone", {"start_command"}, "start_command"),
        ("unmanaged_gone", set(), "notify"),
        ("hung", {"start_command", "stop_command"}, "stop_command+start_command"),
        ("hung", {"start_command"}, "notify"),  # no way to stop it: never a signal instead
        ("high_cpu", {"start_command", "stop_command"}, "stop_command+start_command"),
        ("crash_loop", {"start_command", "stop_command"}, "notify"),  # a back-off is Aurora's own restarts
        ("memory_leak", set(), "notify"),
    ],
)
def test_a_fix_for_a_monitor_only_service_runs_its_programs_or_only_tells(pattern, programs, fix):
    plan = build_plan(diagnosis(pattern), 1, {}, 1.0, programs=frozenset(programs))
    assert plan is not None and plan.fix == fix
    assert all(a.target is None for a in plan.actions)  # never a signal to a process


def test_a_plan_that_runs_a_program_always_waits_for_a_human():
    plan = build_plan(diagnosis("unmanaged_gone"), 1, {}, 1000.0, programs=frozenset({"start_command"}))
    assert plan.risk == "high"
    base = dict(now=1000.0, aurora_pid=os.getpid(), aurora_uid=os.getuid(), protected_pids=frozenset({1}), owned_pids=frozenset(),
                auto_confidence=1, interval=15.0, recent_actions=0, recent_actions_global=0)
    # However confident, and whatever was learned, it waits; L1 says why.
    waits = judge(plan, GuardContext(human=False, belief=Belief(alpha=50, successes=50), **base))
    assert waits.decision == "wait" and waits.verdicts[0].outcome == "warn"
    assert "start_command acts on an unmanaged process without a human" in waits.verdicts[0].reasons[0]
    assert judge(plan, GuardContext(human=True, **base)).decision == "run"
    told = build_plan(diagnosis("unmanaged_gone"), 1, {}, 1000.0, programs=frozenset())
    assert judge(told, GuardContext(human=False, **base)).decision == "run"  # telling needs nobody's leave


def test_an_outside_restart_is_a_new_pid_or_a_new_process_under_the_same_pid():
    def sample(pid: int | None, created: float = 1.0) -> ServiceSample:
        facts = None if pid is None else ProcessFacts(pid, "sleeping", 0.0, 0, 0, 1, 0, 0, 0, created)
        return ServiceSample("watched", 0.0, "running", facts)

    assert pid_change(sample(10), sample(11)) == (10, 11)
    assert pid_change(sample(10, 1.0), sample(10, 5.0)) == (10, 10)
    assert pid_change(sample(10), sample(10)) is None
    assert pid_change(None, sample(10)) is None and pid_change(sample(None), sample(10)) is None  # back from gone: not a change
    assert pid_change(sample(10), sample(None)) is None  # gone is an incident, not a change
