"""Recovery after ``kill -9``: how long a supervised HTTP service is gone, under Aurora and under supervisord.

The service is the demo service (``python -m aurora_tui.demo.service --name svc --port P``); "back" means
the first ``GET /healthz`` answered 200 with ``"status": "ok"`` by the *new* process (its ``/status`` pid
differs from the killed one), polled every 5 ms over loopback. Three numbers, medians and p90 over
``trials`` runs:

1. **Cold-start floor**: spawn the service directly and time spawn -> first healthy answer. Whatever a
   supervisor does, it has to start a new interpreter and let it bind its port, so no supervisor can
   recover faster than this. It is the yardstick: a supervisor's overhead is its time minus the floor,
   and comparing raw times across machines says little, while the ratio to the floor travels.
2. **Aurora**: the engine runs in-process with one service; once it has been healthy for 0.5 s the
   service's pid gets SIGKILL and the clock runs until the replacement answers healthy. Every trial
   uses a fresh engine (fresh database), so no trial sees the crash-loop back-off that a previous kill
   would otherwise feed (Aurora treats runs under ``SHORT_RUN`` seconds as failed starts).
   The service uses the demo fleet's settings (its ``restart_delay``, scan ``interval`` 15 s).
3. **supervisord**: the same command as ``[program:svc]`` with ``autorestart=true``, ``startsecs=1``;
   supervisord keeps running across trials, and each kill waits until the program has been RUNNING
   and healthy for 1.5 s, so every kill is of a process past ``startsecs``.

Also, under Aurora: how long ``stop_service`` takes on a service frozen with SIGSTOP (a stopped process
keeps SIGTERM pending until it is continued; Aurora sends SIGCONT after SIGTERM), and how many such stops
needed the SIGKILL that follows ``stop_timeout`` (5 s here). Fresh engine per trial.

Then the ``startsecs`` experiment, for real: a program that exits 0.2 s after every start. supervisord
counts each as a failed start and after ``startretries`` puts it in FATAL, where it stays for good;
Aurora backs off exponentially and keeps retrying.

Only the public behaviour is relied on: kill -9 of a managed service, and the service comes back.
Everything is bounded in time, and every process started here is stopped, process groups included.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
import os
import random
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator

import psutil

from ..core.config import Config, HealthCheck, ServiceConfig, Settings, demo_config
from ..core.engine import Engine

POLL = 0.005  # health polling period while the clock runs
PROBE_TIMEOUT = 0.5
STARTUP_TIMEOUT = 20.0  # first start of a service, under any supervisor
RECOVERY_TIMEOUT = 10.0  # a kill not recovered from within this counts as a failed trial
AURORA_SETTLE = 0.5  # healthy this long before Aurora's service is killed
SUPERVISORD_STABLE = 1.5  # healthy (and past startsecs=1) this long before supervisord's program is killed
TARGET_RATIO = 2.0  # Aurora within 2x the floor
RESTART_DELAY = demo_config().services[0].restart_delay  # what users of the demo fleet get
INTERVAL = 15.0  # as in the demo fleet
FLAKY_CODE = "import sys, time; time.sleep(0.2); sys.exit(1)"
STARTSECS, STARTRETRIES = 1, 3
FATAL_WAIT = 20.0  # bound on waiting for supervisord to give up on the flaky program
AFTER_FATAL = 3.0  # watch this long after FATAL to show there are no further starts
FLAKY_SECONDS = 15.0  # how long Aurora runs the flaky program


# --- measuring ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _service_command(port: int) -> list[str]:
    return [sys.executable, "-m", "aurora_tui.demo.service", "--name", "svc", "--port", str(port)]


async def _get(port: int, path: str) -> tuple[int, str] | None:
    """One HTTP GET on loopback; (status, body), or None if nothing sensible came back in time."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), PROBE_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), PROBE_TIMEOUT)  # the service closes after answering
    except (OSError, asyncio.TimeoutError):
        return None
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    fields = head.split(b" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    return int(fields[1]), body.decode("utf-8", "replace")


async def _healthy(port: int) -> bool:
    answer = await _get(port, "/healthz")
    return answer is not None and answer[0] == 200 and '"status": "ok"' in answer[1]


async def _served_pid(port: int) -> int | None:
    """The pid of the process answering on ``port``, as it reports it on ``/status``."""
    answer = await _get(port, "/status")
    if answer is None or answer[0] != 200:
        return None
    try:
        return int(json.loads(answer[1])["pid"])
    except (ValueError, KeyError, TypeError):
        return None


async def _first_healthy(port: int, deadline: float, not_pid: int | None = None) -> float | None:
    """Poll every ``POLL`` s; the perf_counter of the first healthy answer (from a process other than
    ``not_pid``), or None at the deadline. The pid is checked after the answer, off the clock."""
    while time.perf_counter() < deadline:
        if await _healthy(port):
            answered = time.perf_counter()
            if not_pid is None or (await _served_pid(port)) not in (None, not_pid):
                return answered
        await asyncio.sleep(POLL)
    return None


async def _stable(port: int, seconds: float, deadline: float) -> bool:
    """True once the service has answered healthy continuously for ``seconds``."""
    since = None
    while time.perf_counter() < deadline:
        if await _healthy(port):
            since = since if since is not None else time.perf_counter()
            if time.perf_counter() - since >= seconds:
                return True
        else:
            since = None
        await asyncio.sleep(0.05)
    return False


def _stats(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank
    ms = lambda s: round(s * 1000, 1)  # noqa: E731
    return {
        "n": len(ordered), "median_ms": ms(statistics.median(ordered)), "p90_ms": ms(p90),
        "min_ms": ms(ordered[0]), "max_ms": ms(ordered[-1]), "samples_ms": [ms(s) for s in samples],
    }


def _stop_group(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL it; reap ``proc``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything the leader left in its group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)


# --- 1. the cold-start floor -------------------------------------------------------------------------


async def _floor(trials: int) -> dict[str, Any]:
    port = _free_port()
    samples: list[float] = []
    warmup: float | None = None
    for i in range(trials + 1):  # the first run only warms the page cache and is not counted
        started = time.perf_counter()
        proc = subprocess.Popen(_service_command(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            answered = await _first_healthy(port, started + STARTUP_TIMEOUT)
        finally:
            _stop_group(proc)
        if answered is None:
            raise RuntimeError(f"the demo service did not answer healthy within {STARTUP_TIMEOUT:g}s of its spawn")
        if i == 0:
            warmup = answered - started
        else:
            samples.append(answered - started)
    return _stats(samples) | {"warmup_ms": round((warmup or 0) * 1000, 1)}


# --- 2. Aurora ---------------------------------------------------------------------------------------


def _aurora_config(workdir: Path, service: ServiceConfig) -> Config:
    settings = Settings(interval=INTERVAL, db=workdir / "aurora.db", log_dir=workdir / "logs")
    return Config(source="<recovery benchmark>", settings=settings, services=(service,))


def _aurora_svc(port: int) -> ServiceConfig:
    return ServiceConfig(
        name="svc", command=tuple(_service_command(port)), port=port,
        health=HealthCheck("http", "/healthz", 200, '"status": "ok"', 2.0),
        start_grace=10.0, stop_timeout=5.0, restart_delay=RESTART_DELAY,
    )


@contextlib.asynccontextmanager
async def _aurora_running(port: int, workdir: Path) -> AsyncIterator[Engine]:
    """An engine supervising the one service, yielded once the service answers steadily."""
    engine = Engine(_aurora_config(workdir, _aurora_svc(port)))
    await engine.open()
    try:
        engine.launch()
        if not await _stable(port, AURORA_SETTLE, time.perf_counter() + STARTUP_TIMEOUT):
            raise RuntimeError(f"svc never answered healthy under Aurora within {STARTUP_TIMEOUT:g}s")
        yield engine
    finally:
        await engine.close()


async def _aurora_trial(port: int, workdir: Path) -> float | None:
    async with _aurora_running(port, workdir) as engine:
        pid = engine.fleet.runners["svc"].pid
        served = await _served_pid(port)
        if pid is None or served != pid:
            raise RuntimeError(f"Aurora's pid for svc ({pid}) is not the one serving the port ({served})")
        killed = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        answered = await _first_healthy(port, killed + RECOVERY_TIMEOUT, not_pid=pid)
        return None if answered is None else answered - killed


async def _aurora(trials: int, workdir: Path) -> dict[str, Any]:
    port = _free_port()
    samples, failed = [], 0
    for i in range(trials):
        took = await _aurora_trial(port, workdir / f"aurora-{i}")
        if took is None:
            failed += 1
        else:
            samples.append(took)
    return _stats(samples) | {"failed": failed}


async def _aurora_stop_frozen_trial(port: int, workdir: Path) -> tuple[float, bool]:
    """(seconds ``stop_service`` took on a SIGSTOPped service, whether it needed SIGKILL)."""
    async with _aurora_running(port, workdir) as engine:
        runner = engine.fleet.runners["svc"]
        pid = runner.pid
        if pid is None:
            raise RuntimeError("svc has no pid under Aurora")
        os.kill(pid, signal.SIGSTOP)
        deadline = time.perf_counter() + STARTUP_TIMEOUT
        while psutil.Process(pid).status() != psutil.STATUS_STOPPED:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"svc (pid {pid}) did not take SIGSTOP within {STARTUP_TIMEOUT:g}s")
            await asyncio.sleep(POLL)
        started = time.perf_counter()
        await engine.stop_service("svc", requested_by="benchmark")
        took = time.perf_counter() - started
        return took, runner.last_exit is not None and runner.last_exit.signal == "SIGKILL"


async def _aurora_stop_frozen(trials: int, workdir: Path) -> dict[str, Any]:
    port = _free_port()
    samples, escalated = [], 0
    for i in range(trials):
        took, killed = await _aurora_stop_frozen_trial(port, workdir / f"aurora-stop-{i}")
        samples.append(took)
        escalated += killed
    return _stats(samples) | {"escalated": escalated}


async def _aurora_flaky(workdir: Path, seconds: float) -> dict[str, Any]:
    svc = ServiceConfig(name="flaky", command=(sys.executable, "-c", FLAKY_CODE), health=HealthCheck("none"),
                        stop_timeout=5.0, restart_delay=RESTART_DELAY)
    engine = Engine(_aurora_config(workdir, svc))
    await engine.open()
    try:
        runner = engine.fleet.runners["flaky"]
        began = time.perf_counter()
        engine.launch()
        starts: list[float] = []
        while time.perf_counter() - began < seconds:
            while len(starts) < runner.starts:
                starts.append(time.perf_counter() - began)
            await asyncio.sleep(0.01)
        state = str(runner.state)
    finally:
        await engine.close()
    gaps = [round(b - a, 2) for a, b in zip(starts, starts[1:])]
    return {"seconds": seconds, "starts": len(starts), "start_times_s": [round(s, 2) for s in starts],
            "gaps_s": gaps, "state": state, "gave_up": state not in ("backoff", "starting", "running")}


# --- 3. supervisord ----------------------------------------------------------------------------------


def ensure_supervisor() -> tuple[str | None, str]:
    """supervisor's version, installing it with pip if needed; (None, why) if it cannot be had.
    Shared with the scale benchmark, as is :class:`Supervisord`."""
    from importlib import metadata

    try:
        importlib.import_module("supervisor")
    except ImportError:
        try:
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "supervisor"],
                                  capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"pip install supervisor failed: {exc}"
        importlib.invalidate_caches()
        try:
            importlib.import_module("supervisor")
        except ImportError:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, "pip install supervisor failed: " + (" | ".join(tail) or f"exit {done.returncode}")
    try:
        return metadata.version("supervisor"), ""
    except metadata.PackageNotFoundError:
        return "?", ""


def _ini(value: str | Path) -> str:
    return str(value).replace("%", "%%")  # supervisord expands %(name)s in its config values


class Supervisord:
    """One supervisord in the foreground, in its own session, with its own socket, logs and programs.
    Used by the recovery and the scale benchmarks."""

    def __init__(self, workdir: Path, programs: dict[str, str], stop_wait: float = 15.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        # How long stop() lets supervisord stop its programs: it stops one program group per pass of its
        # main loop, so with hundreds of programs its own shutdown takes minutes.
        self.stop_wait = stop_wait
        self.conf = workdir / "supervisord.conf"
        self.log = workdir / "supervisord.log"
        sections = [
            f"[unix_http_server]\nfile={_ini(workdir / 'supervisor.sock')}\n",
            f"[supervisord]\nnodaemon=true\nlogfile={_ini(self.log)}\npidfile={_ini(workdir / 'supervisord.pid')}\n"
            f"childlogdir={_ini(workdir)}\nloglevel=info\n",
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
            f"[supervisorctl]\nserverurl=unix://{_ini(workdir / 'supervisor.sock')}\n",
        ]
        for name, command in programs.items():
            sections.append(
                f"[program:{name}]\ncommand={_ini(command)}\nautostart=true\nautorestart=true\n"
                f"startsecs={STARTSECS}\nstartretries={STARTRETRIES}\nstopasgroup=true\nkillasgroup=true\n"
                f"stopwaitsecs=5\nredirect_stderr=true\nstdout_logfile={_ini(workdir / f'{name}.log')}\n"
            )
        self.conf.write_text("\n".join(sections))
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, psutil.Process] = {}  # every child ever seen, for the final sweep

    def start(self) -> None:
        with open(self.workdir / "supervisord.out", "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def ctl(self, *args: str) -> str:
        try:
            done = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), *args],
                                  capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout

    def status(self, name: str) -> str:
        """The program's state word (RUNNING, STARTING, BACKOFF, FATAL...), '' if supervisord did not say."""
        for line in self.ctl("status", name).splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == name:
                return fields[1]
        return ""

    def log_lines(self, pattern: str) -> list[tuple[float, str]]:
        """(timestamp, line) of supervisord's log lines matching ``pattern``."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.log.read_text(errors="replace").splitlines():
                if re.search(pattern, line):
                    with contextlib.suppress(ValueError):
                        ts = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                        found.append((ts, line))
        return found

    def remember_children(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def stop(self) -> None:
        """SIGTERM (supervisord stops its programs), then SIGKILL its group; then sweep every child it had:
        supervisord puts each program in a process group of its own, out of reach of its own group."""
        if self.proc is None:
            return
        self.remember_children()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_wait
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.remember_children()
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)
        killed = []
        for child in self.seen.values():
            with contextlib.suppress(psutil.Error, OSError):
                # is_running also checks the create time: no pid reuse accident
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    if os.getpgid(child.pid) == child.pid:
                        os.killpg(child.pid, signal.SIGKILL)
                    else:
                        child.kill()
                    killed.append(child)
        psutil.wait_procs(killed, timeout=5.0)  # all at once: one bound, however many there were
        self.proc = None


async def _supervisord_recovery(trials: int, workdir: Path) -> dict[str, Any]:
    port = _free_port()
    sup = Supervisord(workdir, {"svc": shlex.join(_service_command(port))})
    samples, failed = [], 0
    kills: list[float] = []  # wall-clock time of each kill, to match supervisord's log
    phase = random.Random(1)
    sup.start()
    try:
        for _ in range(trials):
            deadline = time.perf_counter() + STARTUP_TIMEOUT
            while time.perf_counter() < deadline:
                if await _stable(port, SUPERVISORD_STABLE, deadline) and sup.status("svc") == "RUNNING":
                    break
            else:
                raise RuntimeError(f"svc was not RUNNING and healthy under supervisord within {STARTUP_TIMEOUT:g}s")
            sup.remember_children()
            pid = await _served_pid(port)
            listed = sup.ctl("pid", "svc").strip()
            if pid is None or listed != str(pid):
                raise RuntimeError(f"supervisord's pid for svc ({listed!r}) is not the one serving the port ({pid})")
            # supervisorctl's request just woke supervisord's 1 s poll loop: kill at a random phase of it,
            # as a real crash would, rather than always right after a wake-up.
            await asyncio.sleep(phase.uniform(0.0, 1.0))
            kills.append(time.time())
            killed = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            answered = await _first_healthy(port, killed + RECOVERY_TIMEOUT, not_pid=pid)
            if answered is None:
                failed += 1
            else:
                samples.append(answered - killed)
    finally:
        sup.stop()
    return _stats(samples) | {"failed": failed, **_supervisord_timeline(sup, kills)}


def _supervisord_timeline(sup: Supervisord, kills: list[float]) -> dict[str, Any]:
    """Where supervisord's time goes, from its own log (millisecond timestamps): kill -> it logs the
    exit -> it logs the spawn of the replacement."""
    exited, spawned = sup.log_lines(r"exited: svc "), sup.log_lines(r"spawned: 'svc'")
    to_exit, to_spawn = [], []
    for kill in kills:
        seen = next((ts for ts, _ in exited if ts >= kill - 0.002), None)
        if seen is None:
            continue
        respawn = next((ts for ts, _ in spawned if ts >= seen), None)
        to_exit.append(seen - kill)
        if respawn is not None:
            to_spawn.append(respawn - kill)
    ms = lambda xs: round(statistics.median(xs) * 1000, 1) if xs else None  # noqa: E731
    return {"kill_to_exit_logged_ms": ms(to_exit), "kill_to_spawn_logged_ms": ms(to_spawn)}


async def _supervisord_flaky(workdir: Path) -> dict[str, Any]:
    sup = Supervisord(workdir, {"flaky": shlex.join([sys.executable, "-c", FLAKY_CODE])})
    began = time.perf_counter()
    sup.start()
    try:
        state = ""
        while time.perf_counter() - began < FATAL_WAIT:
            state = sup.status("flaky")
            if state == "FATAL":
                break
            await asyncio.sleep(0.2)
        fatal_seen = time.perf_counter() - began
        spawned = sup.log_lines(r"spawned: 'flaky'")
        gave_up = sup.log_lines(r"gave up: flaky")
        if state == "FATAL":
            await asyncio.sleep(AFTER_FATAL)
        later = sup.log_lines(r"spawned: 'flaky'")
        state_after = sup.status("flaky")
    finally:
        sup.stop()
    result: dict[str, Any] = {"fatal": state == "FATAL", "starts": len(spawned), "state_after": state_after,
                              "starts_after_fatal": len(later) - len(spawned), "watched_after_s": AFTER_FATAL,
                              "polled_s": round(fatal_seen, 2)}
    if spawned and gave_up:  # from supervisord's own log timestamps: first spawn -> "gave up"
        result["gave_up_after_s"] = round(gave_up[0][0] - spawned[0][0], 2)
        result["spawn_times_s"] = [round(ts - spawned[0][0], 2) for ts, _ in spawned]
    return result


# --- the benchmark -----------------------------------------------------------------------------------


def run(trials: int = 10, include_supervisord: bool = True, flaky_seconds: float = FLAKY_SECONDS) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "recovery", "trials": trials, "poll_ms": POLL * 1000,
                              "restart_delay_s": RESTART_DELAY, "target_ratio": TARGET_RATIO}
    with tempfile.TemporaryDirectory(prefix="aurora-recovery-") as tmp:
        work = Path(tmp)
        result["floor"] = asyncio.run(_floor(trials))
        result["aurora"] = asyncio.run(_aurora(trials, work))
        result["aurora_stop_frozen"] = asyncio.run(_aurora_stop_frozen(trials, work))
        result["aurora_flaky"] = asyncio.run(_aurora_flaky(work / "aurora-flaky", flaky_seconds))
        if include_supervisord:
            version, why = ensure_supervisor()
            if version is None:
                result["supervisord"] = {"skipped": why}
            else:
                result["supervisord"] = asyncio.run(_supervisord_recovery(trials, work / "supervisord")) | {"version": version}
                result["supervisord_flaky"] = asyncio.run(_supervisord_flaky(work / "supervisord-flaky"))
        else:
            result["supervisord"] = {"skipped": "not requested (include_supervisord=False)"}
    floor, aurora, sup = result["floor"], result["aurora"], result["supervisord"]
    if aurora.get("n") and floor.get("n"):
        result["aurora_over_floor"] = round(aurora["median_ms"] / floor["median_ms"], 2)
        result["target_met"] = result["aurora_over_floor"] <= TARGET_RATIO and not aurora["failed"]
    if sup.get("n") and aurora.get("n"):
        result["supervisord_over_aurora"] = round(sup["median_ms"] / aurora["median_ms"], 2)
    result["report"] = _report(result)
    return result


def _row(label: str, s: dict[str, Any]) -> str:
    if not s.get("n"):
        return f"{label:<40} {'no successful trial':>40}"
    failed = f"  ({s['failed']} not back within {RECOVERY_TIMEOUT:g}s)" if s.get("failed") else ""
    return f"{label:<40} {s['median_ms']:>8} {s['p90_ms']:>8} {s['min_ms']:>8} {s['max_ms']:>8} {s['n']:>6}{failed}"


def _report(r: dict[str, Any]) -> str:
    floor, aurora, sup = r["floor"], r["aurora"], r["supervisord"]
    lines = [
        "recovery benchmark: kill -9 of a supervised HTTP service -> first healthy answer from its replacement",
        f"service: python -m aurora_tui.demo.service, GET /healthz -> 200 with \"status\": \"ok\", polled every "
        f"{r['poll_ms']:g} ms; new process confirmed by its /status pid",
        "",
        f"{'':<40} {'median':>8} {'p90':>8} {'min':>8} {'max':>8} {'trials':>6}   (ms)",
        _row("cold-start floor (spawn -> healthy)", floor),
        _row("Aurora (kill -9 -> healthy)", aurora),
    ]
    if "skipped" in sup:
        lines.append(f"{'supervisord (kill -9 -> healthy)':<40} skipped: {sup['skipped']}")
    else:
        lines.append(_row(f"supervisord {sup['version']} (kill -9 -> healthy)", sup))
    frozen = r["aurora_stop_frozen"]
    lines.append(_row("Aurora stop of a SIGSTOPped service", frozen)
                 + f"  (needed SIGKILL after stop_timeout: {frozen['escalated']} of {frozen.get('n', 0)})")
    lines.append("")
    if "aurora_over_floor" in r:
        verdict = "met" if r["target_met"] else "NOT met"
        lines.append(f"Aurora / floor:       {r['aurora_over_floor']:.2f}x   target: within {TARGET_RATIO:g}x the floor -> {verdict}")
        overhead = aurora["median_ms"] - floor["median_ms"]
        lines.append(f"Aurora's overhead over the floor: {overhead:.0f} ms, of which {r['restart_delay_s'] * 1000:.0f} ms is its "
                     f"configured restart_delay")
    if "supervisord_over_aurora" in r:
        lines.append(f"supervisord / Aurora: {r['supervisord_over_aurora']:.2f}x   "
                     f"(supervisord / floor: {sup['median_ms'] / floor['median_ms']:.2f}x)")
        lines.append(f"supervisord samples: {', '.join(f'{x:g}' for x in sup['samples_ms'])} ms")
        if sup.get("kill_to_spawn_logged_ms") is not None:
            why = (" (its main loop polls with a 1 s timeout and spawns on the pass after the one that reaps)"
                   if sup["kill_to_spawn_logged_ms"] >= 900 else "")
            lines.append(f"supervisord's own log, medians: kill -> exit logged {sup['kill_to_exit_logged_ms']} ms, "
                         f"kill -> replacement spawned {sup['kill_to_spawn_logged_ms']} ms{why}")
    lines.append(f"(Aurora: fresh engine per trial, killed after {AURORA_SETTLE:g}s healthy; supervisord: one daemon, "
                 f"killed after {SUPERVISORD_STABLE:g}s healthy and RUNNING; floor warm-up run not counted: "
                 f"{floor.get('warmup_ms')} ms)")
    lines += ["", f"startsecs experiment: a program that exits 0.2 s after every start "
                  f"(startsecs={STARTSECS}, startretries={STARTRETRIES})"]
    sf = r.get("supervisord_flaky")
    if sf is None:
        lines.append(f"  supervisord: skipped ({sup.get('skipped', 'not run')})")
    elif sf["fatal"]:
        took = sf.get("gave_up_after_s", sf["polled_s"])
        more = "no further retries" if sf["starts_after_fatal"] == 0 else f"yet {sf['starts_after_fatal']} more starts"
        lines.append(f"  supervisord: FATAL after {sf['starts']} starts in {took:g} s, {more} "
                     f"(watched {sf['watched_after_s']:g} s more; state still {sf['state_after'] or '?'})")
        if sf.get("spawn_times_s"):
            lines.append(f"    starts at {', '.join(f'{t:g}' for t in sf['spawn_times_s'])} s")
    else:
        lines.append(f"  supervisord: not FATAL within {FATAL_WAIT:g} s ({sf['starts']} starts)")
    af = r["aurora_flaky"]
    if af["gave_up"]:
        lines.append(f"  Aurora: {af['starts']} starts in {af['seconds']:g} s, then gave up (state {af['state']})")
    else:
        lines.append(f"  Aurora: {af['starts']} starts in {af['seconds']:g} s and still retrying with back-off "
                     f"(state {af['state']})")
    if af["gaps_s"]:
        lines.append(f"    starts at {', '.join(f'{t:g}' for t in af['start_times_s'])} s; "
                     f"gaps {', '.join(f'{g:g}' for g in af['gaps_s'])} s")
    return "\n".join(lines)
