"""Fix plans: a diagnosis becomes a short list of actions from a closed set, each aimed at a target whose
identity (pid, create time, command line) was recorded when the plan was made and is checked again at the
moment of acting. Pure: the identities arrive already looked up.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping, Sequence

from .diagnose import Diagnosis
from .patterns import HOST, load_patterns

RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class ActionSpec:
    kind: str
    risk: str
    forceful: bool
    description: str


@functools.cache
def action_catalogue() -> dict[str, ActionSpec]:
    raw = tomllib.loads(resources.files("aurora_tui.catalogue").joinpath("actions.toml").read_text())
    return {a["kind"]: ActionSpec(**a) for a in raw["action"]}


@dataclass(frozen=True)
class ProcessTarget:
    """A process as it was when the plan was made. ``owned`` means it is part of a service Aurora runs."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...]
    uid: int
    owned: bool
    role: str  # "service", "orphan", "port holder"

    def describe(self) -> str:
        who = "" if self.owned else ", not Aurora's"
        return f"pid {self.pid} ({' '.join(self.cmdline)[:80]}{who})"


@dataclass
class Action:
    kind: str
    service: str | None
    target: ProcessTarget | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def detail(self) -> str:
        spec = action_catalogue()[self.kind]
        where = self.target.describe() if self.target else (self.service or "the fleet")
        return f"{self.kind} {where}: {spec.description}"

    def to_dict(self) -> dict[str, Any]:
        target = None
        if self.target is not None:
            t = self.target
            target = {"pid": t.pid, "create_time": t.create_time, "cmdline": list(t.cmdline), "uid": t.uid, "owned": t.owned, "role": t.role}
        return {"kind": self.kind, "service": self.service, "target": target, "params": self.params, "detail": self.detail()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Action":
        t = data.get("target")
        target = ProcessTarget(t["pid"], t["create_time"], tuple(t["cmdline"]), t["uid"], t["owned"], t["role"]) if t else None
        return cls(data["kind"], data.get("service"), target, dict(data.get("params") or {}))


@dataclass
class FixPlan:
    service: str
    pattern: str
    incident_id: int | None
    actions: list[Action]
    confidence: int
    summary: str
    evidence: dict[str, Any]
    evidence_at: float

    @property
    def fix(self) -> str:
        """The plan's shape, e.g. "terminate+start": what learning keeps beliefs about."""
        return "+".join(a.kind for a in self.actions)

    @property
    def risk(self) -> str:
        risks = [action_catalogue()[a.kind].risk for a in self.actions]
        pattern = load_patterns().get(self.pattern)
        if pattern is not None and self.fix != "notify":
            risks.append(pattern.risk)  # restarting a service under heavy load is riskier than a restart
        if any(a.target is not None and not a.target.owned for a in self.actions):
            risks.append("high")  # touching a process Aurora does not own always needs a human
        return max(risks, key=RISK_ORDER.__getitem__, default="low")


# What a fix for a service Aurora runs becomes for a monitor-only one: its own programs, never a signal.
_AS_PROGRAMS = {"restart": ("stop_command", "start_command"), "start": ("start_command",), "terminate": ("stop_command",),
                "start_command": ("start_command",), "stop_command": ("stop_command",)}


def monitor_only_actions(actions: list[Action], programs: frozenset[str]) -> list[Action]:
    """``actions`` aimed at a monitor-only service: each that acts on it becomes a run of its configured
    start or stop program; without the programs it needs, or for anything else (a kill, a back-off),
    the whole plan is to tell the operator."""
    service = actions[0].service
    kinds: list[str] = []
    for action in actions:
        if action.kind == "notify":
            continue
        needed = _AS_PROGRAMS.get(action.kind)
        if needed is None or not set(needed) <= programs:
            return [Action("notify", service)]
        kinds += [k for k in needed if k not in kinds]
    return [Action(kind, service) for kind in kinds] or [Action("notify", service)]


def build_plan(
    d: Diagnosis,
    incident_id: int | None,
    targets: Mapping[str, Sequence[ProcessTarget]],
    evidence_at: float,
    refused_fixes: set[str] = frozenset(),  # type: ignore[assignment]
    programs: frozenset[str] | None = None,
) -> FixPlan | None:
    """The usual fix for the diagnosed pattern, aimed at concrete targets.

    ``targets`` holds identities looked up for this diagnosis: "service" (the leader, if alive),
    "orphans", "port holder". A fix that the operator keeps rejecting for this pattern is no longer
    proposed automatically: the plan falls back to telling the operator.

    ``programs`` is None for a service Aurora runs; for a monitor-only one, which of "start_command"
    and "stop_command" it configures (see :func:`monitor_only_actions`).
    """
    if d.pattern == "dependency_down":
        return None  # healed through the dependency's own incident
    pattern = load_patterns()[d.pattern]
    service = None if d.service == HOST else d.service
    if d.evidence.get("holder_engine"):
        # The port's holder is another Aurora engine's service: that engine would only start it again,
        # so nothing is killed; the operator is told whose it is (two configurations to reconcile).
        engine = {"holder_engine": d.evidence["holder_engine"], "holder_service": d.evidence.get("holder_service")}
        return FixPlan(d.service, d.pattern, incident_id, [Action("notify", service, params=engine)], d.confidence, d.cause, d.evidence, evidence_at)
    leader = next(iter(targets.get("service", ())), None)
    actions: list[Action] = []
    for kind in pattern.actions:
        if kind == "terminate" and d.pattern == "orphaned_children":
            actions += [Action("terminate", service, t) for t in targets.get("orphans", ())]
        elif kind == "terminate":
            actions.append(Action("terminate", service, leader))
        elif kind == "free_port":
            holders = targets.get("port holder", ())
            if not holders:
                continue  # the holder is gone already: starting the service is all that is left
            actions += [Action("free_port", service, t) for t in holders]
        elif kind == "restart" and d.pattern in ("port_conflict_foreign", "port_conflict_stale"):
            actions.append(Action("start", service))
        elif kind in ("reap_zombies",):
            actions.append(Action(kind, service, leader))
        else:
            actions.append(Action(kind, service))
    if programs is not None and actions:
        actions = monitor_only_actions(actions, programs)
    if not actions:
        return None
    plan = FixPlan(d.service, d.pattern, incident_id, actions, d.confidence, d.cause, d.evidence, evidence_at)
    if plan.fix in refused_fixes and plan.fix != "notify":
        plan.actions = [Action("notify", service, params={"instead_of": plan.fix})]
    return plan
