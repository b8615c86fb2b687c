"""Three guardians, chained, judge every fix plan before anything is done.

L1 safety and form, L2 evidence and logic, L3 best practice. Each returns pass, warn or block with its
reasons; a block stops the chain (later levels are "skipped"). The judgement is: run now (every level
passes, the risk class allows it, confidence at or above the auto threshold), wait for the operator, or
blocked. High-risk plans always wait for a human, whatever was learned. Pure functions: everything they
need arrives in a :class:`GuardContext`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from .patterns import load_patterns
from .plans import FixPlan, action_catalogue

PASS, WARN, BLOCK, SKIPPED = "pass", "warn", "block", "skipped"


@dataclass
class Belief:
    """What was learned about one fix for one pattern (a Beta posterior and its history)."""

    alpha: float = 1.0
    beta: float = 1.0
    successes: int = 0
    failures: int = 0
    rejections: int = 0

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def evidence(self) -> int:
        return self.successes + self.failures + self.rejections


@dataclass
class GuardContext:
    now: float
    aurora_pid: int
    aurora_uid: int
    protected_pids: frozenset[int]  # PID 1, Aurora itself and its parent
    owned_pids: frozenset[int]  # every process in the trees of the services Aurora runs
    human: bool  # an operator asked for or approved this plan
    auto_confidence: int
    interval: float
    recent_actions: int  # on this service within the rate window
    recent_actions_global: int
    service_limit: int = 5
    global_limit: int = 20
    silenced: bool = False
    started_at: float | None = None
    start_grace: float = 10.0
    short_runs: int = 0
    dependencies_down: tuple[str, ...] = ()
    belief: Belief | None = None
    incident_open: bool = True
    auto_heal: bool = True
    # Set when a plan over the rate limit is to run slowed down, after this many seconds, instead of
    # not at all (see Healer.judge_automatic).
    slowed_for: float | None = None


# How every rate-limit reason begins, so the healer can tell a rate limit from other blocks.
RATE_LIMITED = "rate limit:"


@dataclass
class Verdict:
    level: str
    name: str
    outcome: str
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"level": self.level, "name": self.name, "outcome": self.outcome, "reasons": self.reasons}


@dataclass
class Judgement:
    decision: str  # run | wait | block
    verdicts: list[Verdict]
    reasons: list[str]


def _verdict(level: str, name: str, blocks: list[str], warns: list[str], passes: list[str]) -> Verdict:
    if blocks:
        return Verdict(level, name, BLOCK, blocks + warns)
    if warns:
        return Verdict(level, name, WARN, warns)
    return Verdict(level, name, PASS, passes)


def l1_safety(plan: FixPlan, ctx: GuardContext) -> Verdict:
    blocks, warns, passes = [], [], []
    catalogue = action_catalogue()
    for action in plan.actions:
        if action.kind not in catalogue:
            blocks.append(f"{action.kind!r} is not an action Aurora knows")
            continue
        if action.kind in ("start_command", "stop_command"):
            why = f"{action.kind} acts on an unmanaged process"
            warns.append(why + (": approved by a human" if ctx.human else " without a human: it waits for one"))
        t = action.target
        if t is None:
            continue
        if t.pid in ctx.protected_pids or t.pid <= 1:
            blocks.append(f"{action.kind} would touch pid {t.pid}, which is never touched (PID 1, Aurora itself or its parent)")
        elif t.uid != ctx.aurora_uid:
            blocks.append(f"{action.kind} would touch pid {t.pid} of another user (uid {t.uid})")
        elif not t.owned or t.pid not in ctx.owned_pids:
            why = f"{action.kind} targets {t.describe()}, which Aurora did not start"
            warns.append(why + (": approved by a human" if ctx.human else ": needs a human"))
    if not ctx.human:
        limited = []
        if ctx.recent_actions >= ctx.service_limit:
            limited.append(f"{RATE_LIMITED} {ctx.recent_actions} automatic actions on {plan.service} within the window (limit {ctx.service_limit})")
        if ctx.recent_actions_global >= ctx.global_limit:
            limited.append(f"{RATE_LIMITED} {ctx.recent_actions_global} automatic actions fleet-wide within the window (limit {ctx.global_limit})")
        if limited and ctx.slowed_for is not None:
            passes.extend(f"{why}: slowed down, it runs after {ctx.slowed_for:.0f}s" for why in limited)
        else:
            blocks.extend(limited)
        if ctx.silenced:
            warns.append(f"{plan.service} is silenced: automatic fixes wait for a human")
    if ctx.human and warns:
        # An operator who approved a foreign target has taken that decision; it is recorded, not re-asked.
        passes.extend(warns)
        warns = []
    passes.append("every action is from the closed set and every target was identified by pid, create time and command line")
    return _verdict("L1", "safety and form", blocks, warns, passes)


def l2_evidence(plan: FixPlan, ctx: GuardContext) -> Verdict:
    blocks, warns, passes = [], [], []
    pattern = load_patterns().get(plan.pattern)
    if plan.incident_id is not None and not ctx.incident_open:
        blocks.append("the incident is no longer open: the condition cleared")
    if pattern is not None:
        if plan.confidence < 3 and not ctx.human:
            blocks.append(f"confidence {plan.confidence}/10 is too low to act on")
        elif plan.confidence < ctx.auto_confidence:
            warns.append(f"confidence {plan.confidence}/10 is below the automatic threshold {ctx.auto_confidence}")
        else:
            passes.append(f"confidence {plan.confidence}/10")
        age = ctx.now - plan.evidence_at
        if age > max(30.0, 3 * ctx.interval):
            warns.append(f"the evidence is {age:.0f}s old; it is re-checked before acting")
        allowed = set(pattern.actions) | {"start", "notify"}
        strange = [a.kind for a in plan.actions if a.kind not in allowed]
        if strange:
            warns.append(f"{', '.join(strange)} is not the usual fix for {plan.pattern} ({'+'.join(pattern.actions)})")
        else:
            passes.append(f"{plan.fix} is the usual fix for {plan.pattern}")
    belief = ctx.belief
    if belief is not None and belief.evidence:
        rate = f"{belief.mean:.0%} after {belief.successes} successes, {belief.failures} failures, {belief.rejections} rejections"
        if belief.evidence >= 3 and belief.mean < 0.35:
            warns.append(f"this fix has not worked for {plan.pattern} ({rate})")
        else:
            passes.append(f"learned success of {plan.fix} for {plan.pattern}: {rate}")
    restarts = any(a.kind in ("restart", "start") for a in plan.actions)
    if restarts and ctx.short_runs >= 3 and plan.pattern not in ("crash_loop", "startup_failure"):
        blocks.append(f"{plan.service} died {ctx.short_runs} times shortly after starting: a plain restart would feed a restart storm; back off instead")
    if ctx.dependencies_down and any(a.kind in ("restart", "start", "terminate") for a in plan.actions):
        blocks.append(f"{', '.join(ctx.dependencies_down)} is down: heal the dependency first")
    return _verdict("L2", "evidence and logic", blocks, warns, passes)


def l3_practice(plan: FixPlan, ctx: GuardContext) -> Verdict:
    blocks, warns, passes = [], [], []
    catalogue = action_catalogue()
    gentle: set[int] = set()
    for action in plan.actions:
        spec = catalogue[action.kind]
        if spec.forceful and action.target is not None and action.target.pid not in gentle:
            warns.append(f"{action.kind} on pid {action.target.pid} without trying a graceful stop first")
        if action.target is not None and not spec.forceful:
            gentle.add(action.target.pid)
    if ctx.started_at is not None and ctx.now - ctx.started_at < ctx.start_grace and plan.pattern not in (
        "crashed", "crash_loop", "startup_failure", "hung", "port_conflict_foreign", "port_conflict_stale",
    ):
        warns.append(f"{plan.service} started {ctx.now - ctx.started_at:.1f}s ago, within its {ctx.start_grace:g}s start grace")
    if not ctx.auto_heal and not ctx.human:
        warns.append("automatic healing is off (auto_heal = false): every fix waits for a human")
    risk = plan.risk
    if risk == "high":
        warns.append("high-risk plan: it always waits for a human")
    elif risk == "medium":
        earned = ctx.belief is not None and ctx.belief.successes >= 3 and ctx.belief.mean >= 0.8
        if earned:
            passes.append("medium risk, but this fix has earned automatic approval by working before")
        else:
            warns.append("medium-risk plan: it runs on its own only once it has worked at least 3 times (80%+)")
    else:
        passes.append("low-risk plan")
    if not warns:
        passes.append("graceful before forceful, outside any start grace")
    return _verdict("L3", "best practice", blocks, warns, passes)


LEVELS = (l1_safety, l2_evidence, l3_practice)


def judge(plan: FixPlan, ctx: GuardContext) -> Judgement:
    verdicts: list[Verdict] = []
    blocked = False
    for level in LEVELS:
        if blocked:
            name = {"l2_evidence": ("L2", "evidence and logic"), "l3_practice": ("L3", "best practice")}[level.__name__]
            verdicts.append(Verdict(name[0], name[1], SKIPPED, ["not reached: an earlier guardian blocked the plan"]))
            continue
        verdict = level(plan, ctx)
        verdicts.append(verdict)
        blocked = verdict.outcome == BLOCK
    if blocked:
        reasons = [r for v in verdicts if v.outcome == BLOCK for r in v.reasons]
        return Judgement("block", verdicts, reasons)
    warns = [r for v in verdicts if v.outcome == WARN for r in v.reasons]
    if ctx.human:
        # An operator's request or approval settles the warnings; only a block can stop it.
        return Judgement("run", verdicts, ["approved by a human"] + warns)
    if warns:
        return Judgement("wait", verdicts, warns)
    return Judgement("run", verdicts, ["all three guardians passed"])

