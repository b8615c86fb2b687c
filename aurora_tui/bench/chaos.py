"""The chaos benchmark: every fault kind caused for real, N times, on the demo fleet run headless.

For each trial the fault is caused in one demo service and the clock runs until the expected incident is
opened (time to detect) and then until it is healed and verified (time to recover) or correctly left to
the operator. Each fault kind says what a good outcome is: ``heal`` (Aurora fixes it on its own) or
``escalate`` (the fix is high or medium risk, or only a human can decide, so Aurora must ask instead).
Unsafe actions are counted from Aurora's own audit log: any action on a process it does not own that no
human approved. That number must be 0.

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

from ..core.config import Limits
from ..core.engine import Engine
from .fleetkit import demo_fleet, fmt, percentile, wait_healthy

ROTATION = ("aurora_ui", "file_server", "bridge_api", "learning_api")
TRIAL_TIMEOUT = 45.0
OPEN = ("open", "acknowledged", "healing", "awaiting_approval", "escalated")


@dataclass
class Fault:
    name: str
    pattern: str
    expect: str  # heal | escalate
    cause: Callable[["Trial"], Awaitable[None]]
    limits: Limits | None = None
    undo: Callable[["Trial"], Awaitable[None]] | None = None


@dataclass
class Trial:
    engine: Engine
    service: str
    helpers: list[subprocess.Popen[str]] = field(default_factory=list)


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


async def clear(t: Trial) -> None:
    for proc in t.helpers:
        _kill_group(proc)
    t.helpers.clear()
    runner = t.engine.fleet.runners[t.service]
    if runner.alive:
        runner.send_signal(signal.SIGCONT)
        try:
            await t.engine.chaos("clear", t.service)
        except (RuntimeError, ValueError):
            pass  # a hung or unlistening service does not answer: its restart clears it


FAULTS = [
    Fault("kill", "crashed", "heal", chaos("kill")),
    Fault("crash", "crashed", "heal", chaos("crash")),
    Fault("stop", "hung", "heal", chaos("stop")),
    Fault("hang", "hung", "heal", chaos("hang")),
    Fault("leak", "memory_limit", "heal", chaos("leak", rate_mb=64, max_mb=400), Limits(memory_mb=150)),
    Fault("fds", "fd_exhaustion", "heal", chaos("fds", rate=2000, max=1200), Limits(fds_percent=2)),
    Fault("conns", "connection_exhaustion", "heal", chaos("conns", count=200, rate=500), Limits(connections=150)),
    Fault("threads", "thread_explosion", "heal", chaos("threads", rate=500, max=300), Limits(threads=200)),
    Fault("zombies", "zombie_children", "heal", chaos("zombies")),
    Fault("orphans", "orphaned_children", "heal", chaos("orphans", count=2, mb=8)),
    Fault("errors", "http_errors", "heal", chaos("errors")),
    Fault("badhealth", "health_content_mismatch", "heal", chaos("badhealth")),
    Fault("unlisten", "port_not_listening", "heal", chaos("unlisten")),
    Fault("cpu", "high_cpu", "escalate", chaos("cpu")),
    Fault("slow", "slow_responses", "escalate", chaos("slow", delay=1.2)),
    Fault("ratelimit", "rate_limited", "escalate", chaos("ratelimit")),
    Fault("flap", "flapping", "escalate", chaos("flap", period=1.5)),
    Fault("logerrors", "log_error_burst", "escalate", chaos("logerrors", rate=50, duration=4)),
    Fault("failstart", "startup_failure", "escalate", failstart_then_crash),
    Fault("squat", "port_conflict_foreign", "escalate", holder(stale=False)),
    Fault("stale", "port_conflict_stale", "escalate", holder(stale=True)),
]


async def run_trial(fault: Fault, t: Trial) -> dict[str, Any]:
    engine = t.engine
    since = await engine.list_incidents(limit=1)
    last_id = since[0].id if since else 0
    started = time.time()
    await fault.cause(t)
    deadline = time.monotonic() + TRIAL_TIMEOUT
    result: dict[str, Any] = {"fault": fault.name, "service": t.service, "detected": False, "outcome": "failed", "ttd": None, "ttr": None}
    incident = None
    while time.monotonic() < deadline:
        rows = [r for r in await engine.list_incidents(service=t.service, pattern=fault.pattern, limit=5) if r.id > last_id]
        if rows:
            incident = rows[-1]
            result["detected"] = True
            result["ttd"] = max(0.0, incident.opened_at - started)
            break
        await asyncio.sleep(0.05)
    while incident is not None and time.monotonic() < deadline:
        row = await engine.incident(incident.id)
        plans = [p for p in await engine.list_plans(status=None, limit=20) if p.incident_id == incident.id]
        healed_by_aurora = any(p.status == "verified" and p.decided_by == "guardians" for p in plans)
        if row.status == "resolved" and healed_by_aurora:
            result["outcome"] = "healed" if fault.expect == "heal" else "healed-unexpectedly"
            result["ttr"] = row.resolved_at - started
            break
        asked = any(p.status == "pending" for p in plans) or any(p.fix.startswith("notify") and p.status in ("executing", "escalated", "verified") for p in plans)
        if fault.expect == "escalate" and asked and row.status in OPEN + ("resolved",):
            result["outcome"] = "escalated"
            break
        await asyncio.sleep(0.1)
    await clear(t)
    await wait_healthy(engine, timeout=40)
    return result


async def run_fault(fault: Fault, trials: int, workdir: Path) -> list[dict[str, Any]]:
    config = demo_fleet(workdir, fault.name, interval=1.0, limits=fault.limits, targets=ROTATION)
    engine = Engine(config)
    await engine.open()
    results = []
    try:
        engine.launch()
        await wait_healthy(engine)
        for i in range(trials):
            service = ROTATION[i % len(ROTATION)]
            await wait_healthy(engine)
            await settled(engine, service)
            results.append(await run_trial(fault, Trial(engine, service)))
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
    return results


async def settled(engine: Engine, service: str) -> None:
    """Wait until the service is past its start grace: during it the guardians rightly hold fixes back,
    which would measure the grace, not the healing."""
    runner = engine.fleet.runners[service]
    while runner.alive and (runner.uptime() or 0.0) < runner.config.start_grace:
        await asyncio.sleep(0.1)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run(trials: int = 3, only: list[str] | None = None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aurora-chaos-") as tmp:
        os.environ["AURORA_DEMO_STATE_DIR"] = str(Path(tmp) / "demo-state")
        for fault in FAULTS:
            if only and fault.name not in only:
                continue
            rows.extend(asyncio.run(run_fault(fault, trials, Path(tmp))))
    return summarize(rows, trials)


def summarize(rows: list[dict[str, Any]], trials: int) -> dict[str, Any]:
    lines = [
        f"chaos benchmark: {trials} trial(s) per fault on the demo fleet (1 s scans); times in seconds from the fault",
        f"{'fault':<10} {'pattern':<24} {'expect':<9} {'detect':>6} {'healed':>6} {'escal.':>6} {'failed':>6}  {'TTD p50':>7} {'p95':>6}  {'TTR p50':>7} {'p95':>6}",
    ]
    faults = {f.name: f for f in FAULTS}
    by_fault: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_fault.setdefault(r["fault"], []).append(r)
    for name, rs in by_fault.items():
        f = faults[name]
        ttd = [r["ttd"] for r in rs if r["ttd"] is not None]
        ttr = [r["ttr"] for r in rs if r["ttr"] is not None]
        lines.append(
            f"{name:<10} {f.pattern:<24} {f.expect:<9} {sum(r['detected'] for r in rs):>6} "
            f"{sum(r['outcome'] == 'healed' for r in rs):>6} {sum(r['outcome'] == 'escalated' for r in rs):>6} "
            f"{sum(r['outcome'] in ('failed', 'healed-unexpectedly') for r in rs):>6}  "
            f"{fmt(percentile(ttd, 0.5)):>7} {fmt(percentile(ttd, 0.95)):>6}  {fmt(percentile(ttr, 0.5)):>7} {fmt(percentile(ttr, 0.95)):>6}"
        )
    heal_rows = [r for r in rows if faults[r["fault"]].expect == "heal"]
    esc_rows = [r for r in rows if faults[r["fault"]].expect == "escalate"]
    healed = sum(r["outcome"] == "healed" for r in heal_rows)
    escalated = sum(r["outcome"] == "escalated" for r in esc_rows)
    unsafe = sum(r.get("unsafe_actions", 0) for r in rows)
    actions = sum(r.get("actions", 0) for r in rows)
    detected = sum(r["detected"] for r in rows)
    ttd_all = [r["ttd"] for r in rows if r["ttd"] is not None]
    ttr_all = [r["ttr"] for r in rows if r["ttr"] is not None]
    summary = {
        "trials": len(rows),
        "detected": detected,
        "auto_heal_rate": healed / len(heal_rows) if heal_rows else None,
        "healed": healed,
        "healable": len(heal_rows),
        "escalated_correctly": escalated,
        "escalatable": len(esc_rows),
        "unsafe_actions": unsafe,
        "actions_taken": actions,
        "ttd_p50": percentile(ttd_all, 0.5),
        "ttd_p95": percentile(ttd_all, 0.95),
        "ttr_p50": percentile(ttr_all, 0.5),
        "ttr_p95": percentile(ttr_all, 0.95),
    }
    rate = "-" if summary["auto_heal_rate"] is None else f"{summary['auto_heal_rate']:.0%}"
    lines += [
        "",
        f"detected {detected}/{len(rows)}; auto-healed {healed}/{len(heal_rows)} healable ({rate}); "
        f"escalated {escalated}/{len(esc_rows)} that need a human; unsafe actions {unsafe} (of {actions} actions taken)",
        f"overall: time to detect p50 {fmt(summary['ttd_p50'])} s, p95 {fmt(summary['ttd_p95'])} s; "
        f"time to recover p50 {fmt(summary['ttr_p50'])} s, p95 {fmt(summary['ttr_p95'])} s",
    ]
    return {"benchmark": "chaos", "rows": rows, "summary": summary, "report": "\n".join(lines)}
