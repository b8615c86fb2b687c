"""The healer: diagnoses become fix plans, the guardians judge them, and plans run, wait for the operator
or are blocked; what runs is verified and learned from.

One plan per incident. A plan's decision and every operator decision are written before anything acts on
them, so a crash of the engine loses neither (pending and approved plans are picked up again at start).
Every action is logged with its target's identity and who allowed it.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections import deque
from typing import Any, AsyncIterator, Protocol

from . import rejudge
from .actuators import ActionContext, IdentityMismatch, check_identity, execute, identify
from .api import PlanRow
from .config import Config
from .diagnose import Diagnosis
from .events import EventBus
from .fleet import Fleet
from .guardians import RATE_LIMITED, GuardContext, Judgement, judge
from .incidents import Change, IncidentBook
from .learning import Learning
from .model import Event, ServiceState, ServiceStatus
from .patterns import HOST
from . import restart_policy
from .plans import Action, FixPlan, ProcessTarget, build_plan
from .records import Records
from .store import dumps

log = logging.getLogger(__name__)

RATE_WINDOW = 300.0
REJUDGE_EVERY = 1.0
# Plans tried at once for one incident; after these the operator is told (once) and the tries go on
# with growing back-off, because a managed service left down is the failure Aurora exists to prevent.
MAX_ATTEMPTS = 3
VERIFY_GRACE = 15.0
VERIFY_POLL = 0.25
# A fix is verified only once the service has stayed healthy this long: one good answer from a
# process that dies a moment later proves nothing.
VERIFY_STABLE = 1.0
# Plans that only tell the operator or tune Aurora itself end "escalated" or "executed", not verified.
NO_VERIFY = {"notify", "throttle_probes", "rotate_logs"}


class Observer(Protocol):
    """What the healer needs to see: fresh probes, a detection pass, and where services stand.
    The monitor is one; the healer never reaches the engine's facade."""

    async def probe_service(self, name: str) -> None: ...

    def detect_soon(self, name: str) -> None: ...

    def status_of(self, name: str) -> ServiceStatus | None: ...

    def owned_pids(self) -> set[int]: ...

    def exits_seen(self, name: str) -> int: ...


class Healer:
    def __init__(self, config: Config, fleet: Fleet, records: Records, observer: Observer, bus: EventBus) -> None:
        self.config = config
        self.fleet = fleet
        self.records = records
        self.observer = observer
        self.bus = bus
        self._actions = ActionContext(fleet, self._notify)
        self.planned: dict[int, int] = {}  # incident id -> its latest plan id (0: nothing to propose)
        self.attempts: dict[int, int] = {}  # incident id -> plans tried
        self.retry: set[int] = set()  # incidents whose last plan failed and may get another
        self.retry_at: dict[int, float] = {}  # incident id -> not before this time (its back-off)
        self.escalated: set[int] = set()  # incidents the operator has been told about, with evidence
        # Services whose automatic fixes are being slowed by the rate limit (the operator was told once).
        self.slowed: set[str] = set()
        self.pending: dict[int, float] = {}  # pending plan id -> when it was last judged
        self._automatic: deque[tuple[float, str]] = deque(maxlen=1000)
        self.busy: dict[str, int] = {}  # service -> the plan executing on it
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._deciding: set[int] = set()
        self._lock = asyncio.Lock()
        self.started = time.time()

    @property
    def incidents(self) -> IncidentBook:
        return self.records.incidents

    @property
    def learning(self) -> Learning:
        return self.records.learning

    async def load(self) -> list[int]:
        """The incident -> plan map, and the ids of approved plans a crash interrupted."""
        self.planned, pending, resume = await self.records.plan_index()
        self.pending = {plan_id: 0.0 for plan_id in pending}
        return resume

    async def resume(self, plan_ids: list[int]) -> None:
        """Plans approved or executing when the last engine died (automatic ones and operators' alike),
        judged again against what is there now instead of run again (see :mod:`.rejudge`). Called once
        the fleet has started, so that start counts as the restart it is."""
        for plan_id in plan_ids:
            try:
                await self._resume_one(plan_id)
            except Exception:  # one plan that cannot be judged again must not stop the engine
                log.exception("plan #%d, interrupted by the last engine's end, could not be judged again", plan_id)

    async def _resume_one(self, plan_id: int) -> None:
        row = await self.plan(plan_id)
        plan = _plan_of(row)
        since = row.decided_at or row.created_at
        why = rejudge.moot(plan.actions, await self._now(plan, since))
        if all(why):
            log.info("plan #%d (%s on %s) superseded: %s", plan_id, plan.fix, plan.service, rejudge.summary(why))
            await self._finish(plan_id, plan, "superseded", rejudge.summary(why), learn=False)
            return
        skip = {i: w for i, w in enumerate(why) if w}
        log.info("plan #%d (%s on %s), interrupted by the last engine's end, carried out%s", plan_id, plan.fix, plan.service,
                 f" without what is done already ({rejudge.summary(why)})" if skip else "")
        self.start_approved(plan_id, None if row.decided_by in (None, "guardians") else row.decided_by, skip)

    async def _now(self, plan: FixPlan, since: float) -> rejudge.Now:
        runner = self.fleet.runners.get(plan.service)
        running = runner is not None and runner.alive
        starts = await self.records.processes(plan.service, since) if plan.service != HOST else []
        gone = await asyncio.to_thread(lambda: tuple(_gone(a.target) for a in plan.actions))
        return rejudge.Now(
            plan.service, since, tuple((ts, i.pid) for ts, i in starts), runner.pid if running and runner else None,
            runner.started_at if running and runner else None, gone,
        )

    async def after_detect(self, changes: list[Change], diagnoses: list[Diagnosis]) -> None:
        """What a detection pass found: resolved incidents release their waiting plans, the rest get plans."""
        for change in changes:
            if change.kind == "resolved" and change.incident_id is not None:
                retry_at = self.retry_at.pop(change.incident_id, None)
                if retry_at is not None and self.fleet.next_try.get(change.service) == retry_at:
                    del self.fleet.next_try[change.service]  # nothing left to try again
                await self.incident_resolved(change.incident_id)
        await self.consider(diagnoses)

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
        incidents = self.incidents
        async with self._lock:
            proposing: dict[str, list[tuple[Diagnosis, int]]] = {}
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
                if plan_id is not None and (self.retry_at.get(incident.id, 0.0) > time.time() or self._stopped_by_hand(d.service)):
                    continue
                self.retry.discard(incident.id)
                if self.retry_at.pop(incident.id, None) is not None:
                    self.fleet.next_try.pop(d.service, None)
                proposing.setdefault(d.service, []).append((d, incident.id))
            # Services do not wait for each other: ten crashes at once are proposed, judged and started
            # together, their writes sharing the store's commits. One service's plans go in order.
            await asyncio.gather(*(self._propose_in_order(plans) for plans in proposing.values()))

    async def _propose_in_order(self, plans: list[tuple[Diagnosis, int]]) -> None:
        for d, incident_id in plans:
            await self.propose(d, incident_id)

    async def _rejudge(self, plan_id: int, d: Diagnosis, incident_id: int) -> None:
        """A plan held back for a passing reason (a start grace, confidence still building) is judged
        again as the evidence grows; if the guardians now let it run, it runs, superseding the old one."""
        now = time.time()
        if plan_id in self._deciding or now - self.pending.get(plan_id, 0.0) < REJUDGE_EVERY:
            return
        self.pending[plan_id] = now
        owned = self.observer.owned_pids()
        targets = await asyncio.to_thread(self._targets, d, owned)
        plan = build_plan(d, incident_id, targets, now, self.learning.refused_fixes(d.pattern), self._programs(d.service))
        if plan is None or judge(plan, self._context(plan, human=False, owned=owned)).decision != "run":
            return
        changed = await self.records.set_plan(
            plan_id, only_if_status="pending", status="expired", finished_at=now,
            outcome="superseded: judged again, the guardians let it run",
        )
        self.pending.pop(plan_id, None)
        if changed or changed is None:  # None: the storage refuses commits; the plan was ours to supersede
            await self.propose(d, incident_id)

    async def propose(self, d: Diagnosis, incident_id: int) -> int | None:
        owned = self.observer.owned_pids()
        targets = await asyncio.to_thread(self._targets, d, owned)
        plan = build_plan(d, incident_id, targets, time.time(), self.learning.refused_fixes(d.pattern), self._programs(d.service))
        if plan is None:
            self.planned[incident_id] = 0
            return None
        judgement, delay = self.judge_automatic(plan, owned)
        status = {"run": "executing", "wait": "pending", "block": "blocked"}[judgement.decision]
        now = time.time()
        plan_id = await self._insert_plan(plan, judgement, status, None if status == "pending" else "guardians", now)
        self.planned[incident_id] = plan_id
        self.attempts[incident_id] = self.attempts.get(incident_id, 0) + 1
        incidents = self.incidents
        verdicts = ", ".join(f"{v.level} {v.outcome}" for v in judgement.verdicts)
        incidents.timeline(incident_id, now, "proposed", f"plan #{plan_id}: {plan.fix} (risk {plan.risk}, confidence {plan.confidence}/10)", {"plan": plan_id})
        incidents.timeline(incident_id, now, "judged", f"{judgement.decision}: {verdicts}", {"plan": plan_id, "reasons": judgement.reasons})
        await self._emit("plan_proposed", plan.service, f"plan #{plan_id} for {plan.pattern} on {plan.service}: {plan.fix} -> {judgement.decision}", plan_id)
        if status == "executing":
            await incidents.set_status(incident_id, "healing")
            if delay:
                await self._slowed(plan_id, plan, delay, judgement)
            self._start(plan_id, plan, approved_by=None, delay=delay)
        elif status == "pending":
            self.pending[plan_id] = now
            await incidents.set_status(incident_id, "awaiting_approval")
        else:
            await incidents.set_status(incident_id, "escalated")
            incidents.timeline(incident_id, now, "escalated", f"plan #{plan_id} blocked: {'; '.join(judgement.reasons)}", {"plan": plan_id})
        return plan_id

    def _programs(self, service: str) -> frozenset[str] | None:
        """None for a service Aurora runs; for a monitor-only one, the programs it configures."""
        svc = self.config.service(service) if service != HOST else None
        if svc is None or svc.managed:
            return None
        return frozenset(k for k in ("start_command", "stop_command") if getattr(svc, k))

    def judge_automatic(self, plan: FixPlan, owned: set[int]) -> tuple[Judgement, float]:
        """The guardians' judgement of a plan nobody asked for, and how long it waits before running.

        A rate limit guards against restart storms, but a managed service left dead is worse than a
        slow one: a plan that would bring it back and is stopped by the rate limit alone runs anyway,
        after a back-off (until the window frees, at most the back-off cap), so the service is tried at
        most once per cap while it is over the limit, and never left down."""
        ctx = self._context(plan, human=False, owned=owned)
        judgement = judge(plan, ctx)
        limited = judgement.decision == "block" and all(r.startswith(RATE_LIMITED) for r in judgement.reasons)
        if not limited or plan.service not in self.fleet.runners or not {"restart", "start"} & {a.kind for a in plan.actions}:
            if not any(r.startswith(RATE_LIMITED) for r in judgement.reasons):
                self.slowed.discard(plan.service)
            return judgement, 0.0
        oldest = min((ts for ts, svc in self._automatic if svc == plan.service and ts >= ctx.now - RATE_WINDOW), default=ctx.now)
        delay = max(restart_policy.BACKOFF_FLOOR, min(restart_policy.BACKOFF_CAP, oldest + RATE_WINDOW - ctx.now))
        return judge(plan, dataclasses.replace(ctx, slowed_for=delay)), delay

    async def _slowed(self, plan_id: int, plan: FixPlan, delay: float, judgement: Judgement) -> None:
        """Tell the operator, once per stretch of rate limiting on a service, that its fixes are slowed."""
        assert plan.incident_id is not None
        why = "; ".join(r for v in judgement.verdicts for r in v.reasons if r.startswith(RATE_LIMITED))
        if plan.service in self.slowed:
            self.incidents.timeline(plan.incident_id, time.time(), "slowed", f"plan #{plan_id} runs in {delay:.0f}s: {why}", {"plan": plan_id})
            return
        self.slowed.add(plan.service)
        await self._escalate(plan.incident_id, plan.service, plan.pattern,
                             f"{plan.service}: automatic fixes hit the rate limit; {plan.fix} slowed to one try per "
                             f"{restart_policy.BACKOFF_CAP:.0f}s at most, next in {delay:.0f}s ({why}). {plan.summary}")

    def _targets(self, d: Diagnosis, owned: set[int]) -> dict[str, list[ProcessTarget]]:
        found: dict[str, list[ProcessTarget]] = {}
        runner = self.fleet.runners.get(d.service)
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
        now = time.time()
        settings = self.config.settings
        svc = self.config.service(plan.service) if plan.service != HOST else None
        runner = self.fleet.runners.get(plan.service)
        deps_down = tuple(
            dep for dep in (svc.depends_on if svc else ())
            if (status := self.observer.status_of(dep)) is not None and not status.healthy
        )
        incidents = self.incidents
        open_ids = {i.id for i in incidents.open.values()}
        return GuardContext(
            now=now,
            aurora_pid=os.getpid(),
            aurora_uid=os.getuid(),
            protected_pids=frozenset({1, os.getpid(), os.getppid()}),
            owned_pids=frozenset(owned),
            human=human,
            auto_confidence=settings.auto_confidence,
            interval=settings.interval,
            service_limit=settings.rate_limit,
            recent_actions=self.recent_automatic(plan.service, now - RATE_WINDOW),
            recent_actions_global=self.recent_automatic(None, now - RATE_WINDOW),
            silenced=incidents._silence_for(plan.service, now) is not None,
            started_at=runner.started_at if runner and runner.alive else None,
            start_grace=svc.start_grace if svc else 0.0,
            short_runs=self.fleet.short_runs(plan.service),
            dependencies_down=deps_down,
            belief=self.learning.get(plan.pattern, plan.fix),
            incident_open=plan.incident_id is None or plan.incident_id in open_ids,
            auto_heal=settings.auto_heal,
        )

    async def incident_resolved(self, incident_id: int) -> None:
        """A plan still waiting for an incident that cleared by itself has nothing left to fix."""
        plan_id = self.planned.get(incident_id)
        if not plan_id:
            return
        was_pending = self.pending.pop(plan_id, None) is not None
        changed = await self.records.set_plan(
            plan_id, only_if_status="pending", status="expired", finished_at=time.time(),
            outcome="the incident cleared before a decision",
        )
        if changed:
            row = await self.plan(plan_id)
            await self._emit("plan_finished", row.service, f"plan #{plan_id} expired: the incident cleared before a decision", plan_id)
        elif changed is None and was_pending:  # the storage refuses commits: the row cannot be read back
            log.info("plan #%d expired: the incident cleared before a decision", plan_id)

    # --- operator decisions ------------------------------------------------------------------------------

    async def plan(self, plan_id: int) -> PlanRow:
        return await self.records.plan(plan_id)

    @contextlib.asynccontextmanager
    async def _decision(self, plan_id: int) -> AsyncIterator[PlanRow | None]:
        """The plan, if it is still pending and no other decision on it is under way; else None.
        This is what makes approving twice (or approving and rejecting at once) act once."""
        if plan_id in self._deciding:
            yield None
            return
        self._deciding.add(plan_id)
        try:
            row = await self.plan(plan_id)
            yield row if row.status == "pending" else None
        finally:
            self._deciding.discard(plan_id)

    async def approve(self, plan_id: int, grade: int | None = None, comment: str = "", by: str = "operator") -> PlanRow:
        plan_id = int(plan_id)
        if grade is not None:
            _check_grade(grade)
        async with self._decision(plan_id) as row:
            if row is None:
                return await self.plan(plan_id)
            now = time.time()
            # On disk before anything acts on it; a decision that cannot be committed is refused.
            if not await self.records.set_plan(
                plan_id, only_if_status="pending", ack=True, status="approved", decided_at=now, decided_by=by, grade=grade, comment=comment,
            ):
                return await self.plan(plan_id)
            self.pending.pop(plan_id, None)
            if row.incident_id:
                await self._timeline_now(row.incident_id, now, "approved", f"plan #{plan_id} approved by {by}" + (f": {comment}" if comment else ""), plan_id)
            if grade is not None:
                await self.learning.record(row.pattern, row.fix, "graded", grade)
            await self._emit("plan_decided", row.service, f"plan #{plan_id} approved by {by}", plan_id)
            self.start_approved(plan_id, by)
        return await self.plan(plan_id)

    async def reject(self, plan_id: int, reason: str, by: str = "operator") -> PlanRow:
        plan_id = int(plan_id)
        if not reason or not reason.strip():
            raise ValueError("a rejection needs a reason")
        async with self._decision(plan_id) as row:
            if row is None:
                return await self.plan(plan_id)
            now = time.time()
            if not await self.records.set_plan(plan_id, only_if_status="pending", ack=True, status="rejected", decided_at=now, decided_by=by, reason=reason):
                return await self.plan(plan_id)
            self.pending.pop(plan_id, None)
            await self.learning.record(row.pattern, row.fix, "rejected")
            if row.incident_id:
                await self._timeline_now(row.incident_id, now, "rejected", f"plan #{plan_id} rejected by {by}: {reason}", plan_id)
                await self.incidents.set_status(row.incident_id, "open")
            await self._emit("plan_decided", row.service, f"plan #{plan_id} rejected by {by}: {reason}", plan_id)
        return await self.plan(plan_id)

    async def grade(self, plan_id: int, grade: int, by: str = "operator") -> PlanRow:
        _check_grade(grade)
        row = await self.plan(plan_id)
        if row.status in ("pending",):
            raise ValueError(f"plan #{plan_id} is still pending: approve it with a grade, or grade it once decided")
        await self.records.set_plan(plan_id, ack=True, grade=int(grade))
        await self.learning.record(row.pattern, row.fix, "graded", int(grade))
        await self._emit("plan_graded", row.service, f"plan #{plan_id} graded {grade}/10 by {by}", int(plan_id))
        return await self.plan(plan_id)

    def start_approved(self, plan_id: int, by: str | None, skip: dict[int, str] | None = None) -> None:
        task = asyncio.create_task(self._run_approved(plan_id, by, skip), name=f"plan-{plan_id}")
        self.tasks[plan_id] = task
        task.add_done_callback(lambda t, p=plan_id: self.tasks.pop(p, None))

    async def _run_approved(self, plan_id: int, by: str | None, skip: dict[int, str] | None = None) -> None:
        plan = _plan_of(await self.plan(plan_id))
        # The evidence may be old by now: look again before acting on it.
        if plan.service != HOST:
            await self.observer.probe_service(plan.service)
        judgement = judge(plan, self._context(plan, human=True, owned=self.observer.owned_pids()))
        if judgement.decision != "run":
            status = "expired" if any("no longer open" in r for r in judgement.reasons) else "blocked"
            await self._finish(plan_id, plan, status, "; ".join(judgement.reasons), learn=False)
            return
        await self._execute(plan_id, plan, approved_by=by, skip=skip)

    async def run_manual(self, kind: str, service: str, by: str) -> str:
        """An operator's restart, stop or start: judged by the same guardians, recorded as a plan, and
        done only once that plan is committed (else StorageUnavailable, and nothing is done)."""
        runner = self.fleet.runners.get(service)
        owned = self.observer.owned_pids()
        leader = identify(runner.pid, "service", owned) if runner is not None and runner.alive and runner.pid else None
        plan = FixPlan(service, "manual", None, [Action(kind, service, leader if kind == "stop" else None)], 10,
                       f"{kind} {service}, requested by {by}", {}, time.time())
        judgement = judge(plan, self._context(plan, human=True, owned=owned))
        status = "executing" if judgement.decision == "run" else "blocked"
        now = time.time()
        plan_id = await self._insert_plan(plan, judgement, status, by, now, ack=True)
        if status == "blocked":
            raise ValueError(f"the guardians refused to {kind} {service}: {'; '.join(judgement.reasons)}")
        self.cancel_service(service)
        self.busy[service] = plan_id
        try:
            await self.records.set_plan(plan_id, executed_at=now)
            result = await execute(self._actions, plan.actions[0], plan)
            await self._log(plan_id, plan.actions[0], by, result)
            await self.records.set_plan(plan_id, status="executed", finished_at=time.time(), outcome=result)
            return result
        finally:
            if self.busy.get(service) == plan_id:
                del self.busy[service]

    # --- executing ---------------------------------------------------------------------------------------

    def _start(self, plan_id: int, plan: FixPlan, approved_by: str | None, delay: float = 0.0) -> None:
        task = asyncio.create_task(self._execute(plan_id, plan, approved_by, delay), name=f"plan-{plan_id}")
        self.tasks[plan_id] = task
        task.add_done_callback(lambda t, p=plan_id: self.tasks.pop(p, None))

    async def _execute(self, plan_id: int, plan: FixPlan, approved_by: str | None, delay: float = 0.0,
                       skip: dict[int, str] | None = None) -> None:
        """Run the plan's actions in order (those in ``skip`` are done already: noted, not run), verify
        and learn."""
        service = plan.service
        self.busy[service] = plan_id
        try:
            if delay:
                await self.fleet.hold(service, delay)
            now = time.time()
            await self.records.set_plan(plan_id, status="executing", executed_at=now)
            incidents = self.incidents
            if plan.incident_id:
                await incidents.set_status(plan.incident_id, "healing")
            for index, action in enumerate(plan.actions):
                if skip and index in skip:
                    if plan.incident_id:
                        incidents.timeline(plan.incident_id, time.time(), "skipped", f"{action.kind} not run again: {skip[index]}", {"plan": plan_id})
                    continue
                try:
                    result = await execute(self._actions, action, plan)
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
            if plan.pattern == "manual":
                # An operator's action resumed after a crash ends as run_manual ends it: done, not verified
                # (a stop that worked leaves the service down on purpose).
                await self._finish(plan_id, plan, "executed", "done, as the operator asked", learn=False)
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
                self.observer.detect_soon(service)

    async def _finish(self, plan_id: int, plan: FixPlan, status: str, outcome: str, learn: bool = True) -> None:
        now = time.time()
        if learn and status in ("verified", "failed"):
            await self.learning.record(plan.pattern, plan.fix, "success" if status == "verified" else "failure")
        incidents = self.incidents
        if plan.incident_id:
            open_ids = {i.id for i in incidents.open.values()}
            kind = {"verified": "verified", "failed": "failed", "escalated": "escalated"}.get(status, status)
            await self._timeline_now(plan.incident_id, now, kind, f"plan #{plan_id} {status}: {outcome}", plan_id)
            if status == "verified" and plan.incident_id in open_ids:
                await incidents.resolve(plan.incident_id, now, f"fixed by plan #{plan_id} ({plan.fix}), verified", by="healer")
            elif status == "failed" and plan.incident_id in open_ids and self.fleet.active and not self._stopped_by_hand(plan.service):
                await self._retry_later(plan_id, plan, outcome)
            elif status in ("failed", "escalated", "blocked") and plan.incident_id in open_ids:
                await incidents.set_status(plan.incident_id, "escalated")
            elif status == "expired" and plan.incident_id in open_ids:
                await incidents.set_status(plan.incident_id, "open")
            elif status == "superseded" and plan.incident_id in open_ids:
                self.retry.add(plan.incident_id)  # what is wrong now, if anything, gets a plan of its own
                await incidents.set_status(plan.incident_id, "open")
        # Written last: whoever sees the plan finished also sees its incident's timeline and status.
        await self.records.set_plan(plan_id, status=status, finished_at=now, outcome=outcome)
        event = {"verified": "plan_verified", "failed": "plan_failed"}.get(status, "plan_finished")
        await self._emit(event, plan.service, f"plan #{plan_id} {status}: {outcome}", plan_id)

    def _stopped_by_hand(self, service: str) -> bool:
        runner = self.fleet.runners.get(service)
        return runner is not None and runner.state is ServiceState.STOPPED

    async def _retry_later(self, plan_id: int, plan: FixPlan, outcome: str) -> None:
        """Not the end: the next pass proposes again and the guardians judge it afresh, at once for the
        first tries, then with growing back-off. The operator is told once, with the evidence, when
        the quick tries have run out; the tries go on until the condition clears or a human stops it."""
        incident_id = plan.incident_id
        assert incident_id is not None
        self.retry.add(incident_id)
        attempts = self.attempts.get(incident_id, 0)
        if attempts < MAX_ATTEMPTS:
            await self.incidents.set_status(incident_id, "open")
            return
        delay = restart_policy.restart_delay(restart_policy.RETRY_FIRST, attempts - MAX_ATTEMPTS + 1)
        when = time.time() + delay
        self.retry_at[incident_id] = when
        if plan.service in self.fleet.runners:
            self.fleet.next_try[plan.service] = when
        self.incidents.timeline(incident_id, time.time(), "retry", f"plan #{plan_id} failed; next try in {delay:.0f}s", {"plan": plan_id, "delay": delay})
        if incident_id not in self.escalated:
            await self._escalate(incident_id, plan.service, plan.pattern,
                                 f"{plan.service}: {attempts} fixes for {plan.pattern} failed (last: {outcome}); "
                                 f"it is tried again with back-off up to {restart_policy.BACKOFF_CAP:.0f}s, each try judged afresh. {plan.summary}")
        else:
            await self.incidents.set_status(incident_id, "escalated")

    async def _verify(self, plan: FixPlan) -> tuple[bool, str]:
        """Probe until the incident clears and the service is healthy, or the deadline passes."""
        observer = self.observer
        svc = self.config.service(plan.service)
        deadline = time.monotonic() + svc.start_grace + VERIFY_GRACE
        started = time.monotonic()
        incidents = self.incidents
        healthy_since: float | None = None
        runner = self.fleet.runners.get(plan.service)
        exits_before = observer.exits_seen(plan.service)
        while time.monotonic() < deadline:
            await observer.probe_service(plan.service)
            status = observer.status_of(plan.service)
            if observer.exits_seen(plan.service) > exits_before and runner is not None and runner.last_exit is not None:
                return False, f"{plan.service} died again after the fix: {runner.last_exit.describe()}"
            still_open = plan.incident_id is not None and plan.incident_id in {i.id for i in incidents.open.values()}
            if status is not None and status.healthy:
                healthy_since = healthy_since or time.monotonic()
                if not still_open and time.monotonic() - healthy_since >= VERIFY_STABLE:
                    return True, f"{plan.service} healthy and {plan.pattern} cleared after {time.monotonic() - started:.1f}s"
            else:
                healthy_since = None
            await asyncio.sleep(VERIFY_POLL)
        status = observer.status_of(plan.service)
        why = "still unhealthy" if status is None or not status.healthy else f"{plan.pattern} persists"
        return False, f"{plan.service} {why} {svc.start_grace + VERIFY_GRACE:.0f}s after the fix"

    async def _notify(self, plan: FixPlan) -> str:
        if plan.incident_id in self.escalated:
            # One page per incident: a retried plan does not tell the operator again.
            return "already escalated to the operator"
        await self._escalate(plan.incident_id, plan.service, plan.pattern, f"{plan.service}: {plan.summary}")
        return "escalated to the operator"

    async def _escalate(self, incident_id: int | None, service: str, pattern: str, message: str) -> None:
        """Tell the operator, with the service's last log lines as evidence."""
        runner = self.fleet.runners.get(service)
        tail = runner.sink.tail(10) if runner else []
        if incident_id:
            self.escalated.add(incident_id)
            await self.incidents.set_status(incident_id, "escalated")
            await self._timeline_now(incident_id, time.time(), "escalated", f"escalated to the operator: {message}", None, {"log_tail": tail})
        await self.bus.acknowledged(Event("escalated", None if service == HOST else service, message, {"log_tail": tail, "pattern": pattern}), ack=False)

    # --- records -----------------------------------------------------------------------------------------

    async def _insert_plan(self, plan: FixPlan, judgement: Judgement, status: str, decided_by: str | None, now: float, ack: bool = False) -> int:
        """A plan with its judgement, committed before anything acts on it (an operator's must be; the
        healer's is queued when the storage refuses, so healing goes on). Pending plans have no decider yet."""
        return await self.records.insert_plan({
            "incident_id": plan.incident_id, "service": plan.service, "pattern": plan.pattern, "fix": plan.fix,
            "actions_json": dumps([a.to_dict() for a in plan.actions]), "confidence": plan.confidence, "risk": plan.risk,
            "verdicts_json": dumps([v.to_dict() for v in judgement.verdicts]), "decision": judgement.decision, "status": status,
            "summary": plan.summary, "evidence_json": dumps(plan.evidence), "evidence_at": plan.evidence_at, "created_at": now,
            "decided_at": now if decided_by else None, "decided_by": decided_by, "reason": "; ".join(judgement.reasons),
        }, ack=ack)

    def recent_automatic(self, service: str | None, since: float) -> int:
        return sum(1 for ts, svc in self._automatic if ts >= since and (service is None or svc == service))

    async def _log(self, plan_id: int, action: Action, approved_by: str | None, result: str) -> None:
        if approved_by is None:
            self._automatic.append((time.time(), action.service or HOST))
        t = action.target
        target = (t.pid, " ".join(t.cmdline), t.owned) if t is not None else None
        await self.records.log_action(plan_id, action.kind, action.service, target, approved_by, result)

    async def _timeline_now(self, incident_id: int, ts: float, kind: str, message: str, plan_id: int | None, data: dict[str, Any] | None = None) -> None:
        await self.records.add_timeline(incident_id, ts, kind, message, (data or {}) | ({"plan": plan_id} if plan_id else {}))

    async def _emit(self, kind: str, service: str, message: str, plan_id: int) -> None:
        # Committed before going on while the storage works; never waited for when it does not.
        await self.bus.acknowledged(Event(kind, None if service == HOST else service, message, {"plan": plan_id}), ack=False)

    def stats(self) -> dict[str, Any]:
        return {"busy": dict(self.busy), "planned": len(self.planned)}


def _check_grade(grade: Any) -> None:
    if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 10:
        raise ValueError(f"a grade is a whole number from 1 to 10, got {grade!r}")


def _plan_of(row: PlanRow) -> FixPlan:
    return FixPlan(row.service, row.pattern, row.incident_id, [Action.from_dict(a) for a in row.actions],
                   row.confidence, row.summary, row.evidence, row.evidence_at)


def _gone(target: ProcessTarget | None) -> str | None:
    """Why ``target`` is no longer the process a plan aimed at (None: it still is, or there is none)."""
    if target is None:
        return None
    try:
        check_identity(target)
    except IdentityMismatch as exc:
        return str(exc)
    return None
