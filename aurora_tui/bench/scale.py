"""Aurora at scale, next to supervisord and Monit: N tiny HTTP services (200 by default) supervised in
turn by each, on the same machine in the same run.

The service is :mod:`aurora_tui.bench.tiny_service` run by path (``python -I -S tiny_service.py``), so
what is measured is the supervisor, not the service: it starts in tens of milliseconds, holds ~10 MB and
wakes only when asked. Every answer to ``GET /healthz`` carries the pid of the process that gave it, so
"healthy again by a new process" is decided by the benchmark itself, polling over 127.0.0.1.

The supervisors, each in its own session, with all its files in the run's temporary directory:

- **Aurora**: ``aurora run --headless --config F`` as a real subprocess, a generated TOML config (HTTP
  health on ``/healthz``, ``restart_delay`` 0, ``stop_timeout`` 5 s), scan interval 1 s, then its default.
- **supervisord** (from PyPI, installed on demand): recovery.py's :class:`~.recovery.Supervisord`, every
  program ``autorestart=true``, ``startsecs=1``. It has no health checks, so it has no interval and it
  never replaces a hung process; it only runs the 1 s phase.
- **Monit** (``/usr/bin/monit``; skipped with the reason when missing): its own control file, state, id
  and pid files, in the foreground (``-I``), ``set daemon 1`` then its 30 s default, one ``check process``
  per service by pidfile with an HTTP test and ``then restart``. Monit's start program must exit, so the
  service daemonizes (``--daemon``); Monit runs under a subreaper that reaps at once
  (``tiny_service.py --reaper``), as init does on a real host, so a killed daemon is not left a zombie
  that Monit waits on (this machine's init reaps late). Never a system monit: no httpd, no shared file.

Per supervisor, with 1 s checks: start-up (spawn of the supervisor -> all N healthy), a warm-up, a window
of steady CPU (psutil ``cpu_times`` of the supervisor process and its non-service descendants, from
outside), RSS at the window's start and end, Aurora's database size (db + -wal + -shm) at both ends; then
the faults, all from outside with ``os.kill``: 10 services SIGKILLed at once, one SIGKILLed ``trials``
times, one SIGSTOPped ``trials`` times (supervisord once, watched for ``HUNG_BOUND`` s). Each fault hits
services not hit before while there are any, so no kill lands in a crash-loop back-off of an earlier one.
Then, Aurora and Monit again with their default interval: start-up and a second steady window.

Everything is bounded in time; every supervisor is stopped with its process group, every service it ran
is stopped, and a final sweep (by a tag on the services' command lines, which survives Monit's bare
environment) kills and reports any that survived.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

from ..core.config import Settings
from .recovery import Supervisord, ensure_supervisor
from .scan import _free_ports

TINY = Path(__file__).with_name("tiny_service.py")
MONIT = "/usr/bin/monit"
POLL = 0.01  # probe period while a recovery is timed
PROBE_TIMEOUT = 0.5
MAX_INFLIGHT = 40  # overlapping probes per port: a hung process's accepted-but-unanswered ones must not blind the clock
KILL_AT_ONCE = 10
RECOVERY_TIMEOUT = 30.0  # a fault not recovered from within this is reported as not recovered
HUNG_BOUND = 20.0  # how long supervisord's hung service is watched for a replacement that never comes
MIN_AGE = 2.0  # a service is killed only once its process is this old (past supervisord's startsecs=1)
STOP_TIMEOUT = 5.0  # each supervisor's SIGTERM -> SIGKILL grace for a service
SUPERVISOR_STOP_WAIT = 90.0  # a supervisor's own shutdown (it stops N services)
AURORA_DEFAULT_INTERVAL = Settings.__dataclass_fields__["interval"].default
MONIT_DEFAULT_INTERVAL = 30
FAST_INTERVAL = 1
NOFILE = 8192
MB = 1024 * 1024


def startup_timeout(services: int) -> float:
    return 30.0 + 1.0 * services  # Monit starts its services one after another


def tiny_command(port: int, name: str, tag: str, pidfile: Path | None = None, daemon: bool = False) -> list[str]:
    argv = [sys.executable, "-I", "-S", str(TINY), "--port", str(port), "--name", name, "--tag", tag]
    if pidfile is not None:
        argv += ["--pidfile", str(pidfile)]
    return argv + (["--daemon"] if daemon else [])


@dataclass
class Spec:
    name: str
    port: int


# --- probing -----------------------------------------------------------------------------------------

_PID = re.compile(rb'"pid":\s*(\d+)')


async def probe(port: int, timeout: float = PROBE_TIMEOUT) -> int | None:
    """The pid in a healthy ``/healthz`` answer on ``port``, or None."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    finally:
        writer.close()
    if not data.startswith(b"HTTP/1.1 200 ") or b'"status": "ok"' not in data:
        return None
    found = _PID.search(data)
    return int(found.group(1)) if found else None


async def _stamped_probe(port: int) -> tuple[float, int] | None:
    pid = await probe(port)
    return None if pid is None else (time.perf_counter(), pid)


async def wait_new(port: int, old_pid: int | None, deadline: float) -> tuple[float, int] | None:
    """(perf_counter, pid) of the first healthy answer from a process other than ``old_pid``, or None at the
    deadline. A probe starts every ``POLL`` s without waiting for the last, so a connection that a stopped
    process accepted and never answers does not hold the clock up."""
    tasks: set[asyncio.Task[tuple[float, int] | None]] = set()
    try:
        while time.perf_counter() < deadline:
            if len(tasks) < MAX_INFLIGHT:
                tasks.add(asyncio.ensure_future(_stamped_probe(port)))
            done, _ = await asyncio.wait(tasks, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: (t.result() or (float("inf"), 0))[0]):
                tasks.discard(task)
                got = task.result()
                if got is not None and got[1] != old_pid:
                    return got
            if done:
                await asyncio.sleep(POLL)  # an answer (refused, wrong pid) came at once: keep the period
        return None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_all(ports: list[int], deadline: float) -> dict[int, tuple[float, int]]:
    """Each port's first healthy answer (perf_counter, pid); rounds over the ports not yet healthy, with a
    period that grows with their number so the polling does not crowd the supervisor it waits for."""
    found: dict[int, tuple[float, int]] = {}
    period = max(0.02, len(ports) / 2000)
    while time.perf_counter() < deadline and len(found) < len(ports):
        pending = [p for p in ports if p not in found]
        for port, pid in zip(pending, await asyncio.gather(*(probe(p) for p in pending))):
            if pid is not None:
                found[port] = (time.perf_counter(), pid)
        if len(found) < len(ports):
            await asyncio.sleep(period)
    return found


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# --- measuring a supervisor from outside --------------------------------------------------------------


def _alive(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False


def tagged(tag: str) -> list[psutil.Process]:
    """Every live process whose command line carries ``tag``: the services, whoever started them."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and tag in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def overhead_procs(roots: list[psutil.Process], tag: str) -> list[psutil.Process]:
    """The supervisor's processes: the roots and their live descendants that are not services."""
    procs: dict[int, psutil.Process] = {}
    for root in roots:
        if not _alive(root):
            continue
        procs[root.pid] = root
        with contextlib.suppress(psutil.Error):
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if tag not in child.cmdline():
                        procs[child.pid] = child
    return list(procs.values())


def cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
    return out


def rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return round(total / MB, 1)


# --- the supervisors ------------------------------------------------------------------------------------


class Supervisor:
    """What the benchmark needs of a supervisor: start it, its own processes, stop it and all it ran."""

    label = "?"

    def __init__(self, workdir: Path, specs: list[Spec], tag: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.specs, self.tag = workdir, specs, tag

    def start(self) -> None:
        raise NotImplementedError

    def roots(self) -> list[psutil.Process]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def db_bytes(self) -> int | None:
        return None


def _stop_popen_group(proc: subprocess.Popen[bytes], wait: float) -> None:
    """SIGCONT + SIGTERM to the leader, wait; then SIGKILL whatever is left in its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10.0)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


class Aurora(Supervisor):
    label = "Aurora"

    def __init__(self, workdir: Path, specs: list[Spec], tag: str, interval: float) -> None:
        super().__init__(workdir, specs, tag)
        self.db = workdir / "aurora.db"
        self.config = workdir / "aurora.toml"
        body = [f"[aurora]\ninterval = {interval}\ndb = {_toml(str(self.db))}\nlog_dir = {_toml(str(workdir / 'logs'))}\n"]
        for s in specs:
            body.append(
                f"[[service]]\nname = {_toml(s.name)}\ncommand = {_toml(tiny_command(s.port, s.name, tag))}\n"
                f"port = {s.port}\n"
                'health = { http = "/healthz", expect_status = 200, timeout = 2.0 }\n'
                # An isolated crash is restarted at once (as supervisord's autorestart does); the stop grace
                # is supervisord's stopwaitsecs and the Monit stop program's.
                f"restart_delay = 0\nstop_timeout = {STOP_TIMEOUT:g}\n"
            )
        self.config.write_text("\n".join(body))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.workdir / "aurora.stderr", "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aurora_tui.cli", "run", "--headless", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )

    def roots(self) -> list[psutil.Process]:
        return [psutil.Process(self.proc.pid)] if self.proc is not None and self.proc.poll() is None else []

    def stop(self) -> None:
        if self.proc is not None:
            _stop_popen_group(self.proc, SUPERVISOR_STOP_WAIT)  # a clean shutdown stops every service first

    def db_bytes(self) -> int | None:
        sizes = [p.stat().st_size for p in (self.db, Path(f"{self.db}-wal"), Path(f"{self.db}-shm")) if p.exists()]
        return sum(sizes) if sizes else None

    def rate_limited(self) -> int:
        """How many times this engine slowed an automatic action for its rate limit (read once it is gone)."""
        if not self.db.exists():
            return 0
        with contextlib.suppress(sqlite3.Error):
            with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)) as conn:
                return int(conn.execute("SELECT count(*) FROM events WHERE message LIKE '%rate limit%'").fetchone()[0])
        return 0

    def stderr_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join((self.workdir / "aurora.stderr").read_text(errors="replace").strip().splitlines()[-3:])
        return ""


class SupervisordFleet(Supervisor):
    label = "supervisord"

    def __init__(self, workdir: Path, specs: list[Spec], tag: str) -> None:
        super().__init__(workdir, specs, tag)
        self.sup = Supervisord(workdir, {s.name: shlex.join(tiny_command(s.port, s.name, tag)) for s in specs},
                               stop_wait=SUPERVISOR_STOP_WAIT + len(specs))

    def start(self) -> None:
        self.sup.start()

    def roots(self) -> list[psutil.Process]:
        proc = self.sup.proc
        return [psutil.Process(proc.pid)] if proc is not None and proc.poll() is None else []

    def remember(self) -> None:
        self.sup.remember_children()

    def stop(self) -> None:
        self.sup.stop()


def monit_version() -> str | None:
    if not os.access(MONIT, os.X_OK):
        return None
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run([MONIT, "-V"], capture_output=True, text=True, timeout=10).stdout
        found = re.search(r"version ([\w.]+)", out)
        return found.group(1) if found else "?"
    return None


class Monit(Supervisor):
    label = "Monit"

    def __init__(self, workdir: Path, specs: list[Spec], tag: str, interval: int) -> None:
        super().__init__(workdir, specs, tag)
        self.control = workdir / "monitrc"
        self.pidfiles = {s.name: workdir / f"{s.name}.pid" for s in specs}
        lines = [
            f"set daemon {interval}",
            f"set logfile {workdir / 'monit.log'}",
            f"set pidfile {workdir / 'monit.pid'}",
            f"set idfile {workdir / 'monit.id'}",
            f"set statefile {workdir / 'monit.state'}",
            "",
        ]
        for s in specs:
            pidfile = self.pidfiles[s.name]
            start = shlex.join(tiny_command(s.port, s.name, tag, pidfile=pidfile, daemon=True))
            stop = shlex.join([sys.executable, "-I", "-S", str(TINY), "--stop", str(pidfile), "--grace", f"{STOP_TIMEOUT:g}"])
            lines += [
                f"check process {s.name} with pidfile {pidfile}",
                f'  start program = "{start}" with timeout 10 seconds',
                f'  stop program = "{stop}" with timeout {int(2 * STOP_TIMEOUT + 5)} seconds',
                f'  if failed host 127.0.0.1 port {s.port} protocol http request "/healthz" status = 200 '
                "with timeout 2 seconds then restart",
                "",
            ]
        self.control.write_text("\n".join(lines))
        self.control.chmod(0o600)  # Monit refuses a control file others can read
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.workdir / "monit.out", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(TINY), "--reaper", MONIT, "-c", str(self.control), "-I"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def monit(self) -> psutil.Process | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children():
                with contextlib.suppress(psutil.Error):
                    if child.name() == "monit":
                        return child
        return None

    def roots(self) -> list[psutil.Process]:
        # The reaper stands in for init and is not counted; what Monit forks (start and stop programs) is.
        monit = self.monit()
        return [monit] if monit is not None else []

    def stop(self) -> None:
        """Monit leaves its services running when it exits: stop Monit, then every service (found by the
        tag on its command line: SIGTERM and SIGCONT, SIGKILL after the stop grace), then the reaper's group."""
        if self.proc is None:
            return
        monit = self.monit()
        if monit is not None:
            with contextlib.suppress(psutil.Error):
                monit.terminate()
                monit.wait(30.0)
        services = tagged(self.tag)
        for proc in services:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
        _gone, alive = psutil.wait_procs(services, timeout=STOP_TIMEOUT)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5.0)
        _stop_popen_group(self.proc, 10.0)

    def log_tail(self, n: int = 3) -> str:
        with contextlib.suppress(OSError):
            return " | ".join((self.workdir / "monit.log").read_text(errors="replace").strip().splitlines()[-n:])
        return ""


# --- one supervisor through its phases ----------------------------------------------------------------


@dataclass
class Phase:
    """One supervisor with one interval setting: start-up and a steady window."""

    interval: str
    startup_s: float | None = None
    healthy: int = 0
    cpu_percent: float | None = None
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    db_mb_per_min: float | None = None
    db_start_bytes: int | None = None
    db_end_bytes: int | None = None
    window_s: float = 0.0
    note: str = ""


@dataclass
class Faults:
    kill10_s: float | None = None  # the last of the killed services healthy again by a new pid
    kill10_median_s: float | None = None
    kill10_killed: int = 0
    kill10_back: int = 0
    single_s: list[float] = field(default_factory=list)
    single_failed: int = 0
    hung_s: list[float] = field(default_factory=list)
    hung_failed: int = 0
    hung_bound_s: float = RECOVERY_TIMEOUT
    hung_left_stopped: int = 0  # SIGSTOPped processes still there after their replacement answered
    new_pids: bool = True  # every recovery counted was answered by a pid other than the one hit
    notes: list[str] = field(default_factory=list)


class Fleet:
    """The specs, the probing and the faults, for whichever supervisor runs them."""

    def __init__(self, specs: list[Spec]) -> None:
        self.specs = specs
        self.next_target = 0  # faults walk the fleet, so a service is hit twice only when all were hit once

    def targets(self, count: int) -> list[Spec]:
        picked = [self.specs[(self.next_target + i) % len(self.specs)] for i in range(min(count, len(self.specs)))]
        self.next_target += len(picked)
        return picked

    async def current_pid(self, spec: Spec, deadline: float) -> int | None:
        """The pid serving ``spec``, once it answers healthy and its process is ``MIN_AGE`` old."""
        while time.perf_counter() < deadline:
            pid = await probe(spec.port, timeout=2.0)
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    age = time.time() - psutil.Process(pid).create_time()
                    if age >= MIN_AGE:
                        return pid
                    await asyncio.sleep(MIN_AGE - age)
                    continue
            await asyncio.sleep(0.05)
        return None


async def measure_phase(sup: Supervisor, fleet: Fleet, interval: str, warmup: float, window: float,
                        steady: bool = True) -> Phase:
    """Start ``sup`` and time it until all are healthy; then, if ``steady``, a warm-up and the window."""
    phase = Phase(interval=interval)
    ports = [s.port for s in fleet.specs]
    started = time.perf_counter()
    sup.start()
    found = await wait_all(ports, started + startup_timeout(len(ports)))
    phase.healthy = len(found)
    if found:
        last = max(t for t, _ in found.values())
        phase.startup_s = round(last - started, 2) if len(found) == len(ports) else None
    if len(found) < len(ports):
        phase.note = f"only {len(found)} of {len(ports)} healthy within {startup_timeout(len(ports)):g}s"
    if isinstance(sup, SupervisordFleet):
        sup.remember()
    if not sup.roots():
        phase.note += " the supervisor exited"
        return phase
    if not steady:
        return phase
    await asyncio.sleep(warmup)  # the warm-up is a span of time by definition, not a wait for a condition
    procs = overhead_procs(sup.roots(), sup.tag)
    phase.rss_start_mb = rss_mb(procs)
    phase.db_start_bytes = sup.db_bytes()
    cpu0, t0 = cpu_seconds(procs), time.perf_counter()
    await asyncio.sleep(window)  # the measurement window
    procs_end = overhead_procs(sup.roots(), sup.tag)
    cpu1, t1 = cpu_seconds(procs_end), time.perf_counter()
    phase.rss_end_mb = rss_mb(procs_end)
    phase.db_end_bytes = sup.db_bytes()
    phase.window_s = round(t1 - t0, 2)
    # Only processes seen at both ends count: a start/stop program born and gone inside the window is
    # missed (none runs in a steady fleet), and one born inside it counts from zero.
    used = sum(cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1)
    phase.cpu_percent = round(100.0 * used / (t1 - t0), 2)
    if phase.db_start_bytes is not None and phase.db_end_bytes is not None:
        phase.db_mb_per_min = round((phase.db_end_bytes - phase.db_start_bytes) / MB / ((t1 - t0) / 60.0), 3)
    return phase


async def run_kills(sup: Supervisor, fleet: Fleet, trials: int, out: Faults) -> None:

    # 10 at once: every pid read first, then the signals back to back.
    group = fleet.targets(KILL_AT_ONCE)
    deadline = time.perf_counter() + RECOVERY_TIMEOUT
    pids = {s.port: await fleet.current_pid(s, deadline) for s in group}
    live = {port: pid for port, pid in pids.items() if pid is not None}
    killed_at = time.perf_counter()
    for pid in live.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    out.kill10_killed = len(live)
    answers = await asyncio.gather(*(wait_new(port, pid, killed_at + RECOVERY_TIMEOUT) for port, pid in live.items()))
    back = [a for a in answers if a is not None]
    out.kill10_back = len(back)
    out.new_pids &= all(a[1] != live[port] for port, a in zip(live, answers) if a is not None)
    if back and len(back) == len(live):
        out.kill10_s = round(max(t for t, _ in back) - killed_at, 3)
        out.kill10_median_s = round(statistics.median(t for t, _ in back) - killed_at, 3)
    if isinstance(sup, SupervisordFleet):
        sup.remember()

    # One at a time.
    for spec in fleet.targets(trials):
        pid = await fleet.current_pid(spec, time.perf_counter() + RECOVERY_TIMEOUT)
        if pid is None:
            out.single_failed += 1
            out.notes.append(f"{spec.name} not healthy before its kill trial")
            continue
        killed_at = time.perf_counter()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        got = await wait_new(spec.port, pid, killed_at + RECOVERY_TIMEOUT)
        if got is None:
            out.single_failed += 1
        else:
            out.new_pids &= got[1] != pid
            out.single_s.append(got[0] - killed_at)
        if isinstance(sup, SupervisordFleet):
            sup.remember()



async def run_hung(sup: Supervisor, fleet: Fleet, hung_trials: int, hung_bound: float, hung_expected: bool,
                   out: Faults) -> None:
    """SIGSTOP, and the clock runs until a new process answers."""
    out.hung_bound_s = hung_bound
    for spec in fleet.targets(hung_trials):
        pid = await fleet.current_pid(spec, time.perf_counter() + RECOVERY_TIMEOUT)
        if pid is None:
            out.hung_failed += 1
            out.notes.append(f"{spec.name} not healthy before its hung trial")
            continue
        stopped_at = time.perf_counter()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
        got = await wait_new(spec.port, pid, stopped_at + hung_bound)
        if got is None:
            out.hung_failed += 1
        else:
            out.new_pids &= got[1] != pid
            out.hung_s.append(got[0] - stopped_at)
        with contextlib.suppress(psutil.Error):
            old = psutil.Process(pid)
            gone = psutil.wait_procs([old], timeout=10.0 if got is not None else 0.0)[0]
            if not gone and _alive(old):
                if got is not None:
                    out.hung_left_stopped += 1  # replaced, but the frozen one was left behind
                # Thawed: supervisord's own process then answers again; Aurora and Monit would have killed it.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                if got is not None or hung_expected:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        if not hung_expected:
            # The thawed process is supervisord's own again; wait until it answers before going on.
            await wait_new(spec.port, None, time.perf_counter() + RECOVERY_TIMEOUT)
        if isinstance(sup, SupervisordFleet):
            sup.remember()


async def floor(trials: int, tag: str) -> list[float]:
    """Spawn a tiny service directly -> its first healthy answer: what no supervisor can beat."""
    port = _free_ports(1)[0]
    samples = []
    for i in range(trials + 1):  # the first run warms the page cache and is not counted
        started = time.perf_counter()
        proc = subprocess.Popen(tiny_command(port, "floor", tag), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            got = await wait_new(port, None, started + 20.0)
        finally:
            _stop_popen_group(proc, 5.0)
        if got is not None and i:
            samples.append(got[0] - started)
    return samples


# --- the benchmark ------------------------------------------------------------------------------------


def _specs(services: int) -> list[Spec]:
    return [Spec(f"s{i:03d}", port) for i, port in enumerate(_free_ports(services))]


def _guarded(what: str, errors: list[str], fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # one supervisor failing must not cost the others' columns
        errors.append(f"{what}: {type(exc).__name__}: {exc}")
        return None


STEADY_KILLS, HUNG, STEADY = "steady+kills", "hung", "steady"


def _run_supervisor(make: Callable[[Path, str], Supervisor], work: Path, fleet: Fleet, tag: str,
                    plan: list[tuple[str, str]], warmup: float, window: float, trials: int,
                    hung: tuple[int, float, bool]) -> dict[str, Any]:
    """Each (interval, role) of ``plan`` with a fresh supervisor over the same ports. The hung trials get a
    supervisor of their own: Aurora slows automatic actions past 20 fleet-wide in 5 minutes, and the kills
    before them would otherwise decide that row (that limit is reported where it is hit)."""
    out: dict[str, Any] = {"phases": {}, "faults": Faults(), "notes": [], "rate_limited": 0, "took_s": []}
    for i, (interval, role) in enumerate(plan):
        sup = make(work / f"{i}", interval)
        began = time.perf_counter()
        try:
            phase = asyncio.run(measure_phase(sup, fleet, interval, warmup, window, steady=role != HUNG))
            if role != HUNG:
                out["phases"][interval] = phase
            elif phase.note:
                out["notes"].append(f"before the hung trials: {phase.note}")
            if role == STEADY_KILLS and phase.healthy:
                asyncio.run(run_kills(sup, fleet, trials, out["faults"]))
            if role == HUNG and phase.healthy:
                hung_trials, bound, expected = hung
                asyncio.run(run_hung(sup, fleet, hung_trials, bound, expected, out["faults"]))
            if not sup.roots():
                tail = sup.stderr_tail() if isinstance(sup, Aurora) else sup.log_tail() if isinstance(sup, Monit) else ""
                out["notes"].append(f"{sup.label} ({interval}, {role}) was not running at the end {tail}".strip())
        finally:
            stopping = time.perf_counter()
            sup.stop()
            out["took_s"].append({"interval": interval, "role": role, "run_s": round(stopping - began, 1),
                                  "stop_s": round(time.perf_counter() - stopping, 1)})
            if isinstance(sup, Aurora):
                out["rate_limited"] += sup.rate_limited()
            left = tagged(tag)
            if left:  # what this supervisor's own shutdown left: reported, then killed so the next starts clean
                out["notes"].append(f"{sup.label} ({interval}, {role}) left {len(left)} service(s) running after its stop")
                for proc in left:
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
                psutil.wait_procs(left, timeout=5.0)
    return out


def run(services: int = 200, trials: int = 10, window: float = 30.0, warmup: float = 5.0,
        include_supervisord: bool = True, include_monit: bool = True, hung_bound: float = HUNG_BOUND) -> dict[str, Any]:
    """The table for ``services`` services; ``hung_bound``: how long supervisord's frozen service is watched."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, NOFILE), hard))  # N services, N probes, N pipes
    tag = f"aurora-scale-{uuid.uuid4().hex[:12]}"
    result: dict[str, Any] = {"benchmark": "scale", "tag": tag, "services": services, "trials": trials, "window_s": window,
                              "warmup_s": warmup, "cores": os.cpu_count(), "errors": [], "skipped": {}}
    errors: list[str] = result["errors"]
    specs = _specs(services)
    try:
        with tempfile.TemporaryDirectory(prefix="aurora-scale-") as tmp:
            work = Path(tmp)
            result["floor_s"] = _guarded("floor", errors, lambda: asyncio.run(floor(trials, tag))) or []
            fast_a, default_a = f"{FAST_INTERVAL} s", f"{AURORA_DEFAULT_INTERVAL:g} s"
            result["aurora"] = _guarded("Aurora", errors, lambda: _run_supervisor(
                lambda d, iv: Aurora(d, specs, tag, FAST_INTERVAL if iv == fast_a else AURORA_DEFAULT_INTERVAL),
                work / "aurora", Fleet(specs), tag, [(fast_a, STEADY_KILLS), (fast_a, HUNG), (default_a, STEADY)],
                warmup, window, trials, (trials, RECOVERY_TIMEOUT, True)))
            if include_supervisord:
                version, why = ensure_supervisor()
                if version is None:
                    result["skipped"]["supervisord"] = why
                else:
                    result["supervisord_version"] = version
                    result["supervisord"] = _guarded("supervisord", errors, lambda: _run_supervisor(
                        lambda d, iv: SupervisordFleet(d, specs, tag), work / "supervisord", Fleet(specs), tag,
                        [("no checks", STEADY_KILLS), ("no checks", HUNG)], warmup, window, trials,
                        (1, hung_bound, False)))
            else:
                result["skipped"]["supervisord"] = "not requested (include_supervisord=False)"
            version = monit_version() if include_monit else None
            if not include_monit:
                result["skipped"]["monit"] = "not requested (include_monit=False)"
            elif version is None:
                result["skipped"]["monit"] = f"{MONIT} is not installed (apt-get install monit)"
            else:
                result["monit_version"] = version
                fast_m, default_m = f"{FAST_INTERVAL} s", f"{MONIT_DEFAULT_INTERVAL} s"
                result["monit"] = _guarded("Monit", errors, lambda: _run_supervisor(
                    lambda d, iv: Monit(d, specs, tag, FAST_INTERVAL if iv == fast_m else MONIT_DEFAULT_INTERVAL),
                    work / "monit", Fleet(specs), tag, [(fast_m, STEADY_KILLS), (fast_m, HUNG), (default_m, STEADY)],
                    warmup, window, trials, (trials, RECOVERY_TIMEOUT, True)))
    finally:
        survivors = tagged(tag)
        result["left_behind"] = [f"{p.pid} {' '.join(p.cmdline())[:100]}" for p in survivors if _alive(p)]
        for proc in survivors:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(survivors, timeout=5.0)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    result["rows"] = rows(result)
    result["report"] = report(result)
    for who in COLUMNS:  # plain data from here on, for --json
        data = result.get(who)
        if data:
            data["phases"] = {k: asdict(v) for k, v in data["phases"].items()}
            data["faults"] = asdict(data["faults"]) if data["faults"] is not None else None
    return result


# --- the table ----------------------------------------------------------------------------------------

COLUMNS = ("aurora", "supervisord", "monit")


def _phase(result: dict[str, Any], who: str, index: int) -> Phase | None:
    data = result.get(who)
    if not data:
        return None
    phases = list(data["phases"].values())
    return phases[index] if index < len(phases) else None


def _faults(result: dict[str, Any], who: str) -> Faults | None:
    data = result.get(who)
    return data["faults"] if data else None


def _missing(result: dict[str, Any], who: str) -> str:
    if who in result["skipped"]:
        return f"skipped: {result['skipped'][who]}"
    return "no figure (see errors)" if result.get(who) is None else "n/a"


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The table as data: each row's value per supervisor (a number, or a string saying why not)."""
    n = result["services"]
    trials = result["trials"]
    floor_ms = _median(result.get("floor_s") or [])
    table: list[dict[str, Any]] = []

    def add(label: str, unit: str, values: dict[str, Any], note: str = "", compare: dict[str, Any] | None = None) -> None:
        """``compare``: the numbers the ratios are taken of, where the cells are not plain numbers."""
        row = {"row": label, "unit": unit, **values, "note": note}
        basis = compare if compare is not None else values
        a = basis.get("aurora")
        for who in ("supervisord", "monit"):
            b = basis.get(who)
            ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and b
            row[f"aurora_over_{who}"] = round(a / b, 2) if ok else None
        table.append(row)

    def per(fn: Callable[[str], Any]) -> dict[str, Any]:
        out = {}
        for who in COLUMNS:
            out[who] = _missing(result, who) if result.get(who) is None else fn(who)
        return out

    def startup(who: str) -> Any:
        p = _phase(result, who, 0)
        if p is None:
            return "n/a"
        return p.startup_s if p.startup_s is not None else p.note or "not all healthy"

    add(f"start-up, all {n} healthy", "s", per(startup))

    def cpu(index: int) -> Callable[[str], Any]:
        def get(who: str) -> Any:
            if who == "supervisord" and index == 1:
                return "– (no interval)"
            p = _phase(result, who, index)
            return p.cpu_percent if p is not None and p.cpu_percent is not None else "n/a"
        return get

    add("CPU while steady, 1 s checks", "% of one core", per(cpu(0)),
        "supervisord has no health checks: its figure is its idle supervision, checking nothing")
    add(f"CPU while steady, default interval (Aurora {AURORA_DEFAULT_INTERVAL:g} s / supervisord – / Monit "
        f"{MONIT_DEFAULT_INTERVAL} s)", "% of one core", per(cpu(1)))

    def rss(index: int, end_only: bool) -> Callable[[str], Any]:
        def get(who: str) -> Any:
            if who == "supervisord" and index == 1:
                return "–"
            p = _phase(result, who, index)
            if p is None or p.rss_end_mb is None:
                return "n/a"
            return p.rss_end_mb if end_only else f"{p.rss_start_mb:g} -> {p.rss_end_mb:g}"
        return get

    add("memory (RSS of the supervisor), start -> end of the 1 s window", "MB", per(rss(0, False)),
        "ratios of the end figures", compare=per(rss(0, True)))
    add("memory (RSS of the supervisor), start -> end of the default-interval window", "MB", per(rss(1, False)),
        "ratios of the end figures", compare=per(rss(1, True)))

    def db(who: str) -> Any:
        if who != "aurora":
            return "–"
        fast = _phase(result, who, 0)
        return fast.db_mb_per_min if fast is not None and fast.db_mb_per_min is not None else "n/a"

    slow = _phase(result, "aurora", 1)
    add("database growth, 1 s checks", "MB/min", per(db),
        "Aurora: size of db + -wal + -shm at the window's end minus at its start, per minute"
        + (f"; at the default interval: {slow.db_mb_per_min} MB/min" if slow is not None and slow.db_mb_per_min is not None else ""))

    def kill10(who: str) -> Any:
        f = _faults(result, who)
        if f is None:
            return "n/a"
        if f.kill10_s is None:
            return f"{f.kill10_back} of {f.kill10_killed} back within {RECOVERY_TIMEOUT:g}s"
        return f.kill10_s

    def kill10_note() -> str:
        parts = [f"{who} median {f.kill10_median_s} s" for who in COLUMNS
                 if (f := _faults(result, who)) is not None and f.kill10_median_s is not None]
        return f"the last of {min(KILL_AT_ONCE, n)} back by a new pid; " + ", ".join(parts)

    add(f"{min(KILL_AT_ONCE, n)} services killed at once, all healthy again (new pids)", "s", per(kill10), kill10_note())

    def single(who: str) -> Any:
        f = _faults(result, who)
        if f is None:
            return "n/a"
        med = _median(f.single_s)
        if med is None:
            return f"none of {trials} back within {RECOVERY_TIMEOUT:g}s"
        return round(med * 1000, 1)

    def single_note() -> str:
        parts = []
        for who in COLUMNS:
            f = _faults(result, who)
            if f is not None and f.single_failed:
                parts.append(f"{who}: {f.single_failed} of {trials} not back within {RECOVERY_TIMEOUT:g}s")
        base = f"cold-start floor (spawn -> healthy), median of {len(result.get('floor_s') or [])}: " + (
            f"{floor_ms * 1000:.1f} ms" if floor_ms is not None else "not measured")
        return "; ".join([base, *parts])

    add(f"one service killed, healthy again (median of {trials})", "ms", per(single), single_note())

    def hung_cell(who: str) -> Any:
        f = _faults(result, who)
        if f is None:
            return "n/a"
        med = _median(f.hung_s)
        if med is None:
            return f"never (within {f.hung_bound_s:g} s)"
        return round(med, 2)

    def hung_note() -> str:
        parts = ["each supervisor afresh for these trials (after its kills Aurora's fleet-wide rate limit would decide the row)"]
        for who in COLUMNS:
            f = _faults(result, who)
            if f is None:
                continue
            if f.hung_failed and f.hung_s:
                parts.append(f"{who}: {f.hung_failed} not replaced within {f.hung_bound_s:g}s")
            if f.hung_left_stopped:
                parts.append(f"{who}: {f.hung_left_stopped} frozen process(es) left behind after the replacement")
        return "; ".join(parts)

    add(f"a hung (SIGSTOPped) service, healthy again by a new process (median of {trials})", "s", per(hung_cell), hung_note())
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def report(result: dict[str, Any]) -> str:
    n = result["services"]
    sup_v = result.get("supervisord_version")
    monit_v = result.get("monit_version")
    lines = [
        f"scale benchmark: {n} tiny HTTP services (python -I -S tiny_service.py, GET /healthz -> pid) supervised in turn",
        f"by Aurora, supervisord{f' {sup_v}' if sup_v else ''} and Monit{f' {monit_v}' if monit_v else ''}, on this machine "
        f"({result['cores']} cores); window {result['window_s']:g} s after a {result['warmup_s']:g} s warm-up; "
        f"faults under 1 s checks",
        "",
        "| at N services | Aurora | supervisord | Monit | Aurora/supervisord | Aurora/Monit |",
        "|---|---|---|---|---|---|",
    ]
    ratio = lambda r: f"{r:g}x" if r is not None else "–"  # noqa: E731
    for row in result["rows"]:
        lines.append(f"| {row['row']} ({row['unit']}) | {_cell(row['aurora'])} | {_cell(row['supervisord'])} | "
                     f"{_cell(row['monit'])} | {ratio(row['aurora_over_supervisord'])} | {ratio(row['aurora_over_monit'])} |")
    lines.append("")
    for row in result["rows"]:
        if row["note"]:
            lines.append(f"- {row['row']}: {row['note']}")
    lines += [
        "- CPU: psutil cpu_times (user + system) of the supervisor process and its descendants that are not "
        "services, over the window, from outside; Monit's reaper (standing in for init) is not counted",
        "- kills: SIGKILL (or SIGSTOP) with os.kill from outside; back = first healthy /healthz answer whose pid "
        f"differs, polled every {POLL * 1000:g} ms over 127.0.0.1",
    ]
    for who in COLUMNS:
        f = _faults(result, who)
        if f is not None:
            lines.append(f"- {who}: every recovery counted answered by a new pid: {'yes' if f.new_pids else 'NO'}"
                         + (f"; {'; '.join(f.notes)}" if f.notes else ""))
        data = result.get(who)
        for note in (data or {}).get("notes", []):
            lines.append(f"- {who}: {note}")
        for p in ((data or {}).get("phases") or {}).values():
            if p.note:
                lines.append(f"- {who} ({p.interval}): {p.note}")
    stops = []
    for who in COLUMNS:
        took = [t["stop_s"] for t in ((result.get(who) or {}).get("took_s") or [])]
        if took:
            stops.append(f"{who} {max(took):g} s")
    if stops:
        lines.append(f"- shutdown, SIGTERM to the supervisor -> it and all {n} services gone (slowest of its runs): "
                     + ", ".join(stops) + " (Monit leaves its services running: the benchmark stops them)")
    limited = (result.get("aurora") or {}).get("rate_limited")
    if limited:
        lines.append(f"- aurora: {limited} automatic action(s) slowed by its rate limit (5 per service, 20 fleet-wide, "
                     "in 5 minutes), as its events say")
    for who, why in result["skipped"].items():
        lines.append(f"- {who} skipped: {why}")
    for err in result["errors"]:
        lines.append(f"- error: {err}")
    left = result.get("left_behind") or []
    lines.append(f"- left running at the end: {'none' if not left else f'{len(left)} (killed): ' + '; '.join(left[:5])}")
    return "\n".join(lines)
