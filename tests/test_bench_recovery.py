"""Smoke test of the kill -9 recovery benchmark: the floor and Aurora parts, with real processes.

supervisord is left out (it would need a pip install and half a minute); the fixture in conftest.py
fails the test if any process started here survives it.
"""
from __future__ import annotations

from aurora_tui.bench import BENCHMARKS, recovery


def test_recovery_benchmark_floor_and_aurora():
    result = recovery.run(trials=2, include_supervisord=False, flaky_seconds=3.0)
    assert result["benchmark"] == "recovery"
    floor, aurora = result["floor"], result["aurora"]
    assert floor["n"] == 2 and aurora["n"] == 2 and aurora["failed"] == 0
    assert 0 < floor["median_ms"] < 10_000
    assert floor["median_ms"] * 0.5 < aurora["median_ms"] < 10_000
    assert "skipped" in result["supervisord"]
    # The flaky program keeps being retried by Aurora: at least two starts in 3 s, never given up.
    flaky = result["aurora_flaky"]
    assert flaky["starts"] >= 2 and not flaky["gave_up"]
    report = result["report"]
    assert "cold-start floor" in report and "Aurora (kill -9 -> healthy)" in report and "still retrying" in report
    assert BENCHMARKS["recovery"] is recovery.run
