"""The healer: diagnoses become fix plans, the guardians judge them, and plans run, wait for the operator
or are blocked; what runs is verified and learned from.

One plan per incident. A plan's decision and every operator decision are written before anything acts on
them, so a crash of the engine loses neither (pending and approved plans are picked up again at start).
Every action is logged with its target's identity and who allowed it.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Any, AsyncIterator

import psutil

from .diagnose import Diagnosis
from .guardians import GuardContext, Judgement, judge
from .learning import Learning
from .model import Event
from .patterns import HOST
from .plans import Action, FixPlan, ProcessTarget, build_plan
from .store import dumps

if TYPE_CHECKING:
    from .engine import Engine

RATE_WINDOW = 300.0
REJUDGE_EVERY = 1.0
# Plans tried for one incident before it is left to the operator.
MAX_ATTEMPTS = 3
TERMINATE_WAIT = 5.0
VERIFY_GRACE = 15.0
VERIFY_POLL = 0.25
# A fix is verified only once the service has stayed healthy this long: one good answer from a
# process that dies a moment later proves nothing.
VERIFY_STABLE = 1.0
# Plans that only tell the operator or tune Aurora itself end "escalated" or "executed", not verified.
NO_VERIFY = {"notify", "throttle_probes", "rotate_logs"}
PLAN_FIELDS = (
    "id, incident_id, service, pattern, fix, actions_json, confidence, risk, verdicts_json, decision, status, summary, "
    "evidence_json, evidence_at, created_at, decided_at, decided_by, grade, comment, reason, executed_at, finished_at, outcome"
)


class IdentityMismatch(RuntimeError):
    """The pid no longer belongs to the process the plan was made for."""


def plan_row(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["actions"] = json.loads(data.pop("actions_json"))
    data["verdicts"] = json.loads(data.pop("verdicts_json"))
    data["evidence"] = json.loads(data.pop("evidence_json"))
    return data


def identify(pid: int, role: str, owned_pids: set[int]) -> ProcessTarget | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return ProcessTarget(pid, proc.create_time(), tuple(proc.cmdline()), proc.uids().real, pid in owned_pids, role)
    except psutil.Error:
        return None


def check_identity(target: ProcessTarget) -> psutil.Process:
    """The live process, only if it is still the one the plan was made for."""
    try:
        proc = psutil.Process(target.pid)
        same = abs(proc.create_time() - target.create_time) < 0.05 and tuple(proc.cmdline()) == target.cmdline
    except psutil.NoSuchProcess:
        raise IdentityMismatch(f"pid {target.pid} is gone") from None
    except psutil.Error as exc:
        raise IdentityMismatch(f"pid {target.pid} cannot be inspected: {exc}") from None
    if not same:
        raise IdentityMismatch(f"pid {target.pid} now belongs to another program ({' '.join(proc.cmdline())[:80]}); not touched")
    return proc


class Healer:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        assert engine.store is not None
        self.store = engine.store
        self.learning = Learning(self.store)
        self.planned: dict[int, int] = {}  # incident id -> its latest plan id (0: nothing to propose)
        self.attempts: dict[int, int] = {}  # incident id -> plans tried
        self.retry: set[int] = set()  # incidents whose last plan failed and may get another
        self.pending: dict[int, float] = {}  # pending plan id -> when it was last judged
        self._automatic: deque[tuple[float, str]] = deque(maxlen=1000)
        self.busy: dict[str, int] = {}  # service -> the plan executing on it
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._deciding: set[int] = set()
        self._lock = asyncio.Lock()
        self.started = time.time()

    async def load(self) -> list[int]:
        """Beliefs, the incident -> plan map, and the ids of approved plans a crash interrupted."""
        await self.learning.load()
        rows = await self.store.fetch("SELECT id, incident_id, status FROM plans WHERE incident_id IS NOT NULL ORDER BY id")
        self.planned = {r["incident_id"]: r["id"] for r in rows}
        self.pending = {r["id"]: 0.0 for r in rows if r["status"] == "pending"}
        resume = await self.store.fetch("SELECT id FROM plans WHERE status IN ('approved', 'executing') ORDER BY id")
        return [r["id"] for r in resume]

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def cancel_service(self, service: str) -> None:
        """An operator acting on a service by hand takes over from whatever plan was running on it."""
        plan_id = self.busy.get(service)
        task = self.tasks.get(plan_id) if plan_id is not None else None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # --- proposing ---------------------------------------------------------------------------------------

    async def consider(self, diagnoses: list[Diagnosis]) -> None:
        """Propose a plan for every open incident that has none yet."""
        incidents = self.engine.incidents
        assert incidents is not None
        async with self._lock:
            severity = {"critical": 0, "warning": 1, "info": 2}
            for d in sorted(diagnoses, key=lambda d: severity.get(d.severity, 3)):
                incident = incidents.open.get((d.service, d.pattern))
                if incident is None or d.service in self.busy:
                    continue
                plan_id = self.planned.get(incident.id)
                if plan_id in self.pending:
                    await self._rejudge(plan_id, d, incident.id)
                    continue
                if plan_id is not None and incident.id not in self.retry:
                    continue
                self.retry.discard(incident.id)
                await self.propose(d, incident.id)

    async def _rejudge(self, plan_id: int, d: Diagnosis, incident_id: int) -> None:
        """A plan held back for a passing reason (a start grace, confidence still building) is judged
        again as the evidence grows; if the guardians now let it run, it runs, superseding the old one."""
        now = time.time()
        if now - self.pending.get(plan_id, 0.0) < REJUDGE_EVERY:
            return
        self.pending[plan_id] = now
        owned = self.engine.owned_pids()
        targets = await asyncio.to_thread(self._targets, d, owned)
        plan = build_plan(d, incident_id, targets, now, self.learning.refused_fixes(d.pattern))
        if plan is None or judge(plan, self._context(plan, human=False, owned=owned)).decision != "run":
            return
        changed = await self.store.update(
            "UPDATE plans SET status = 'expired', finished_at = ?, outcome = 'superseded: judged again, the guardians let it run' "
            "WHERE id = ? AND status = 'pending'",
            (now, plan_id),
        )
        self.pending.pop(plan_id, None)
        if changed:
            await self.propose(d, incident_id)

    async def propose(self, d: Diagnosis, incident_id: int) -> int | None:
        owned = self.engine.owned_pids()
        targets = await asyncio.to_thread(self._targets, d, owned)
        plan = build_plan(d, incident_id, targets, time.time(), self.learning.refused_fixes(d.pattern))
        if plan is None:
            self.planned[incident_id] = 0
            return None
        judgement = judge(plan, self._context(plan, human=False, owned=owned))
        status = {"run": "executing", "wait": "pending", "block": "blocked"}[judgement.decision]
        now = time.time()
        plan_id = await self._insert_plan(plan, judgement, status, None if status == "pending" else "guardians", now)
        self.planned[incident_id] = plan_id
        self.attempts[incident_id] = self.attempts.get(incident_id, 0) + 1
        incidents = self.engine.incidents
        assert incidents is not None
        verdicts = ", ".join(f"{v.level} {v.outcome}" for v in judgement.verdicts)
        incidents.timeline(incident_id, now, "proposed", f"plan #{plan_id}: {plan.fix} (risk {plan.risk}, confidence {plan.confidence}/10)", {"plan": plan_id})
        incidents.timeline(incident_id, now, "judged", f"{judgement.decision}: {verdicts}", {"plan": plan_id, "reasons": judgement.reasons})
        await self._emit("plan_proposed", plan.service, f"plan #{plan_id} for {plan.pattern} on {plan.service}: {plan.fix} -> {judgement.decision}", plan_id)
        if status == "executing":
            await incidents.set_status(incident_id, "healing")
            self._start(plan_id, plan, approved_by=None)
        elif status == "pending":
            self.pending[plan_id] = now
            await incidents.set_status(incident_id, "awaiting_approval")
        else:
            await incidents.set_status(incident_id, "escalated")
            incidents.timeline(incident_id, now, "escalated", f"plan #{plan_id} blocked: {'; '.join(judgement.reasons)}", {"plan": plan_id})
        return plan_id

    def _targets(self, d: Diagnosis, owned: set[int]) -> dict[str, list[ProcessTarget]]:
        found: dict[str, list[ProcessTarget]] = {}
        runner = self.engine.runners.get(d.service)
        if runner is not None and runner.alive and runner.pid is not None:
            leader = identify(runner.pid, "service", owned)
            if leader is not None:
                found["service"] = [leader]
        for pid in d.evidence.get("orphan_pids", []):
            if (t := identify(pid, "orphan", owned)) is not None:
                found.setdefault("orphans", []).append(t)
        holder = d.evidence.get("holder_pid")
        if holder:
            if (t := identify(holder, "port holder", owned)) is not None:
                found["port holder"] = [t]
        return found

    def _context(self, plan: FixPlan, human: bool, owned: set[int]) -> GuardContext:
        engine = self.engine
        now = time.time()
        svc = engine.config.service(plan.service) if plan.service != HOST else None
        runner = engine.runners.get(plan.service)
        deps_down = tuple(
            dep for dep in (svc.depends_on if svc else ())
            if (status := engine.status_of(dep)) is not None and not status.healthy
        )
        incidents = engine.incidents
        assert incidents is not None
        open_ids = {i.id for i in incidents.open.values()}
        return GuardContext(
            now=now,
            aurora_pid=os.getpid(),
            aurora_uid=os.getuid(),
            protected_pids=frozenset({1, os.getpid(), os.getppid()}),
            owned_pids=frozenset(owned),
            human=human,
            auto_confidence=engine.config.settings.auto_confidence,
            interval=engine.interval,
            recent_actions=self.recent_automatic(plan.service, now - RATE_WINDOW),
            recent_actions_global=self.recent_automatic(None, now - RATE_WINDOW),
            silenced=incidents._silence_for(plan.service, now) is not None,
            started_at=runner.started_at if runner and runner.alive else None,
            start_grace=svc.start_grace if svc else 0.0,
            short_runs=engine.short_runs(plan.service),
            dependencies_down=deps_down,
            belief=self.learning.get(plan.pattern, plan.fix),
            incident_open=plan.incident_id is None or plan.incident_id in open_ids,
            auto_heal=engine.config.settings.auto_heal,
        )

    async def incident_resolved(self, incident_id: int) -> None:
        """A plan still waiting for an incident that cleared by itself has nothing left to fix."""
        plan_id = self.planned.get(incident_id)
        if not plan_id:
            return
        self.pending.pop(plan_id, None)
        changed = await self.store.update(
            "UPDATE plans SET status = 'expired', finished_at = ?, outcome = 'the incident cleared before a decision' "
            "WHERE id = ? AND status = 'pending'",
            (time.time(), plan_id),
        )
        if changed:
            row = await self.plan(plan_id)
            await self._emit("plan_finished", row["service"], f"plan #{plan_id} expired: the incident cleared before a decision", plan_id)

    # --- operator decisions ------------------------------------------------------------------------------

    async def plan(self, plan_id: int) -> dict[str, Any]:
        row = await self.store.fetch_one(f"SELECT {PLAN_FIELDS} FROM plans WHERE id = ?", (int(plan_id),))
        if row is None:
            raise KeyError(f"no plan #{plan_id}")
        return plan_row(row)

    async def list_plans(self, status: str | None = "pending", limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if before_id is not None:
            where.append("id < ?")
            params.append(int(before_id))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.store.fetch(f"SELECT {PLAN_FIELDS} FROM plans {clause} ORDER BY id DESC LIMIT ?", (*params, int(limit)))
        return [plan_row(r) for r in rows]

    @contextlib.asynccontextmanager
    async def _decision(self, plan_id: int) -> AsyncIterator[dict[str, Any] | None]:
        """The plan, if it is still pending and no other decision on it is under way; else None.
        This is what makes approving twice (or approving and rejecting at once) act once."""
        if plan_id in self._deciding:
            yield None
            return
        self._deciding.add(plan_id)
        try:
            row = await self.plan(plan_id)
            yield row if row["status"] == "pending" else None
        finally:
            self._deciding.discard(plan_id)

    async def approve(self, plan_id: int, grade: int | None = None, comment: str = "", by: str = "operator") -> dict[str, Any]:
        plan_id = int(plan_id)
        if grade is not None:
            _check_grade(grade)
        async with self._decision(plan_id) as row:
            if row is None:
                return await self.plan(plan_id)
            now = time.time()
            self.pending.pop(plan_id, None)
            await self.store.write(
                "UPDATE plans SET status = 'approved', decided_at = ?, decided_by = ?, grade = ?, comment = ? WHERE id = ? AND status = 'pending'",
                (now, by, grade, comment, plan_id),
            )
            if row["incident_id"]:
                await self._timeline_now(row["incident_id"], now, "approved", f"plan #{plan_id} approved by {by}" + (f": {comment}" if comment else ""), plan_id)
            if grade is not None:
                await self.learning.record(row["pattern"], row["fix"], "graded", grade)
            await self._emit("plan_decided", row["service"], f"plan #{plan_id} approved by {by}", plan_id)
            self._start_approved(plan_id, by)
        return await self.plan(plan_id)

    async def reject(self, plan_id: int, reason: str, by: str = "operator") -> dict[str, Any]:
        plan_id = int(plan_id)
        if not reason or not reason.strip():
            raise ValueError("a rejection needs a reason")
        async with self._decision(plan_id) as row:
            if row is None:
                return await self.plan(plan_id)
            now = time.time()
            self.pending.pop(plan_id, None)
            await self.store.write(
                "UPDATE plans SET status = 'rejected', decided_at = ?, decided_by = ?, reason = ? WHERE id = ? AND status = 'pending'",
                (now, by, reason, plan_id),
            )
            await self.learning.record(row["pattern"], row["fix"], "rejected")
            if row["incident_id"]:
                await self._timeline_now(row["incident_id"], now, "rejected", f"plan #{plan_id} rejected by {by}: {reason}", plan_id)
                incidents = self.engine.incidents
                assert incidents is not None
                await incidents.set_status(row["incident_id"], "open")
            await self._emit("plan_decided", row["service"], f"plan #{plan_id} rejected by {by}: {reason}", plan_id)
        return await self.plan(plan_id)

    async def grade(self, plan_id: int, grade: int, by: str = "operator") -> dict[str, Any]:
        _check_grade(grade)
        row = await self.plan(plan_id)
        if row["status"] in ("pending",):
            raise ValueError(f"plan #{plan_id} is still pending: approve it with a grade, or grade it once decided")
        await self.store.write("UPDATE plans SET grade = ? WHERE id = ?", (int(grade), int(plan_id)))
        await self.learning.record(row["pattern"], row["fix"], "graded", int(grade))
        await self._emit("plan_graded", row["service"], f"plan #{plan_id} graded {grade}/10 by {by}", int(plan_id))
        return await self.plan(plan_id)

    def _start_approved(self, plan_id: int, by: str) -> None:
        task = asyncio.create_task(self._run_approved(plan_id, by), name=f"plan-{plan_id}")
        self.tasks[plan_id] = task
        task.add_done_callback(lambda t, p=plan_id: self.tasks.pop(p, None))

    async def _run_approved(self, plan_id: int, by: str) -> None:
        row = await self.plan(plan_id)
        plan = FixPlan(row["service"], row["pattern"], row["incident_id"], [Action.from_dict(a) for a in row["actions"]],
                       row["confidence"], row["summary"], row["evidence"], row["evidence_at"])
        # The evidence may be old by now: look again before acting on it.
        if plan.service != HOST:
            await self.engine.probe_service(plan.service)
        judgement = judge(plan, self._context(plan, human=True, owned=self.engine.owned_pids()))
        if judgement.decision != "run":
            status = "expired" if any("no longer open" in r for r in judgement.reasons) else "blocked"
            await self._finish(plan_id, plan, status, "; ".join(judgement.reasons), learn=False)
            return
        await self._execute(plan_id, plan, approved_by=by)

    async def run_manual(self, kind: str, service: str, by: str) -> str:
        """An operator's restart, stop or start: judged by the same guardians, recorded as a plan."""
        self.cancel_service(service)
        runner = self.engine.runners.get(service)
        owned = self.engine.owned_pids()
        leader = identify(runner.pid, "service", owned) if runner is not None and runner.alive and runner.pid else None
        plan = FixPlan(service, "manual", None, [Action(kind, service, leader if kind == "stop" else None)], 10,
                       f"{kind} {service}, requested by {by}", {}, time.time())
        judgement = judge(plan, self._context(plan, human=True, owned=owned))
        status = "executing" if judgement.decision == "run" else "blocked"
        now = time.time()
        plan_id = await self._insert_plan(plan, judgement, status, by, now)
        if status == "blocked":
            raise ValueError(f"the guardians refused to {kind} {service}: {'; '.join(judgement.reasons)}")
        self.busy[service] = plan_id
        try:
            await self.store.write("UPDATE plans SET executed_at = ? WHERE id = ?", (now, plan_id))
            result = await self._do(plan.actions[0], plan)
            await self._log(plan_id, plan.actions[0], by, result)
            await self.store.write("UPDATE plans SET status = 'executed', finished_at = ?, outcome = ? WHERE id = ?", (time.time(), result, plan_id))
            return result
        finally:
            if self.busy.get(service) == plan_id:
                del self.busy[service]

    # --- executing ---------------------------------------------------------------------------------------

    def _start(self, plan_id: int, plan: FixPlan, approved_by: str | None) -> None:
        task = asyncio.create_task(self._execute(plan_id, plan, approved_by), name=f"plan-{plan_id}")
        self.tasks[plan_id] = task
        task.add_done_callback(lambda t, p=plan_id: self.tasks.pop(p, None))

    async def _execute(self, plan_id: int, plan: FixPlan, approved_by: str | None) -> None:
        service = plan.service
        self.busy[service] = plan_id
        try:
            now = time.time()
            await self.store.write("UPDATE plans SET status = 'executing', executed_at = ? WHERE id = ?", (now, plan_id))
            incidents = self.engine.incidents
            assert incidents is not None
            if plan.incident_id:
                await incidents.set_status(plan.incident_id, "healing")
            for action in plan.actions:
                try:
                    result = await self._do(action, plan)
                except (IdentityMismatch, RuntimeError, ValueError, KeyError, OSError) as exc:
                    await self._log(plan_id, action, approved_by, f"failed: {exc}")
                    await self._finish(plan_id, plan, "failed", f"{action.kind} failed: {exc}")
                    return
                await self._log(plan_id, action, approved_by, result)
                if plan.incident_id:
                    incidents.timeline(plan.incident_id, time.time(), "executed", f"{action.kind}: {result}", {"plan": plan_id})
            await self._emit("plan_executed", service, f"plan #{plan_id} executed: {plan.fix}", plan_id)
            kinds = {a.kind for a in plan.actions}
            if kinds <= NO_VERIFY:
                await self._finish(plan_id, plan, "escalated" if "notify" in kinds else "executed", "done; nothing to verify", learn=False)
                return
            ok, detail = await self._verify(plan)
            await self._finish(plan_id, plan, "verified" if ok else "failed", detail)
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(plan_id, plan, "failed", "interrupted: an operator took over or the engine stopped", learn=False))
            raise
        finally:
            if self.busy.get(service) == plan_id:
                del self.busy[service]
            # Whatever waited while this plan ran (a new incident on the same service) is looked at now.
            if service != HOST:
                self.engine.detect_soon(service)

    async def _finish(self, plan_id: int, plan: FixPlan, status: str, outcome: str, learn: bool = True) -> None:
        now = time.time()
        if learn and status in ("verified", "failed"):
            await self.learning.record(plan.pattern, plan.fix, "success" if status == "verified" else "failure")
        incidents = self.engine.incidents
        assert incidents is not None
        if plan.incident_id:
            open_ids = {i.id for i in incidents.open.values()}
            kind = {"verified": "verified", "failed": "failed", "escalated": "escalated"}.get(status, status)
            await self._timeline_now(plan.incident_id, now, kind, f"plan #{plan_id} {status}: {outcome}", plan_id)
            if status == "verified" and plan.incident_id in open_ids:
                await incidents.resolve(plan.incident_id, now, f"fixed by plan #{plan_id} ({plan.fix}), verified", by="healer")
            elif status == "failed" and plan.incident_id in open_ids and self.attempts.get(plan.incident_id, 0) < MAX_ATTEMPTS:
                # Not the end: the next pass may propose again, and the guardians judge it afresh.
                self.retry.add(plan.incident_id)
                await incidents.set_status(plan.incident_id, "open")
            elif status in ("failed", "escalated", "blocked") and plan.incident_id in open_ids:
                await incidents.set_status(plan.incident_id, "escalated")
            elif status == "expired" and plan.incident_id in open_ids:
                await incidents.set_status(plan.incident_id, "open")
        # Written last: whoever sees the plan finished also sees its incident's timeline and status.
        await self.store.write("UPDATE plans SET status = ?, finished_at = ?, outcome = ? WHERE id = ?", (status, now, outcome, plan_id))
        event = {"verified": "plan_verified", "failed": "plan_failed"}.get(status, "plan_finished")
        await self._emit(event, plan.service, f"plan #{plan_id} {status}: {outcome}", plan_id)

    async def _verify(self, plan: FixPlan) -> tuple[bool, str]:
        """Probe until the incident clears and the service is healthy, or the deadline passes."""
        engine = self.engine
        svc = engine.config.service(plan.service)
        deadline = time.monotonic() + svc.start_grace + VERIFY_GRACE
        started = time.monotonic()
        incidents = engine.incidents
        assert incidents is not None
        healthy_since: float | None = None
        runner = engine.runners.get(plan.service)
        exits_before = len(engine.exit_history[plan.service])
        while time.monotonic() < deadline:
            await engine.probe_service(plan.service)
            status = engine.status_of(plan.service)
            if len(engine.exit_history[plan.service]) > exits_before and runner is not None and runner.last_exit is not None:
                return False, f"{plan.service} died again after the fix: {runner.last_exit.describe()}"
            still_open = plan.incident_id is not None and plan.incident_id in {i.id for i in incidents.open.values()}
            if status is not None and status.healthy:
                healthy_since = healthy_since or time.monotonic()
                if not still_open and time.monotonic() - healthy_since >= VERIFY_STABLE:
                    return True, f"{plan.service} healthy and {plan.pattern} cleared after {time.monotonic() - started:.1f}s"
            else:
                healthy_since = None
            await asyncio.sleep(VERIFY_POLL)
        status = engine.status_of(plan.service)
        why = "still unhealthy" if status is None or not status.healthy else f"{plan.pattern} persists"
        return False, f"{plan.service} {why} {svc.start_grace + VERIFY_GRACE:.0f}s after the fix"

    async def _do(self, action: Action, plan: FixPlan) -> str:
        engine = self.engine
        kind, service = action.kind, action.service
        if kind == "restart":
            return await engine.heal_restart(service)
        if kind == "start":
            return await engine.heal_start(service)
        if kind == "stop":
            await engine.stop_runner(service)
            return f"{service} stopped"
        if kind in ("terminate", "free_port"):
            assert action.target is not None
            return await self._terminate(action.target, service)
        if kind == "kill":
            assert action.target is not None
            proc = await asyncio.to_thread(check_identity, action.target)
            proc.send_signal(signal.SIGKILL)
            return f"SIGKILL sent to pid {action.target.pid}"
        if kind == "reap_zombies":
            return await engine.reap_zombies(service)
        if kind == "backoff":
            return await engine.backoff_until_stable(service)
        if kind == "throttle_probes":
            return engine.throttle_probes(service)
        if kind == "rotate_logs":
            return engine.rotate_logs()
        if kind == "rollback":
            return await engine.rollback(service)
        if kind == "notify":
            return await self._notify(plan)
        raise ValueError(f"unknown action {kind!r}")

    async def _terminate(self, target: ProcessTarget, service: str | None) -> str:
        runner = self.engine.runners.get(service) if service else None
        if runner is not None and runner.alive and runner.pid == target.pid:
            await asyncio.to_thread(check_identity, target)
            await self.engine.stop_runner(service)
            return f"{service} (pid {target.pid}) terminated with its process group"
        proc = await asyncio.to_thread(check_identity, target)
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGCONT)
        try:
            await asyncio.to_thread(proc.wait, TERMINATE_WAIT)
            return f"pid {target.pid} ended after SIGTERM"
        except psutil.TimeoutExpired:
            await asyncio.to_thread(check_identity, target)  # still the same process before forcing it
            proc.send_signal(signal.SIGKILL)
            return f"pid {target.pid} ignored SIGTERM for {TERMINATE_WAIT:g}s; SIGKILL sent"
        except psutil.NoSuchProcess:
            return f"pid {target.pid} ended after SIGTERM"

    async def _notify(self, plan: FixPlan) -> str:
        incidents = self.engine.incidents
        assert incidents is not None
        runner = self.engine.runners.get(plan.service)
        tail = runner.sink.tail(10) if runner else []
        message = f"{plan.service}: {plan.summary}"
        if plan.incident_id:
            await incidents.set_status(plan.incident_id, "escalated")
            await self._timeline_now(plan.incident_id, time.time(), "escalated", f"escalated to the operator: {plan.summary}", None, {"log_tail": tail})
        await self.engine.emit_acknowledged(Event("escalated", None if plan.service == HOST else plan.service, message, {"log_tail": tail, "pattern": plan.pattern}))
        return "escalated to the operator"

    # --- records -----------------------------------------------------------------------------------------

    async def _insert_plan(self, plan: FixPlan, judgement: Judgement, status: str, decided_by: str | None, now: float) -> int:
        """A plan with its judgement, committed before anything acts on it. Pending plans have no decider yet."""
        plan_id = await self.store.write(
            "INSERT INTO plans(incident_id, service, pattern, fix, actions_json, confidence, risk, verdicts_json, decision, status, summary, "
            "evidence_json, evidence_at, created_at, decided_at, decided_by, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                plan.incident_id, plan.service, plan.pattern, plan.fix, dumps([a.to_dict() for a in plan.actions]), plan.confidence,
                plan.risk, dumps([v.to_dict() for v in judgement.verdicts]), judgement.decision, status, plan.summary,
                dumps(plan.evidence), plan.evidence_at, now, now if decided_by else None, decided_by, "; ".join(judgement.reasons),
            ),
        )
        assert plan_id is not None
        return plan_id

    def recent_automatic(self, service: str | None, since: float) -> int:
        return sum(1 for ts, svc in self._automatic if ts >= since and (service is None or svc == service))

    async def _log(self, plan_id: int, action: Action, approved_by: str | None, result: str) -> None:
        if approved_by is None:
            self._automatic.append((time.time(), action.service or HOST))
        t = action.target
        await self.store.write(
            "INSERT INTO actions_log(plan_id, ts, kind, service, target_pid, target_cmd, owned, approved_by, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (plan_id, time.time(), action.kind, action.service, t.pid if t else None, " ".join(t.cmdline) if t else None,
             None if t is None else int(t.owned), approved_by, result),
        )

    async def _timeline_now(self, incident_id: int, ts: float, kind: str, message: str, plan_id: int | None, data: dict[str, Any] | None = None) -> None:
        await self.store.write(
            "INSERT INTO incident_events(incident_id, ts, kind, message, data_json) VALUES (?, ?, ?, ?, ?)",
            (incident_id, ts, kind, message, dumps((data or {}) | ({"plan": plan_id} if plan_id else {}))),
        )

    async def _emit(self, kind: str, service: str, message: str, plan_id: int) -> None:
        await self.engine.emit_acknowledged(Event(kind, None if service == HOST else service, message, {"plan": plan_id}))

    def stats(self) -> dict[str, Any]:
        return {"busy": dict(self.busy), "planned": len(self.planned)}


def _check_grade(grade: Any) -> None:
    if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 10:
        raise ValueError(f"a grade is a whole number from 1 to 10, got {grade!r}")
