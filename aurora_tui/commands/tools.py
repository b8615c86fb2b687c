"""Commands that need no engine: the dispatcher's routing and catalogue, and the benchmarks."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.config import demo_config, load_config

ROUTE_FIELDS = ("type", "confidence", "program", "tiers", "modules", "action", "target", "refusal", "did_you_mean", "why")


def register(sub: argparse._SubParsersAction) -> None:
    route_p = sub.add_parser("route", help="route a message as the dispatcher would, without acting (no engine needed)")
    route_p.add_argument("message", nargs="?", help="the message (default: one per line from stdin)")
    route_p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="take the service names from this config (default: the demo fleet)")
    route_p.add_argument("--json", action="store_true", help="one JSON object per message")
    route_p.set_defaults(func=route)

    catalogue_p = sub.add_parser("catalogue", help="the dispatcher's programs, tiers and modules")
    catalogue_p.add_argument("--json", action="store_true", help="the full catalogue as JSON")
    catalogue_p.set_defaults(func=catalogue)

    bench_p = sub.add_parser("bench", help="run the benchmarks")
    bench_p.add_argument("name", nargs="?", default="scan", choices=["scan", "detect", "recovery", "chaos", "console", "route", "faults", "scale"])
    bench_p.add_argument("--trials", type=int, help="trials per case (chaos, recovery, scale)")
    bench_p.add_argument("--services", type=int, help="how many services (scale; default 200)")
    bench_p.add_argument("--json", action="store_true")
    bench_p.set_defaults(func=bench)


def route(args: argparse.Namespace) -> int:
    from ..core.dispatch.router import route as route_message, warm

    config = load_config(args.config) if args.config else demo_config()
    services = [s.name for s in config.services]
    warm()
    messages = [args.message] if args.message is not None else (line.rstrip("\r\n") for line in sys.stdin)
    for message in messages:
        r = route_message(message, services)
        if args.json:
            print(json.dumps({k: getattr(r, k) for k in ROUTE_FIELDS}), flush=True)
            continue
        program = f"#{r.program['id']} {r.program['name']}" if r.program else "no program"
        command = f" · {r.action}" + (f" {r.target}" if r.target else "") if r.action else ""
        refusal = f" · refused: {r.refusal}" if r.refusal else ""
        tiers = ", ".join(str(t["id"]) for t in r.tiers) or "-"
        print(f"{r.type} {r.confidence:.0%} · {program} · tiers {tiers}{command}{refusal}", flush=True)
    return 0


def catalogue(args: argparse.Namespace) -> int:
    from ..core.catalogue import Catalogue

    cat = Catalogue.load()
    if args.json:
        print(json.dumps(cat.as_json(), indent=2))
        return 0
    counts = cat.counts()
    print(f"{counts['programs']} programs ({counts['live_programs']} live) in {len({p.group for p in cat.programs})} groups")
    print(f"{counts['tiers']} tiers ({counts['foundation_tiers']} foundation, {counts['grandmaster_tiers']} grandmaster)")
    print(f"{counts['modules']} modules: " + ", ".join(f"{k} {v}" for k, v in counts["module_categories"].items()))
    print(f"{counts['patterns']} issue patterns")
    return 0


def bench(args: argparse.Namespace) -> int:
    from ..bench import run_benchmark

    return run_benchmark(args.name, as_json=args.json, trials=args.trials, services=args.services)
