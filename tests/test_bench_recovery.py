"""Smoke test of the kill -9 recovery benchmark: the floor and Aurora parts, with real processes.

supervisord is left out (it would need a pip install and half a minute); the fixture in conftest.py
fails the test if any process started here survives it.
"""
from __future__ import annotations

from aurora_tui.bench import BENCHMARKS, recovery


def test_recovery_benchmark_floor_and_aurora():
    result = recovery.run(trials=2, include_supervisord=False, flaky_seconds=5.0)  # wide enough for two starts on a loaded machine
    assert result["benchmark"] == "recovery"
    floor, aurora = result["floor"], result["aurora"]
    assert floor["n"] == 2 and aurora["n"] == 2 and aurora["failed"] == 0
    # The figures are reported, not judged here: a smoke test asserts no duration.
    assert all(len(s["samples_ms"]) == 2 and all(x > 0 for x in s["samples_ms"]) for s in (floor, aurora))
    assert "aurora_over_floor" in result and "target_met" in result
    # A SIGSTOPped service is stopped by the SIGTERM it was sent (with SIGCONT), never by the SIGKILL.
    frozen = result["aurora_stop_frozen"]
    assert frozen["n"] == 2 and frozen["escalated"] == 0
    assert "skipped" in result["supervisord"]
    # The flaky program keeps being retried by Aurora: at least two starts in the window, never given up.
    flaky = result["aurora_flaky"]
    assert flaky["starts"] >= 2 and not flaky["gave_up"]
    report = result["report"]
    assert "cold-start floor" in report and "Aurora (kill -9 -> healthy)" in report and "still retrying" in report
    assert "Aurora stop of a SIGSTOPped service" in report
    assert BENCHMARKS["recovery"] is recovery.run
