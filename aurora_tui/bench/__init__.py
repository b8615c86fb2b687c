"""Benchmarks shipped with Aurora, so ``aurora bench`` and ``make bench`` measure the same code."""
from __future__ import annotations

import inspect
import json
from typing import Any

from . import chaos, console, detect, faults, recovery, route, scale, scan

BENCHMARKS = {"scan": scan.run, "detect": detect.run, "recovery": recovery.run, "chaos": chaos.run, "console": console.run, "route": route.run, "faults": faults.run, "scale": scale.run}


def run_benchmark(name: str, as_json: bool = False, trials: int | None = None, services: int | None = None) -> int:
    run = BENCHMARKS[name]
    kwargs: dict[str, Any] = {}
    if trials is not None and "trials" in inspect.signature(run).parameters:
        kwargs["trials"] = trials
    if services is not None and "services" in inspect.signature(run).parameters:
        kwargs["services"] = services
    result = run(**kwargs)
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "report"}, indent=2, default=str))
    else:
        print(result["report"])
    return 0
