"""The guardians, plans and learning as pure functions: every rule, and the chain."""
from __future__ import annotations

import os

import pytest

from aurora_tui.core.diagnose import Diagnosis
from aurora_tui.core.guardians import Belief, GuardContext, judge
from aurora_tui.core.learning import refused, update
from aurora_tui.core.plans import Action, FixPlan, ProcessTarget, action_catalogue, build_plan
from aurora_tui.core.patterns import load_patterns

ME = os.getuid()
OWNED = ProcessTarget(500, 1.0, ("python3", "-m", "svc"), ME, True, "service")
FOREIGN = ProcessTarget(600, 1.0, ("nc", "-l", "8080"), ME, False, "port holder")


def ctx(**kw) -> GuardContext:
    base = dict(
        now=1000.0, aurora_pid=os.getpid(), aurora_uid=ME, protected_pids=frozenset({1, os.getpid()}),
        owned_pids=frozenset({500}), human=False, auto_confidence=7, interval=15.0, recent_actions=0, recent_actions_global=0,
    )
    base.update(kw)
    return GuardContext(**base)


def plan(*actions: Action, pattern: str = "crashed", confidence: int = 8, evidence_at: float = 1000.0) -> FixPlan:
    return FixPlan("svc", pattern, 1, list(actions), confidence, "why", {}, evidence_at)


def outcomes(j) -> list[str]:
    return [v.outcome for v in j.verdicts]


def test_a_confident_low_risk_fix_runs():
    j = judge(plan(Action("restart", "svc")), ctx())
    assert j.decision == "run" and outcomes(j) == ["pass", "pass", "pass"]


# Named, not numbered: a parameter must not depend on which process collects the tests.
@pytest.mark.parametrize("who", ["pid 1", "aurora itself"])
def test_pid_1_and_aurora_itself_are_never_touched_even_with_approval(who):
    pid = 1 if who == "pid 1" else os.getpid()
    target = ProcessTarget(pid, 1.0, ("x",), ME, True, "service")
    for human in (False, True):
        j = judge(plan(Action("kill", "svc", target), pattern="hung"), ctx(human=human))
        assert j.decision == "block" and outcomes(j) == ["block", "skipped", "skipped"]
        assert "never touched" in j.reasons[0]


def test_another_users_process_is_blocked_even_with_approval():
    target = ProcessTarget(700, 1.0, ("x",), ME + 1, False, "port holder")
    j = judge(plan(Action("free_port", "svc", target), pattern="port_conflict_foreign"), ctx(human=True))
    assert j.decision == "block" and "another user" in j.reasons[0]


def test_a_foreign_process_needs_a_human_and_then_may_be_touched():
    p = plan(Action("free_port", "svc", FOREIGN), Action("start", "svc"), pattern="port_conflict_foreign")
    assert p.risk == "high"
    j = judge(p, ctx())
    assert j.decision == "wait" and "needs a human" in j.verdicts[0].reasons[0]
    assert judge(p, ctx(human=True)).decision == "run"


def test_rate_limits_block_automatic_actions_but_not_an_operator():
    p = plan(Action("restart", "svc"))
    assert judge(p, ctx(recent_actions=5)).decision == "block"
    assert judge(p, ctx(recent_actions_global=20)).decision == "block"
    assert judge(p, ctx(recent_actions=5, human=True)).decision == "run"


def test_l2_confidence_freshness_and_fit():
    assert judge(plan(Action("restart", "svc"), confidence=2), ctx()).decision == "block"
    assert judge(plan(Action("restart", "svc"), confidence=6), ctx()).decision == "wait"
    stale = judge(plan(Action("restart", "svc"), evidence_at=0.0), ctx())
    assert stale.decision == "wait" and any("re-checked" in r for r in stale.reasons)
    odd = judge(plan(Action("rotate_logs", None)), ctx())
    assert odd.decision == "wait" and any("not the usual fix" in r for r in odd.reasons)


def test_no_restart_storm_in_a_crash_loop_and_dependencies_first():
    j = judge(plan(Action("restart", "svc")), ctx(short_runs=3))
    assert j.decision == "block" and "restart storm" in j.reasons[0]
    assert judge(plan(Action("notify", "svc"), Action("backoff", "svc"), pattern="crash_loop"), ctx(short_runs=5)).decision == "run"
    j = judge(plan(Action("restart", "svc"), pattern="http_errors"), ctx(dependencies_down=("db",)))
    assert j.decision == "block" and "heal the dependency first" in j.reasons[0]


def test_learned_failure_makes_a_fix_wait():
    bad = Belief(alpha=1, beta=6, successes=0, failures=5)
    j = judge(plan(Action("restart", "svc"), pattern="http_errors"), ctx(belief=bad))
    assert j.decision == "wait" and any("has not worked" in r for r in j.reasons)


def test_graceful_before_forceful_start_grace_and_risk_classes():
    j = judge(plan(Action("kill", "svc", OWNED), pattern="hung"), ctx())
    assert j.decision == "wait" and any("without trying a graceful stop" in r for r in j.reasons)
    ok = judge(plan(Action("terminate", "svc", OWNED), Action("kill", "svc", OWNED), pattern="hung"), ctx())
    assert not any("graceful" in r for r in ok.reasons if "without" in r)
    young = judge(plan(Action("restart", "svc"), pattern="http_errors"), ctx(started_at=998.0, start_grace=10.0))
    assert young.decision == "wait" and any("start grace" in r for r in young.reasons)
    assert judge(plan(Action("restart", "svc"), pattern="health_content_mismatch"), ctx()).decision == "run"
    stop = judge(plan(Action("stop", "svc"), pattern="crashed"), ctx())
    assert stop.decision == "wait" and any("high-risk" in r for r in stop.reasons)


def test_medium_risk_runs_on_its_own_only_once_earned():
    p = plan(Action("restart", "svc"), pattern="high_cpu")  # the action is low-risk, the pattern's fix is not
    assert p.risk == "medium"
    assert judge(p, ctx()).decision == "wait"
    earned = Belief(alpha=9, beta=1, successes=8)
    assert judge(p, ctx(belief=earned)).decision == "run"


def test_auto_heal_off_makes_everything_wait():
    assert judge(plan(Action("restart", "svc")), ctx(auto_heal=False)).decision == "wait"
    assert judge(plan(Action("restart", "svc")), ctx(auto_heal=False, human=True)).decision == "run"


def test_learning_updates_and_refusal():
    b = Belief()
    b = update(b, "success")
    b = update(b, "failure")
    b = update(b, "graded", 9)
    assert (b.successes, b.failures) == (1, 1) and b.alpha == pytest.approx(2.9) and b.beta == pytest.approx(2.1)
    rejected = Belief()
    for _ in range(2):
        rejected = update(rejected, "rejected")
    assert not refused(rejected)  # twice is an opinion
    rejected = update(rejected, "rejected")
    assert rejected.rejections == 3 and rejected.mean == pytest.approx(0.2) and refused(rejected)
    assert not refused(update(update(update(b, "rejected"), "rejected"), "rejected"))  # it also worked before
    with pytest.raises(ValueError):
        update(b, "graded", 11)


def d(pattern: str, **evidence) -> Diagnosis:
    p = load_patterns()[pattern]
    return Diagnosis("svc", pattern, p.title, p.severity, "cause", 8, {}, evidence, 1.0, p.actions, p.risk)


def test_plans_follow_the_catalogue_and_aim_at_identified_targets():
    assert set(action_catalogue()) == {
        "restart", "start", "stop", "terminate", "kill", "free_port", "reap_zombies", "backoff", "throttle_probes",
        "rotate_logs", "rollback", "notify", "start_command", "stop_command",
    }
    for pattern in load_patterns().values():
        assert set(pattern.actions) <= set(action_catalogue()), pattern.id
    hung = build_plan(d("hung"), 1, {"service": [OWNED]}, 1.0)
    assert hung.fix == "terminate+start" and hung.actions[0].target == OWNED
    port = build_plan(d("port_conflict_foreign", holder_pid=600), 1, {"port holder": [FOREIGN]}, 1.0)
    assert port.fix == "free_port+start" and port.risk == "high"
    gone_holder = build_plan(d("port_conflict_foreign", holder_pid=600), 1, {}, 1.0)
    assert gone_holder.fix == "start"
    assert build_plan(d("dependency_down"), 1, {}, 1.0) is None
    refused_fix = build_plan(d("high_cpu"), 1, {}, 1.0, refused_fixes={"restart"})
    assert refused_fix.fix == "notify" and refused_fix.actions[0].params == {"instead_of": "restart"}
    round_trip = Action.from_dict(port.actions[0].to_dict())
    assert round_trip.target == FOREIGN and round_trip.kind == "free_port"
