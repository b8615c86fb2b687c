"""Healing with real faults: what runs on its own, what waits for a human, and what is never touched."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys

import psutil
import pytest

from aurora_tui.core.api import BeliefRow, PlanRow
from aurora_tui.core.config import Limits
from aurora_tui.core.model import to_jsonable

from .fleet import stop_process
from .helpers import async_wait_until, gone, wait_until
from .live import demo_service, fleet_config, incident_for, running, scans_pass

pytestmark = pytest.mark.timeout(120)

AURORA = [sys.executable, "-m", "aurora_tui"]


async def plan_for(engine, incident_id: int, timeout: float = 60.0) -> PlanRow:
    async def found():
        rows = [p for p in await engine.list_plans(status=None, limit=200) if p.incident_id == incident_id]
        return rows[0] if rows else None  # newest first: a plan re-judged into running supersedes the first

    return await async_wait_until(found, timeout=timeout, what=f"a plan for incident #{incident_id}")


async def finished(engine, plan_id: int, timeout: float = 40.0) -> PlanRow:
    async def done():
        row = await engine.plan(plan_id)
        return row if row.status in ("verified", "failed", "escalated", "blocked", "expired", "rejected") else None

    return await async_wait_until(done, timeout=timeout, what=f"plan #{plan_id} to finish")


async def healed(engine, service: str, pattern: str, fix: str) -> PlanRow:
    incident = await incident_for(engine, service, pattern, timeout=30)

    async def running_plan():
        plan = await plan_for(engine, incident.id)
        return plan if plan.status != "pending" and plan.status != "expired" else None

    plan = await finished(engine, (await async_wait_until(running_plan, timeout=30, what="a plan that runs")).id)
    assert plan.fix == fix, plan
    assert plan.decided_by == "guardians" and plan.decision == "run", plan
    assert plan.status == "verified", plan
    row = await engine.incident(incident.id)
    assert row.status == "resolved" and row.recover_seconds > 0
    kinds = [e.kind for e in row.timeline]
    for step in ("detected", "diagnosed", "proposed", "judged", "executed", "verified", "resolved"):
        assert step in kinds, (step, kinds)
    assert [v["outcome"] for v in plan.verdicts] == ["pass", "pass", "pass"]
    return plan


async def test_a_crash_is_healed_and_verified_without_a_human(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("web"))) as engine:
        old = engine.fleet.runners["web"].pid
        await engine.chaos("kill", "web")
        await healed(engine, "web", "crashed", "restart")
        assert engine.fleet.runners["web"].pid != old and engine.monitor.status_of("web").healthy


async def test_a_sigstopped_service_is_terminated_and_started(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("ui", health_timeout=0.5))) as engine:
        old = engine.fleet.runners["ui"].pid
        await engine.chaos("stop", "ui")
        await healed(engine, "ui", "hung", "terminate+start")
        assert gone(old) and engine.monitor.status_of("ui").healthy


async def test_a_leaking_service_is_restarted_at_its_limit(tmp_path):
    svc = demo_service("leaky", limits=Limits(memory_mb=100))
    async with running(fleet_config(tmp_path, svc)) as engine:
        old = engine.fleet.runners["leaky"].pid
        await engine.chaos("leak", "leaky", {"rate_mb": "64", "max_mb": "300"})
        await healed(engine, "leaky", "memory_limit", "restart")
        assert engine.fleet.runners["leaky"].pid != old
        # The leak's own prediction, if it was made, is no longer open beside it.
        assert await engine.list_incidents(service="leaky", pattern="memory_leak", open_only=True) == []


async def test_an_fd_leak_is_healed(tmp_path):
    svc = demo_service("files")  # the default threshold: the fault fills 90% of a lowered soft limit
    async with running(fleet_config(tmp_path, svc)) as engine:
        await engine.chaos("fds", "files", {"rate": "2000"})
        await healed(engine, "files", "fd_exhaustion", "restart")


async def test_zombies_are_reaped(tmp_path):
    async with running(fleet_config(tmp_path, demo_service("api"))) as engine:
        await engine.chaos("zombies", "api", {"count": "3"})
        plan = await healed(engine, "api", "zombie_children", "reap_zombies")
        log = await engine.records.store.fetch("SELECT result FROM actions_log WHERE plan_id = ?", (plan.id,))
        assert "restarted so that they were reaped" in log[0]["result"]  # the demo never reaps its children
        assert engine.monitor.samples["api"].process is None or engine.monitor.samples["api"].process.zombies == 0


@contextlib.asynccontextmanager
async def squatted(tmp_path, exec_on_usr1: bool = False):
    """A service whose port a foreign process holds, and the plan Aurora proposed for it."""
    svc = demo_service("web")
    squatter = _squatter(svc.port, exec_on_usr1)
    try:
        async with running(fleet_config(tmp_path, svc), healthy=False) as engine:
            incident = await incident_for(engine, "web", "port_conflict_foreign", timeout=30)
            yield engine, squatter, incident, await plan_for(engine, incident.id)
    finally:
        stop_process(squatter)


async def test_a_foreign_port_holder_waits_for_approval_and_then_the_service_comes_back(tmp_path):
    async with squatted(tmp_path) as (engine, squatter, incident, plan):
        assert plan.status == "pending" and plan.risk == "high" and plan.fix == "free_port+start"
        assert plan.verdicts[0]["outcome"] == "warn" and "needs a human" in plan.verdicts[0]["reasons"][0]
        await scans_pass(engine, 4)
        assert squatter.poll() is None, "a process Aurora does not own was touched without approval"
        assert (await engine.incident(incident.id)).status == "awaiting_approval"

        # The CLI talks to this engine, which runs on this test's loop: call it from a thread.
        approved = await asyncio.to_thread(_aurora, "approve", str(plan.id), "--grade", "9", "--db", str(engine.db_path))
        assert approved.returncode == 0, approved.stderr
        done = await finished(engine, plan.id)
        assert done.status == "verified" and done.decided_by == "operator" and done.grade == 9
        await asyncio.to_thread(squatter.wait, 10)
        assert engine.monitor.status_of("web").healthy
        log = await engine.records.store.fetch("SELECT kind, owned, approved_by FROM actions_log WHERE plan_id = ?", (plan.id,))
        assert [(r["kind"], r["owned"], r["approved_by"]) for r in log] == [("free_port", 0, "operator"), ("start", None, "operator")]
        # Approving again changes nothing: the decision was taken once.
        again = await engine.approve(plan.id)
        assert again.status == "verified"
        assert len(await engine.records.store.fetch("SELECT id FROM actions_log WHERE plan_id = ?", (plan.id,))) == 2


async def test_approving_twice_at_once_executes_once(tmp_path):
    async with squatted(tmp_path) as (engine, squatter, incident, plan):
        first, second = await asyncio.gather(engine.approve(plan.id, by="alice"), engine.approve(plan.id, by="bob"))
        assert {first.decided_by, second.decided_by} <= {"alice", None}
        done = await finished(engine, plan.id)
        assert done.decided_by == "alice"
        rows = await engine.records.store.fetch("SELECT kind FROM actions_log WHERE plan_id = ?", (plan.id,))
        assert [r["kind"] for r in rows] == ["free_port", "start"]


async def test_a_rejected_plan_is_not_executed_and_lowers_the_belief(tmp_path):
    async with squatted(tmp_path) as (engine, squatter, incident, plan):
        with pytest.raises(ValueError, match="needs a reason"):
            await engine.reject(plan.id, " ")
        row = await engine.reject(plan.id, "that is the team's debugging proxy", by="carol")
        assert row.status == "rejected" and row.reason == "that is the team's debugging proxy"
        await scans_pass(engine, 3)
        assert squatter.poll() is None
        assert await engine.records.store.fetch("SELECT id FROM actions_log WHERE plan_id = ?", (plan.id,)) == []
        learned = {(b.pattern, b.fix): b for b in await engine.learning()}
        belief = learned[("port_conflict_foreign", "free_port+start")]
        assert belief.rejections == 1 and belief.mean < 0.5
        assert engine.records.learning.mean_for_pattern("port_conflict_foreign") < 0.5  # feeds the next diagnosis's confidence
        assert (await engine.incident(incident.id)).status == "open"


async def test_a_pid_now_running_another_program_is_not_touched(tmp_path):
    async with squatted(tmp_path, exec_on_usr1=True) as (engine, squatter, incident, plan):
        target = plan.actions[0]["target"]
        assert target["pid"] == squatter.pid
        # Same pid, another program: exec keeps the pid and changes the command line.
        os.kill(squatter.pid, signal.SIGUSR1)
        wait_until(lambda: psutil.Process(squatter.pid).cmdline()[:1] == ["sleep"], what="the exec")
        await engine.approve(plan.id)
        done = await finished(engine, plan.id)
        assert done.status in ("failed", "expired", "verified")
        assert squatter.poll() is None and psutil.Process(squatter.pid).cmdline()[0] == "sleep"
        log = await engine.records.store.fetch("SELECT kind, result FROM actions_log WHERE plan_id = ?", (plan.id,))
        assert all(r["kind"] != "free_port" or "now belongs to another program" in r["result"] for r in log)


def test_kill_9_of_the_engine_loses_neither_pending_plans_nor_decisions(tmp_path):
    svcs = [demo_service("one"), demo_service("two")]
    squatters = [_squatter(s.port) for s in svcs]
    config = tmp_path / "fleet.toml"
    config.write_text(_toml(svcs))
    db = tmp_path / "aurora.db"
    engine = _headless(config, db)
    try:
        def pending():
            result = _aurora("approvals", "--json", "--db", str(db))
            rows = json.loads(result.stdout) if result.returncode == 0 else []
            return rows if len(rows) == 2 else None

        rows = wait_until(pending, timeout=40, interval=0.3, what="two pending plans")
        assert {r["service"] for r in rows} == {"one", "two"}
        assert set(rows[0]) >= {"id", "service", "pattern", "actions", "confidence", "risk", "verdicts"}
        chosen = next(r for r in rows if r["service"] == "one")
        approved = _aurora("approve", str(chosen["id"]), "--db", str(db))
        assert approved.returncode == 0, approved.stderr
        os.kill(engine.pid, signal.SIGKILL)  # the approval was acknowledged: it must survive this
        engine.wait(10)

        engine = _headless(config, db)
        one_pid_alive = lambda: squatters[0].poll() is not None  # noqa: E731
        wait_until(one_pid_alive, timeout=40, interval=0.3, what="the approved plan carried out after the restart")
        left = wait_until(lambda: _plans(db, "pending"), timeout=60, interval=0.3, what="the other plan, still pending")
        assert [r["service"] for r in left] == ["two"]
        assert squatters[1].poll() is None
        # The plan starts executing the moment it is approved, so the first engine has usually freed the
        # port before the kill: judged again, the free_port is moot (its target is gone) and so is the
        # start (the new engine started the service), so it is superseded, with the reason. Killed
        # before the free_port, the squatter still holds the port: then the plan is carried out.
        def judged_again():
            row = next((r for r in _plans(db, None) or [] if r["id"] == chosen["id"]), None)
            return row if row is not None and row["status"] not in ("approved", "executing") else None

        resumed = wait_until(judged_again, timeout=60, interval=0.3, what="the approved plan judged again")
        assert resumed["status"] in ("superseded", "verified"), resumed
        with contextlib.closing(sqlite3.connect(db)) as conn:
            outcome = conn.execute("SELECT outcome FROM plans WHERE id = ?", (chosen["id"],)).fetchone()[0]
        if resumed["status"] == "superseded":
            assert "judged again after the engine restarted" in outcome and "is gone" in outcome, outcome
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(30) == 0
        with contextlib.closing(sqlite3.connect(db)) as conn:
            decided_by = conn.execute("SELECT decided_by FROM plans WHERE id = ?", (chosen["id"],)).fetchone()[0]
            freed = conn.execute("SELECT count(*) FROM actions_log WHERE plan_id = ? AND kind = 'free_port'", (chosen["id"],)).fetchone()[0]
        assert decided_by == "operator" and freed <= 1  # the decision survived, and was not carried out twice
    finally:
        for proc in [engine, *squatters]:
            stop_process(proc)


# --- helpers -----------------------------------------------------------------------------------------


def _aurora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AURORA, *args], capture_output=True, text=True, timeout=60)


def _plans(db, status):
    args = ["approvals", "--json", "--db", str(db)] + ([] if status else ["--all"])
    result = _aurora(*args)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _headless(config, db) -> subprocess.Popen:
    return subprocess.Popen([*AURORA, "run", "--headless", "--config", str(config), "--db", str(db), "--interval", "0.5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _toml(services) -> str:
    lines = ['[aurora]\nlog_dir = "logs"\n']
    for s in services:
        cmd = ", ".join(json.dumps(c) for c in s.command)
        lines.append(f'[[service]]\nname = "{s.name}"\ncommand = [{cmd}]\nport = {s.port}\nstart_grace = 3\n'
                     f'health = {{ http = "/healthz", expect_body = "ok", timeout = 1.0 }}\n')
    return "\n".join(lines)


def _squatter(port: int, exec_on_usr1: bool = False) -> subprocess.Popen:
    """A process Aurora did not start, holding ``port``; optionally it turns into ``sleep`` on SIGUSR1."""
    code = (
        "import os, signal, socket, time\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port})); s.listen()\n"
        + ("signal.signal(signal.SIGUSR1, lambda *a: os.execvp('sleep', ['sleep', '600']))\n" if exec_on_usr1 else "")
        + "print('squatting', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "port-squatter"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "squatting"
    return proc


async def test_learning_survives_restarts_and_round_trips_through_json(tmp_path):
    config = fleet_config(tmp_path, demo_service("api"))
    entries = [{"pattern": "high_cpu", "fix": "restart", "alpha": 9.0, "beta": 1.0, "successes": 8, "failures": 0, "rejections": 0}]
    async with running(config) as engine:
        assert (await engine.import_learning(entries)).imported == 1
        with pytest.raises(ValueError, match="alpha and beta must be positive"):
            await engine.import_learning([{"pattern": "x", "fix": "y", "alpha": 0, "beta": 1}])
    async with running(config) as engine:
        exported = await engine.learning()
        assert exported == [BeliefRow(**entries[0], mean=0.9, refused=False)]
        assert engine.records.learning.mean_for_pattern("high_cpu") == pytest.approx(0.9)
        path = tmp_path / "beliefs.json"
        result = await asyncio.to_thread(_aurora, "learning", "--export", str(path), "--db", str(engine.db_path))
        assert result.returncode == 0 and json.loads(path.read_text()) == to_jsonable(exported)
        table = await asyncio.to_thread(_aurora, "learning", "--db", str(engine.db_path))
        assert "high_cpu" in table.stdout and "90%" in table.stdout
