"""Benchmarks shipped with Aurora, so ``aurora bench`` and ``make bench`` measure the same code."""
from __future__ import annotations

import json

from . import detect, recovery, scan

BENCHMARKS = {"scan": scan.run, "detect": detect.run, "recovery": recovery.run}


def run_benchmark(name: str, as_json: bool = False) -> int:
    result = BENCHMARKS[name]()
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(result["report"])
    return 0
