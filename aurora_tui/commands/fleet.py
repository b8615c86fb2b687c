"""The fleet through the running engine: status, restart/stop/start, chaos, logs and events."""
from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Awaitable, Callable

from ..core.api import ActionResult, EngineAPI
from ..core.format import STATE_GLYPHS, bytes_h, duration_h, health_h, next_try_h, percent_h
from ..core.remote import RemoteEngine
from .common import on_engine, print_json, run_on, target_options

STATUS_FIELDS = ("name", "state", "pid", "port", "healthy", "restarts", "uptime", "cpu", "rss", "next_try_at")
# The verb on the command line -> the EngineAPI method that does it.
SERVICE_ACTIONS: dict[str, Callable[[EngineAPI, str], Awaitable[ActionResult]]] = {
    "restart": lambda engine, service: engine.restart(service),
    "stop": lambda engine, service: engine.stop_service(service),
    "start": lambda engine, service: engine.start_service(service),
}


def register(sub: argparse._SubParsersAction) -> None:
    status_p = sub.add_parser("status", help="the fleet as the running engine sees it")
    target_options(status_p)
    status_p.add_argument("--json", action="store_true")
    status_p.set_defaults(func=status)

    for verb in SERVICE_ACTIONS:
        p = sub.add_parser(verb, help=f"{verb} a service through the running engine")
        target_options(p)
        p.add_argument("service")
        p.set_defaults(func=service_action)

    chaos_p = sub.add_parser("chaos", help="cause a real fault in a service (kill, stop, cont, or a demo fault switch)")
    target_options(chaos_p)
    chaos_p.add_argument("fault")
    chaos_p.add_argument("service")
    chaos_p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="fault parameter, repeatable")
    chaos_p.set_defaults(func=chaos)

    logs_p = sub.add_parser("logs", help="the tail of a service's output")
    target_options(logs_p)
    logs_p.add_argument("service")
    logs_p.add_argument("-n", "--lines", type=int, default=50)
    logs_p.set_defaults(func=logs)

    events_p = sub.add_parser("events", help="recent engine events")
    target_options(events_p)
    events_p.add_argument("-n", "--limit", type=int, default=30)
    events_p.add_argument("--service")
    events_p.add_argument("--json", action="store_true")
    events_p.set_defaults(func=events)


@on_engine
async def status(engine: RemoteEngine, args: argparse.Namespace) -> int:
    snapshot = await engine.snapshot()
    services = snapshot.services
    if args.json:
        print_json([{k: getattr(s, k) for k in STATUS_FIELDS} for s in services])
        return 0
    header = f"{'NAME':<16} {'STATE':<11} {'PID':>7} {'PORT':>5}  {'HEALTH':<9} {'RESTARTS':>8} {'UPTIME':>8} {'CPU':>7} {'RSS':>7}"
    print(header)
    now = time.time()
    for s in services:
        state = f"{STATE_GLYPHS.get(s.state, '?')} {s.state}"
        # A service waiting out a back-off says when it is tried next, so a wait never looks like giving up.
        note = next_try_h(s.next_try_at, now)
        print(
            f"{s.name:<16} {state:<11} {s.pid or '-':>7} {s.port or '-':>5}  "
            f"{health_h(s.healthy, s.latency_ms):<9} {s.restarts:>8} {duration_h(s.uptime):>8} "
            f"{percent_h(s.cpu):>7} {bytes_h(s.rss):>7}" + (f"  {note}" if note else "")
        )
    print(f"\n{snapshot.healthy_count}/{len(services)} healthy · engine pid {snapshot.engine_pid} · {snapshot.scans} scans every {snapshot.interval:g}s")
    for problem in snapshot.storage:  # what Aurora cannot write right now: supervision goes on regardless
        cost = (f"{problem.dropped_bytes} bytes of output dropped" if problem.kind == "log"
                else f"{problem.queued} writes waiting, {problem.dropped_writes} dropped")
        print(f"storage: {problem.kind} {problem.path}: {problem.error} ({cost})")
    return 0


@on_engine
async def service_action(engine: RemoteEngine, args: argparse.Namespace) -> int:
    result = await SERVICE_ACTIONS[args.command](engine, args.service)
    health = "healthy" if result.healthy else "not healthy"
    pid = f" pid {result.pid}" if result.pid else ""
    print(f"{result.service}: {result.state}{pid}, {health}")
    return 0


def chaos(args: argparse.Namespace) -> int:
    # A malformed --param is refused before the engine is asked anything.
    params = dict(_key_value(p) for p in args.param)
    result = run_on(args, lambda engine: engine.chaos(args.fault, args.service, params))
    print(f"{args.fault} caused in {args.service} (pid {result.pid})")
    return 0


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"aurora: --param takes KEY=VALUE, got {text!r}")
    return key, value


@on_engine
async def logs(engine: RemoteEngine, args: argparse.Namespace) -> int:
    for line in await engine.logs(args.service, lines=args.lines):
        print(line)
    return 0


@on_engine
async def events(engine: RemoteEngine, args: argparse.Namespace) -> int:
    rows = await engine.recent_events(limit=args.limit, service=args.service)
    if args.json:
        print_json(rows)
        return 0
    for row in reversed(rows):
        stamp = datetime.fromtimestamp(row.ts).strftime("%H:%M:%S")
        print(f"{stamp}  {row.kind:<18} {row.message}")
    return 0
