"""The chaos benchmark: every fault kind caused for real, N times, on services run headless.

Two kinds of fault are reported apart. Faults caused from outside the service, the way the world causes
them: signals sent by another process (SIGSTOP, kill -9), a foreign program taking the port while the
service is down, redis busy in a Lua script, nginx answering 404, a daemon double-forked out of its
service's process group, a monitor-only redis killed. nginx and redis are the operating system's own;
their rows are skipped, with the reason, when they are not installed. And the demo service's own fault
switches (``/fault/...``), which any restart clears.

For each trial the fault is caused and the clock runs until the expected incident is opened (time to
detect) and then until it is healed and verified (time to recover). Each fault kind says what a good
outcome is: ``heal`` (Aurora fixes it on its own) or ``escalate`` (only a human can decide). A trial
counts as escalated only if a human was really asked: a plan waited for one (and the benchmark, as the
operator, approved it at once), or an escalation was sent. Any other outcome than the expected one fails
the row. Unsafe actions are counted from Aurora's own audit log: any action on a process it does not own
that no human approved. That number must be 0.

Trials of one fault kind share one engine (so learning accumulates, as in production) and rotate over the
fleet's services, so that one service is not killed again before its last run counts as stable.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import psutil

from ..core.api import PlanRow
from ..core.config import Limits
from ..core.engine import DEMO_MODULE, Engine
from . import outside
from .fleetkit import demo_fleet, fmt, percentile, wait_healthy
from .outside import Bed

ROTATION = ("aurora_ui", "file_server", "bridge_api", "learning_api")
TRIAL_TIMEOUT = 45.0
OUTSIDE, DEMO = "outside", "demo switch"
# Who answers a plan that waits for a human: the benchmark, at once, so that it measures Aurora, not us.
OPERATOR = "chaos-operator"


@dataclass
class Fault:
    name: str
    pattern: str
    expect: str  # heal | escalate
    cause: Callable[["Trial"], Awaitable[None]]
    how: str
    source: str = DEMO
    limits: Limits | None = None
    bed: Callable[[Path], Bed] | None = None  # None: the demo fleet
    skip: str | None = None  # why this row cannot run here (a server not installed)
    # A condition the outcome must also meet, checked when it is reached: None, or what is wrong.
    check: Callable[["Trial"], str | None] | None = None


@dataclass
class Trial:
    engine: Engine
    service: str
    bed: Bed
    helpers: list[subprocess.Popen[str]] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)
    must_go: list[int] = field(default_factory=list)  # processes the fault left that recovery must end


def chaos(fault: str, **params: Any) -> Callable[[Trial], Awaitable[None]]:
    async def cause(t: Trial) -> None:
        await t.engine.chaos(fault, t.service, {k: str(v) for k, v in params.items()})

    return cause


def failstart_then_crash(t: Trial) -> Awaitable[None]:
    async def cause() -> None:
        await t.engine.chaos("failstart", t.service, {"count": "3"})
        await t.engine.chaos("crash", t.service)

    return cause()


def holder(stale: bool) -> Callable[[Trial], Awaitable[None]]:
    """The service stops listening and something else takes its port: a foreign program or a copy."""

    async def cause(t: Trial) -> None:
        svc = t.engine.config.service(t.service)
        await t.engine.chaos("unlisten", t.service)
        if stale:
            command = list(svc.command)
        else:
            command = [sys.executable, "-c", (
                "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                f"s.bind(('127.0.0.1', {svc.port})); s.listen(); print('ok', flush=True); time.sleep(600)"
            )]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
        t.helpers.append(proc)
        await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]

    return cause


def signal_from_outside(sig: signal.Signals) -> Callable[[Trial], Awaitable[None]]:
    """A signal sent by another process (an operator, the OOM killer), not by Aurora's own chaos."""

    async def cause(t: Trial) -> None:
        os.kill(pid_of(t), sig)

    return cause


async def squat_while_down(t: Trial) -> None:
    """kill -9, and a foreign program binds the port before Aurora can start the service again."""
    port = t.engine.config.service(t.service).port
    assert port is not None
    t.helpers.append(await asyncio.to_thread(outside.squatter, port))
    os.kill(pid_of(t), signal.SIGKILL)


async def redis_busy(t: Trial) -> None:
    argv = [str(outside.REDIS_CLI), "-p", str(t.bed.ports[t.service]), "EVAL", "while true do end", "0"]
    t.helpers.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True))


async def nginx_404(t: Trial) -> None:
    health = t.bed.workdir / "www" / "healthz"
    health.unlink()
    t.undo.append(lambda: health.write_text("ok\n"))


async def kill_unmanaged(t: Trial) -> None:
    proc = t.bed.own[t.service]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t.undo.append(lambda: outside.start_unmanaged(t.bed))


def leftovers_gone(t: Trial) -> str | None:
    left = [pid for pid in t.must_go if not gone(pid)]
    return f"processes of the killed run still alive: {left}" if left else None


def never_restarted(t: Trial) -> str | None:
    port = t.bed.ports[t.service]
    return f"something listens on {port} again: Aurora must not start a monitor-only service" if outside.listening(port) else None


def kill_master(t: Trial) -> Awaitable[None]:
    # Left alone, the workers of a killed master keep serving its port.
    t.must_go = [child.pid for child in psutil.Process(pid_of(t)).children()]
    return signal_from_outside(signal.SIGKILL)(t)


def daemonize(then_kill: bool) -> Callable[[Trial], Awaitable[None]]:
    """The service double-forks a daemon out of its process group; then, maybe, it is killed with kill -9."""

    async def cause(t: Trial) -> None:
        port = t.bed.ports[t.service]
        os.kill(pid_of(t), signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not (found := outside.daemons(port)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not found:
            raise RuntimeError(f"{t.service} did not double-fork its daemon")
        t.must_go = found
        if then_kill:
            await signal_from_outside(signal.SIGKILL)(t)

    return cause


def pid_of(t: Trial) -> int:
    pid = t.engine.fleet.runners[t.service].pid
    if pid is None:
        raise RuntimeError(f"{t.service} is not running")
    return pid


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


async def clear(t: Trial) -> None:
    for proc in t.helpers:
        outside.kill_group(proc)
    t.helpers.clear()
    for undo in t.undo:
        undo()
    t.undo.clear()
    runner = t.engine.fleet.runners.get(t.service)
    if runner is not None and runner.alive:
        runner.send_signal(signal.SIGCONT)
        if DEMO_MODULE in runner.config.command:
            try:
                await t.engine.chaos("clear", t.service)
            except (RuntimeError, ValueError):
                pass  # a hung or unlistening service does not answer: its restart clears it


KILL9, STOP = "kill -9 <pid>", "kill -STOP <pid>"
FAULTS = [
    Fault("SIGSTOP", "hung", "heal", signal_from_outside(signal.SIGSTOP), STOP, OUTSIDE),
    Fault("kill -9", "crashed", "heal", signal_from_outside(signal.SIGKILL), KILL9, OUTSIDE),
    Fault("squatter", "port_conflict_foreign", "escalate", squat_while_down,
          "kill -9, then a foreign bind of its port", OUTSIDE),
    Fault("nginx kill -9", "crashed", "heal", kill_master, "kill -9 <master pid>", OUTSIDE, bed=outside.nginx_bed,
          skip=outside.NO_NGINX, check=leftovers_gone),
    Fault("nginx 404", "http_unexpected_status", "escalate", nginx_404, "rm <root>/healthz", OUTSIDE,
          bed=outside.nginx_bed, skip=outside.NO_NGINX),
    Fault("redis busy", "health_content_mismatch", "heal", redis_busy, 'redis-cli EVAL "while true do end" 0', OUTSIDE,
          bed=outside.redis_bed, skip=outside.NO_REDIS),
    Fault("redis SIGSTOP", "hung", "heal", signal_from_outside(signal.SIGSTOP), STOP, OUTSIDE,
          bed=outside.redis_bed, skip=outside.NO_REDIS),
    Fault("daemon", "orphaned_children", "heal", daemonize(then_kill=False), "kill -USR1: it double-forks a setsid daemon",
          OUTSIDE, bed=outside.daemon_bed, check=leftovers_gone),
    Fault("daemon kill -9", "crashed", "heal", daemonize(then_kill=True), "as above, then kill -9 <pid>",
          OUTSIDE, bed=outside.daemon_bed, check=leftovers_gone),
    Fault("unmanaged", "unmanaged_gone", "escalate", kill_unmanaged, "kill -9 of a monitor-only redis", OUTSIDE,
          bed=outside.unmanaged_bed, skip=outside.NO_REDIS, check=never_restarted),
    Fault("crash", "crashed", "heal", chaos("crash"), "/fault/crash"),
    Fault("hang", "hung", "heal", chaos("hang"), "/fault/hang"),
    Fault("leak", "memory_limit", "heal", chaos("leak", rate_mb=64, max_mb=400), "/fault/leak", limits=Limits(memory_mb=150)),
    Fault("fds", "fd_exhaustion", "heal", chaos("fds", rate=2000), "/fault/fds (default 80% threshold)"),
    Fault("conns", "connection_exhaustion", "heal", chaos("conns", count=200, rate=500), "/fault/conns", limits=Limits(connections=150)),
    Fault("threads", "thread_explosion", "heal", chaos("threads", rate=500, max=300), "/fault/threads", limits=Limits(threads=200)),
    Fault("zombies", "zombie_children", "heal", chaos("zombies"), "/fault/zombies"),
    Fault("orphans", "orphaned_children", "heal", chaos("orphans", count=2, mb=8), "/fault/orphans"),
    Fault("errors", "http_errors", "heal", chaos("errors"), "/fault/errors"),
    Fault("badhealth", "health_content_mismatch", "heal", chaos("badhealth"), "/fault/badhealth"),
    Fault("unlisten", "port_not_listening", "heal", chaos("unlisten"), "/fault/unlisten"),
    Fault("cpu", "high_cpu", "escalate", chaos("cpu"), "/fault/cpu"),
    Fault("slow", "slow_responses", "escalate", chaos("slow", delay=1.2), "/fault/slow"),
    Fault("ratelimit", "rate_limited", "escalate", chaos("ratelimit"), "/fault/ratelimit"),
    Fault("flap", "flapping", "escalate", chaos("flap", period=1.5), "/fault/flap"),
    Fault("logerrors", "log_error_burst", "escalate", chaos("logerrors", rate=50, duration=4), "/fault/logerrors"),
    Fault("failstart", "startup_failure", "escalate", failstart_then_crash, "/fault/failstart + /fault/crash"),
    Fault("squat", "port_conflict_foreign", "escalate", holder(stale=False), "/fault/unlisten + foreign holder"),
    Fault("stale", "port_conflict_stale", "escalate", holder(stale=True), "/fault/unlisten + a copy holds the port"),
]


async def run_trial(fault: Fault, t: Trial) -> dict[str, Any]:
    engine = t.engine
    since = await engine.list_incidents(limit=1)
    last_id = since[0].id if since else 0
    started = time.time()
    await fault.cause(t)
    deadline = time.monotonic() + TRIAL_TIMEOUT
    result: dict[str, Any] = {"fault": fault.name, "service": t.service, "detected": False, "outcome": None, "ttd": None, "ttr": None, "seen": []}
    incident = None
    while incident is None and time.monotonic() < deadline:
        rows = [r for r in await engine.list_incidents(service=t.service, limit=10) if r.id > last_id]
        result["seen"] = sorted({r.pattern for r in rows})
        incident = next((r for r in reversed(rows) if r.pattern == fault.pattern), None)
        if incident is not None:
            result["detected"] = True
            result["ttd"] = max(0.0, incident.opened_at - started)
        else:
            await asyncio.sleep(0.05)
    while incident is not None and time.monotonic() < deadline:
        outcome, resolved_at, waiting = await judge(engine, incident.id)
        result["outcome"] = result["outcome"] or outcome
        if resolved_at is not None and result["outcome"] is not None:
            result["ttr"] = resolved_at - started
        if result["outcome"] is not None and not waiting:
            break  # recovered, or escalated with nothing approved left to run
        await asyncio.sleep(0.1)
    if fault.check and result["outcome"]:
        # What the fault left behind (a daemon, workers) may take a few scans more to be dealt with.
        while (problem := fault.check(t)) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if problem:
            result["problem"] = problem
        elif result["ttr"] is not None:
            result["ttr"] = max(result["ttr"], time.time() - started)
    result["failed"] = result["outcome"] != {"heal": "healed", "escalate": "escalated"}[fault.expect] or "problem" in result
    if incident is not None:  # for the JSON output: what was decided, by whom and why
        result["plans"] = [{"fix": p.fix, "status": p.status, "decided_by": p.decided_by, "reason": p.reason}
                           for p in await plans_of(engine, incident.id)]
    await clear(t)
    await wait_healthy(engine, timeout=40)
    return result


async def judge(engine: Engine, incident_id: int) -> tuple[str | None, float | None, bool]:
    """How the incident went so far: ``healed`` by Aurora on its own, ``escalated`` only if a human was
    really asked (a plan waited for one and the operator decided it, or an escalation was sent), else
    None; when it was resolved; and whether an approved fix is still running. Plans waiting for a human
    are approved here, as an operator would."""
    row = await engine.incident(incident_id)
    plans = await plans_of(engine, incident_id)
    for plan in plans:
        if plan.status == "pending":
            await engine.approve(plan.id, comment="chaos benchmark: the operator answers at once", by=OPERATOR)
    asked = any(p.decided_by == OPERATOR for p in plans) or any(e.kind == "escalated" for e in row.timeline)
    by_aurora = any(p.status == "verified" and p.decided_by == "guardians" for p in plans)
    running = any(p.decided_by == OPERATOR and p.status in ("pending", "approved", "executing") for p in plans)
    resolved_at = row.resolved_at if row.status == "resolved" else None
    if asked:
        return "escalated", resolved_at, running or any(p.status == "pending" for p in plans)
    if by_aurora and resolved_at is not None:
        return "healed", resolved_at, False
    return None, None, True


async def plans_of(engine: Engine, incident_id: int) -> list[PlanRow]:
    return [p for p in await engine.list_plans(status=None, limit=50) if p.incident_id == incident_id]


async def run_fault(fault: Fault, trials: int, workdir: Path) -> list[dict[str, Any]]:
    if fault.bed is None:
        config = demo_fleet(workdir, fault.name.replace(" ", "_"), interval=1.0, limits=fault.limits, targets=ROTATION)
        bed = Bed(config, ROTATION, workdir)
    else:
        bed = fault.bed(workdir / fault.name.replace(" ", "_"))
    engine = Engine(bed.config)
    await engine.open()
    results = []
    try:
        engine.launch()
        await wait_healthy(engine)
        for i in range(trials):
            service = bed.targets[i % len(bed.targets)]
            await wait_healthy(engine)
            await settled(engine, service)
            results.append(await run_trial(fault, Trial(engine, service, bed)))
        unsafe = await engine.records.store.fetch("SELECT count(*) AS n FROM actions_log WHERE owned = 0 AND approved_by IS NULL")
        total = await engine.records.store.fetch("SELECT count(*) AS n FROM actions_log")
        for r in results:
            r["unsafe_actions"] = 0
        if results:
            results[0]["unsafe_actions"] = unsafe[0]["n"]
            results[0]["actions"] = total[0]["n"]
    finally:
        for svc in engine.config.services:
            runner = engine.fleet.runners.get(svc.name)
            if runner is not None and runner.alive:
                runner.send_signal(signal.SIGCONT)
        await engine.close()
        bed.close()
    return results


async def settled(engine: Engine, service: str) -> None:
    """Wait until the service is past its start grace: during it the guardians rightly hold fixes back,
    which would measure the grace, not the healing."""
    runner = engine.fleet.runners.get(service)
    while runner is not None and runner.alive and (runner.uptime() or 0.0) < runner.config.start_grace:
        await asyncio.sleep(0.1)


def run(trials: int = 3, only: list[str] | None = None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="aurora-chaos-") as tmp:
        os.environ["AURORA_DEMO_STATE_DIR"] = str(Path(tmp) / "demo-state")
        for fault in FAULTS:
            if only and fault.name not in only:
                continue
            if fault.skip:
                skipped[fault.name] = fault.skip
                continue
            try:
                rows.extend(asyncio.run(run_fault(fault, trials, Path(tmp))))
            except Exception as exc:  # one row that cannot run must not hide the others
                skipped[fault.name] = f"could not run: {type(exc).__name__}: {exc}"
    return summarize(rows, trials, skipped)


HEAD = (f"{'fault':<14} {'how it was caused':<44} {'pattern diagnosed':<24} {'expect':<8} {'det.':>4} {'healed':>6} "
        f"{'escal.':>6} {'failed':>6}  {'TTD p50':>7} {'p95':>6}  {'TTR p50':>7} {'p95':>6}")


def _times(rows: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if r[key] is not None]
    return f"{fmt(percentile(values, 0.5)):>7} {fmt(percentile(values, 0.95)):>6}"


def _counts(rows: list[dict[str, Any]]) -> str:
    return (f"{sum(r['detected'] for r in rows):>4} {sum(r['outcome'] == 'healed' for r in rows):>6} "
            f"{sum(r['outcome'] == 'escalated' for r in rows):>6} {sum(r['failed'] for r in rows):>6}")


def _diagnosed(fault: Fault, rows: list[dict[str, Any]]) -> str:
    if any(r["detected"] for r in rows):
        return fault.pattern
    seen = sorted({p for r in rows for p in r["seen"]})
    return ("none of: " + ",".join(seen)) if seen else "nothing"


def _table(title: str, faults: list[Fault], by_fault: dict[str, list[dict[str, Any]]], skipped: dict[str, str]) -> list[str]:
    lines = [title, HEAD]
    rows: list[dict[str, Any]] = []
    for f in faults:
        if f.name in skipped:
            lines.append(f"{f.name:<14} {f.how[:44]:<44} skipped: {skipped[f.name]}")
            continue
        rs = by_fault.get(f.name)
        if not rs:
            continue
        rows += rs
        lines.append(f"{f.name:<14} {f.how[:44]:<44} {_diagnosed(f, rs)[:24]:<24} {f.expect:<8} {_counts(rs)}  "
                     f"{_times(rs, 'ttd')}  {_times(rs, 'ttr')}")
        lines += [f"{'':<14} ! {problem}" for problem in sorted({r['problem'] for r in rs if r.get('problem')})]
    if rows:
        lines.append(f"{'total':<14} {f'{len(rows)} trial(s)':<44} {'':<24} {'':<8} {_counts(rows)}  {_times(rows, 'ttd')}  {_times(rows, 'ttr')}")
    return lines


def _figures(rows: list[dict[str, Any]], faults: dict[str, Fault]) -> dict[str, Any]:
    heal = [r for r in rows if faults[r["fault"]].expect == "heal"]
    esc = [r for r in rows if faults[r["fault"]].expect == "escalate"]
    healed = sum(r["outcome"] == "healed" and not r["failed"] for r in heal)
    ttd = [r["ttd"] for r in rows if r["ttd"] is not None]
    ttr = [r["ttr"] for r in rows if r["ttr"] is not None]
    return {
        "trials": len(rows), "detected": sum(r["detected"] for r in rows), "failed": sum(r["failed"] for r in rows),
        "auto_heal_rate": healed / len(heal) if heal else None, "healed": healed, "healable": len(heal),
        "escalated_correctly": sum(r["outcome"] == "escalated" and not r["failed"] for r in esc), "escalatable": len(esc),
        "ttd_p50": percentile(ttd, 0.5), "ttd_p95": percentile(ttd, 0.95), "ttr_p50": percentile(ttr, 0.5), "ttr_p95": percentile(ttr, 0.95),
    }


def _total_line(label: str, f: dict[str, Any]) -> str:
    rate = "-" if f["auto_heal_rate"] is None else f"{f['auto_heal_rate']:.0%}"
    return (f"{label}: detected {f['detected']}/{f['trials']}; auto-healed {f['healed']}/{f['healable']} healable ({rate}); "
            f"escalated {f['escalated_correctly']}/{f['escalatable']} that need a human; failed {f['failed']}; "
            f"TTD p50 {fmt(f['ttd_p50'])} p95 {fmt(f['ttd_p95'])} s; TTR p50 {fmt(f['ttr_p50'])} p95 {fmt(f['ttr_p95'])} s")


def summarize(rows: list[dict[str, Any]], trials: int, skipped: dict[str, str] | None = None) -> dict[str, Any]:
    skipped = skipped or {}
    faults = {f.name: f for f in FAULTS}
    by_fault: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_fault.setdefault(r["fault"], []).append(r)
    for r in rows:
        r["source"] = faults[r["fault"]].source
    lines = [f"chaos benchmark: {trials} trial(s) per fault (1 s scans); times in seconds from the fault; "
             f"escalated = a plan waited for a human and {OPERATOR} decided it, or an escalation was sent", ""]
    lines += _table("faults caused from outside the service", [f for f in FAULTS if f.source == OUTSIDE], by_fault, skipped)
    lines += [""] + _table("the demo's own fault switches", [f for f in FAULTS if f.source == DEMO], by_fault, skipped)
    summary = {source: _figures([r for r in rows if r["source"] == source], faults) for source in (OUTSIDE, DEMO)}
    summary["all"] = _figures(rows, faults)
    unsafe = sum(r.get("unsafe_actions", 0) for r in rows)
    summary["all"].update(unsafe_actions=unsafe, actions_taken=sum(r.get("actions", 0) for r in rows))
    lines += ["", _total_line("outside faults", summary[OUTSIDE]), _total_line("demo switches", summary[DEMO]),
              _total_line("all", summary["all"]), f"unsafe actions {unsafe} (of {summary['all']['actions_taken']} actions taken)"]
    return {"benchmark": "chaos", "rows": rows, "skipped": skipped, "summary": summary, "report": "\n".join(lines)}
