"""Smoke tests of the chaos benchmark: a couple of its faults, one trial each, with real processes.

The conftest.py fixture fails a test if any process started here (a squatter, a daemon, nginx) survives it.
"""
from __future__ import annotations

import pytest

from aurora_tui.bench import BENCHMARKS, chaos, outside

pytestmark = pytest.mark.timeout(240)


def test_an_outside_kill_and_the_fds_switch_are_healed_and_reported_apart():
    result = chaos.run(trials=1, only=["kill -9", "fds"])
    rows = {r["fault"]: r for r in result["rows"]}
    assert set(rows) == {"kill -9", "fds"}
    assert rows["kill -9"]["source"] == chaos.OUTSIDE and rows["fds"]["source"] == chaos.DEMO
    for row in rows.values():
        assert row["detected"] and row["outcome"] == "healed" and not row["failed"], row
        assert all(p["decided_by"] == "guardians" for p in row["plans"]), row["plans"]
    summary = result["summary"]
    assert summary[chaos.OUTSIDE]["trials"] == 1 and summary[chaos.DEMO]["trials"] == 1
    assert summary["all"]["unsafe_actions"] == 0
    report = result["report"]
    assert report.index("faults caused from outside the service") < report.index("kill -9") < report.index("the demo's own fault switches")
    assert report.index("the demo's own fault switches") < report.index("/fault/fds")
    assert "outside faults: detected 1/1" in report and "demo switches: detected 1/1" in report
    assert BENCHMARKS["chaos"] is chaos.run


def test_the_fds_switch_meets_the_default_threshold():
    # Nothing in the benchmark lowers the fd_exhaustion threshold any more.
    fds = next(f for f in chaos.FAULTS if f.name == "fds")
    assert fds.limits is None


@pytest.mark.skipif(outside.NO_NGINX is not None, reason=outside.NO_NGINX or "")
def test_nginx_404_counts_as_escalated_only_because_an_escalation_was_sent():
    result = chaos.run(trials=1, only=["nginx 404"])
    (row,) = result["rows"]
    assert row["detected"] and row["outcome"] == "escalated" and not row["failed"], row
    # A notify plan, run by Aurora: the escalation was really sent, and nothing was restarted.
    assert [(p["fix"], p["status"]) for p in row["plans"]] == [("notify", "escalated")], row["plans"]


def _row(fault: str, outcome: str | None, detected: bool = True) -> dict:
    expect = next(f.expect for f in chaos.FAULTS if f.name == fault)
    good = {"heal": "healed", "escalate": "escalated"}[expect]
    return {"fault": fault, "service": "s", "detected": detected, "outcome": outcome, "ttd": 1.0 if detected else None,
            "ttr": None, "seen": [], "failed": outcome != good}


def test_escalated_counts_only_escalations_and_an_unexpected_outcome_fails_the_row():
    rows = [
        _row("cpu", "healed"),  # Aurora restarted on its own what needed a human: a failure, not an escalation
        _row("cpu", None),  # nobody was asked
        _row("slow", "escalated"),
        _row("kill -9", "escalated"),  # it waited for a human, but should have healed on its own
    ]
    result = chaos.summarize(rows, trials=2, skipped={"nginx 404": "nginx not installed"})
    summary = result["summary"]
    assert summary[chaos.DEMO]["escalated_correctly"] == 1 and summary[chaos.DEMO]["failed"] == 2
    assert summary[chaos.OUTSIDE]["healed"] == 0 and summary[chaos.OUTSIDE]["failed"] == 1
    assert "nginx 404" in result["report"] and "skipped: nginx not installed" in result["report"]
