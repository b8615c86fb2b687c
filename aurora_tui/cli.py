"""The ``aurora`` command line: the console, the headless engine, and commands against a running engine.

Exit statuses: 0 success, 1 the engine is not running or refused, 2 bad usage or a bad config.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from .core.config import Config, ConfigError, Settings, demo_config, demo_config_text, load_config, with_overrides
from .core.control import ControlError, NoEngine, call_engine
from .core.format import STATE_GLYPHS, bytes_h, duration_h, health_h, parse_duration, percent_h

STATUS_FIELDS = ("name", "state", "pid", "port", "healthy", "restarts", "uptime", "cpu", "rss")
INCIDENT_FIELDS = ("id", "service", "pattern", "status", "confidence", "opened_at", "resolved_at", "count", "summary", "evidence")
PLAN_FIELDS = ("id", "service", "pattern", "actions", "confidence", "risk", "verdicts")


def _grade(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10:
        raise argparse.ArgumentTypeError(f"a grade is a whole number from 1 to 10, got {text!r}")
    return int(text)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (default: the built-in demo fleet)")
    p.add_argument("--db", type=Path, help="SQLite database (default: from the config, else the per-user data dir)")
    p.add_argument("--interval", type=_positive_float, help="seconds between full scans (default: from the config, 15)")


def _target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, help="database of the running engine (default: the per-user one)")
    p.add_argument("--config", type=Path, help="take the database path from this config file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aurora", description="Aurora: supervise, diagnose and heal a fleet of services.")
    _engine_options(parser)
    parser.add_argument(
        "--attach", action="store_true",
        help="open the console on the engine already running on --db (aurora run --headless); quitting leaves it running",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the engine without a console (until SIGTERM/SIGINT)")
    _engine_options(run)
    run.add_argument("--headless", action="store_true", required=True, help="no console (required)")

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path)

    demo = sub.add_parser("demo-config", help="print the demo fleet as a config file")
    demo.add_argument("--port-offset", type=int, default=0, help="shift every demo port by N")

    status = sub.add_parser("status", help="the fleet as the running engine sees it")
    _target_options(status)
    status.add_argument("--json", action="store_true")

    for verb in ("restart", "stop", "start"):
        p = sub.add_parser(verb, help=f"{verb} a service through the running engine")
        _target_options(p)
        p.add_argument("service")

    chaos = sub.add_parser("chaos", help="cause a real fault in a service (kill, stop, cont, or a demo fault switch)")
    _target_options(chaos)
    chaos.add_argument("fault")
    chaos.add_argument("service")
    chaos.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="fault parameter, repeatable")

    logs = sub.add_parser("logs", help="the tail of a service's output")
    _target_options(logs)
    logs.add_argument("service")
    logs.add_argument("-n", "--lines", type=int, default=50)

    events = sub.add_parser("events", help="recent engine events")
    _target_options(events)
    events.add_argument("-n", "--limit", type=int, default=30)
    events.add_argument("--service")
    events.add_argument("--json", action="store_true")

    incidents = sub.add_parser("incidents", help="incidents, newest first (reads the database; no engine needed)")
    _target_options(incidents)
    incidents.add_argument("--json", action="store_true")
    incidents.add_argument("--service")
    incidents.add_argument("--pattern")
    incidents.add_argument("--since", type=_duration, help="only those opened within this long, e.g. 1h")
    incidents.add_argument("--open", action="store_true", help="only incidents that are not resolved")
    incidents.add_argument("-n", "--limit", type=int, default=50)

    incident = sub.add_parser("incident", help="one incident with its timeline")
    _target_options(incident)
    incident.add_argument("id", type=int)
    incident.add_argument("--json", action="store_true")

    ack = sub.add_parser("ack", help="acknowledge an incident")
    _target_options(ack)
    ack.add_argument("id", type=int)

    silence = sub.add_parser("silence", help="open no new incidents for a service for a while")
    _target_options(silence)
    silence.add_argument("service", help="a service name, or (host) for host-level patterns")
    silence.add_argument("--for", dest="duration", type=_duration, required=True, help="e.g. 30m, 2h")
    silence.add_argument("--reason", default="")

    unsilence = sub.add_parser("unsilence", help="lift a service's silence")
    _target_options(unsilence)
    unsilence.add_argument("service")

    approvals = sub.add_parser("approvals", help="fix plans waiting for the operator")
    _target_options(approvals)
    approvals.add_argument("--json", action="store_true")
    approvals.add_argument("--all", action="store_true", help="every plan, not only pending ones")
    approvals.add_argument("-n", "--limit", type=int, default=50)

    approve = sub.add_parser("approve", help="approve a pending fix plan")
    _target_options(approve)
    approve.add_argument("id", type=int)
    approve.add_argument("--grade", type=_grade)
    approve.add_argument("--comment", default="")

    reject = sub.add_parser("reject", help="reject a pending fix plan")
    _target_options(reject)
    reject.add_argument("id", type=int)
    reject.add_argument("--reason", required=True)

    grade = sub.add_parser("grade", help="grade a decided fix plan 1-10")
    _target_options(grade)
    grade.add_argument("id", type=int)
    grade.add_argument("grade", type=_grade)

    learning = sub.add_parser("learning", help="what Aurora has learned about each fix")
    _target_options(learning)
    learning.add_argument("--json", action="store_true")
    learning.add_argument("--export", type=Path, metavar="FILE", help="write it to FILE as JSON")
    learning.add_argument("--import", dest="import_file", type=Path, metavar="FILE", help="load beliefs from FILE")

    route = sub.add_parser("route", help="route a message as the dispatcher would, without acting (no engine needed)")
    route.add_argument("message", nargs="?", help="the message (default: one per line from stdin)")
    route.add_argument("--config", type=Path, help="take the service names from this config (default: the demo fleet)")
    route.add_argument("--json", action="store_true", help="one JSON object per message")

    catalogue = sub.add_parser("catalogue", help="the dispatcher's programs, tiers and modules")
    catalogue.add_argument("--json", action="store_true", help="the full catalogue as JSON")

    bench = sub.add_parser("bench", help="run the benchmarks")
    bench.add_argument("name", nargs="?", default="scan", choices=["scan", "detect", "recovery", "chaos", "console", "route"])
    bench.add_argument("--trials", type=int, help="trials per case (chaos, recovery)")
    bench.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"aurora: bad config\n{exc}", file=sys.stderr)
        return 2
    except NoEngine as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return 1
    except ControlError as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command is None:
        if args.attach:
            from .app import run_attached

            return run_attached(_target_db(args))
        return _console(_load(args))
    if command == "run":
        return asyncio.run(run_headless(_load(args)))
    if command == "check-config":
        config = load_config(args.file)
        managed = sum(1 for s in config.services if s.managed)
        print(f"{args.file}: ok ({len(config.services)} services, {managed} managed)")
        return 0
    if command == "demo-config":
        sys.stdout.write(demo_config_text(args.port_offset))
        return 0
    if command == "route":
        return _route(args)
    if command == "catalogue":
        return _catalogue(args.json)
    if command == "bench":
        from .bench import run_benchmark

        return run_benchmark(args.name, as_json=args.json, trials=args.trials)
    db = _target_db(args)
    if command == "status":
        return _print_status(call_engine(db, "status"), args.json)
    if command in ("restart", "stop", "start"):
        result = call_engine(db, command, timeout=120, service=args.service)
        health = "healthy" if result.get("healthy") else "not healthy"
        pid = f" pid {result['pid']}" if result.get("pid") else ""
        print(f"{result['service']}: {result['state']}{pid}, {health}")
        return 0
    if command == "chaos":
        params = dict(_key_value(p) for p in args.param)
        result = call_engine(db, "chaos", fault=args.fault, service=args.service, params=params)
        print(f"{args.fault} caused in {args.service} (pid {result.get('pid')})")
        return 0
    if command == "incidents":
        return _print_incidents(db, args)
    if command == "incident":
        return _print_incident(db, args.id, args.json)
    if command == "ack":
        result = call_engine(db, "acknowledge", incident_id=args.id)
        print(f"incident #{result['id']} acknowledged ({result['pattern']} on {result['service']})")
        return 0
    if command == "silence":
        result = call_engine(db, "silence", service=args.service, duration_s=args.duration, reason=args.reason)
        print(f"{args.service} silenced for {duration_h(args.duration)}: {result['reason']}")
        return 0
    if command == "unsilence":
        result = call_engine(db, "unsilence", service=args.service)
        print(f"{args.service}: silence lifted" if result["removed"] else f"{args.service} was not silenced")
        return 0
    if command == "approvals":
        return _print_plans(call_engine(db, "plans", status=None if args.all else "pending", limit=args.limit), args.json)
    if command == "approve":
        row = call_engine(db, "approve", plan_id=args.id, grade=args.grade, comment=args.comment)
        print(f"plan #{row['id']} ({row['fix']} for {row['pattern']} on {row['service']}): {row['status']}")
        return 0
    if command == "reject":
        row = call_engine(db, "reject", plan_id=args.id, reason=args.reason)
        print(f"plan #{row['id']} ({row['fix']} for {row['pattern']} on {row['service']}): {row['status']}")
        return 0
    if command == "grade":
        row = call_engine(db, "grade", plan_id=args.id, grade=args.grade)
        print(f"plan #{row['id']} graded {row['grade']}/10")
        return 0
    if command == "learning":
        return _learning(db, args)
    if command == "logs":
        for line in call_engine(db, "logs", service=args.service, lines=args.lines):
            print(line)
        return 0
    if command == "events":
        rows = call_engine(db, "events", limit=args.limit, service=args.service)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            from datetime import datetime

            for row in reversed(rows):
                stamp = datetime.fromtimestamp(row["ts"]).strftime("%H:%M:%S")
                print(f"{stamp}  {row['kind']:<18} {row['message']}")
        return 0
    raise AssertionError(command)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"aurora: --param takes KEY=VALUE, got {text!r}")
    return key, value


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config) if args.config else demo_config()
    return with_overrides(config, db=args.db, interval=getattr(args, "interval", None))


def _target_db(args: argparse.Namespace) -> Path:
    if args.db:
        return args.db.resolve()
    if args.config:
        return Path(load_config(args.config).settings.db)
    return Settings().db


def _read_db(db: Path):
    """A read-only connection: the engine stays the only writer, and reading works without it."""
    import sqlite3

    if not db.exists():
        raise NoEngine(f"no Aurora database at {db}")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def _print_incidents(db: Path, args: argparse.Namespace) -> int:
    import time as _time

    from .core.incidents import incident_query, incident_row

    since = _time.time() - args.since if args.since else None
    sql, params = incident_query(service=args.service, pattern=args.pattern, open_only=args.open, since=since, limit=args.limit)
    with contextlib.closing(_read_db(db)) as conn:
        rows = [incident_row(r) for r in conn.execute(sql, params)]
    if args.json:
        print(json.dumps([{k: r[k] for k in INCIDENT_FIELDS} for r in rows], indent=2))
        return 0
    if not rows:
        print("no incidents")
        return 0
    now = _time.time()
    print(f"{'ID':>5}  {'STATUS':<17} {'CONF':>4} {'COUNT':>5} {'AGE':>7}  {'SERVICE':<14} {'PATTERN':<24} SUMMARY")
    for r in rows:
        print(
            f"{r['id']:>5}  {r['status']:<17} {r['confidence']:>4} {r['count']:>5} {duration_h(now - r['opened_at']):>7}  "
            f"{r['service']:<14} {r['pattern']:<24} {r['summary'][:90]}"
        )
    return 0


def _print_incident(db: Path, incident_id: int, as_json: bool) -> int:
    from datetime import datetime

    from .core.incidents import INCIDENT_FIELDS as COLUMNS, incident_row

    with contextlib.closing(_read_db(db)) as conn:
        row = conn.execute(f"SELECT {COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            print(f"aurora: no incident #{incident_id}", file=sys.stderr)
            return 1
        incident = incident_row(row)
        timeline = [dict(e) | {"data": json.loads(e["data_json"])} for e in conn.execute(
            "SELECT ts, kind, message, data_json FROM incident_events WHERE incident_id = ? ORDER BY ts, id", (incident_id,))]
    if as_json:
        print(json.dumps(incident | {"timeline": timeline}, indent=2, default=str))
        return 0
    print(f"#{incident['id']} {incident['pattern']} on {incident['service']}: {incident['status']}, confidence {incident['confidence']}/10, seen {incident['count']}x")
    print(f"  {incident['summary']}")
    print(f"  time to detect {incident['detect_seconds']:.1f}s" + (f", recovered after {incident['recover_seconds']:.1f}s" if incident["recover_seconds"] else ""))
    if incident["caused_by"]:
        print(f"  caused by incident #{incident['caused_by']}")
    print("timeline:")
    for e in timeline:
        print(f"  {datetime.fromtimestamp(e['ts']).strftime('%H:%M:%S')}  {e['kind']:<12} {e['message']}")
    print("evidence:")
    print("  " + json.dumps(incident["evidence"], indent=2, default=str).replace("\n", "\n  "))
    return 0


def _print_plans(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps([{k: r[k] for k in PLAN_FIELDS} | {"status": r["status"], "incident_id": r["incident_id"], "summary": r["summary"]} for r in rows], indent=2))
        return 0
    if not rows:
        print("no plans waiting for a decision")
        return 0
    for r in rows:
        print(f"#{r['id']}  {r['status']:<9} {r['service']:<14} {r['pattern']:<22} risk {r['risk']:<6} confidence {r['confidence']}/10")
        print(f"      why: {r['summary'][:110]}")
        for a in r["actions"]:
            print(f"      do:  {a['detail'][:110]}")
        for v in r["verdicts"]:
            print(f"      {v['level']} {v['outcome']:<7} {'; '.join(v['reasons'])[:100]}")
    return 0


def _learning(db: Path, args: argparse.Namespace) -> int:
    if args.import_file:
        try:
            entries = json.loads(args.import_file.read_text())
        except (OSError, ValueError) as exc:
            print(f"aurora: cannot read {args.import_file}: {exc}", file=sys.stderr)
            return 2
        result = call_engine(db, "import_learning", entries=entries)
        print(f"imported {result['imported']} beliefs from {args.import_file}")
        return 0
    rows = call_engine(db, "learning")
    if args.export:
        args.export.write_text(json.dumps(rows, indent=2))
        print(f"wrote {len(rows)} beliefs to {args.export}")
        return 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("nothing learned yet")
        return 0
    print(f"{'PATTERN':<24} {'FIX':<22} {'BELIEF':>6} {'OK':>4} {'FAIL':>4} {'REJ':>4}")
    for r in rows:
        flag = "  (no longer proposed on its own)" if r["refused"] else ""
        print(f"{r['pattern']:<24} {r['fix']:<22} {r['mean']:>6.0%} {r['successes']:>4} {r['failures']:>4} {r['rejections']:>4}{flag}")
    return 0


ROUTE_FIELDS = ("type", "confidence", "program", "tiers", "modules", "action", "target", "refusal", "did_you_mean", "why")


def _route(args: argparse.Namespace) -> int:
    from .core.dispatch.router import route, warm

    config = load_config(args.config) if args.config else demo_config()
    services = [s.name for s in config.services]
    warm()
    messages = [args.message] if args.message is not None else (line.rstrip("\r\n") for line in sys.stdin)
    for message in messages:
        r = route(message, services)
        if args.json:
            print(json.dumps({k: getattr(r, k) for k in ROUTE_FIELDS}), flush=True)
            continue
        program = f"#{r.program['id']} {r.program['name']}" if r.program else "no program"
        command = f" · {r.action}" + (f" {r.target}" if r.target else "") if r.action else ""
        refusal = f" · refused: {r.refusal}" if r.refusal else ""
        tiers = ", ".join(str(t["id"]) for t in r.tiers) or "-"
        print(f"{r.type} {r.confidence:.0%} · {program} · tiers {tiers}{command}{refusal}", flush=True)
    return 0


def _catalogue(as_json: bool) -> int:
    from .core.catalogue import Catalogue

    cat = Catalogue.load()
    if as_json:
        print(json.dumps(cat.as_json(), indent=2))
        return 0
    counts = cat.counts()
    print(f"{counts['programs']} programs ({counts['live_programs']} live) in {len({p.group for p in cat.programs})} groups")
    print(f"{counts['tiers']} tiers ({counts['foundation_tiers']} foundation, {counts['grandmaster_tiers']} grandmaster)")
    print(f"{counts['modules']} modules: " + ", ".join(f"{k} {v}" for k, v in counts["module_categories"].items()))
    print(f"{counts['patterns']} issue patterns")
    return 0


def _print_status(snapshot: dict[str, Any], as_json: bool) -> int:
    services = snapshot["services"]
    if as_json:
        print(json.dumps([{k: s.get(k) for k in STATUS_FIELDS} for s in services], indent=2))
        return 0
    header = f"{'NAME':<16} {'STATE':<11} {'PID':>7} {'PORT':>5}  {'HEALTH':<9} {'RESTARTS':>8} {'UPTIME':>8} {'CPU':>7} {'RSS':>7}"
    print(header)
    for s in services:
        state = f"{STATE_GLYPHS.get(s['state'], '?')} {s['state']}"
        print(
            f"{s['name']:<16} {state:<11} {s['pid'] or '-':>7} {s['port'] or '-':>5}  "
            f"{health_h(s['healthy'], s.get('latency_ms')):<9} {s['restarts']:>8} {duration_h(s['uptime']):>8} "
            f"{percent_h(s['cpu']):>7} {bytes_h(s['rss']):>7}"
        )
    healthy = sum(1 for s in services if s["healthy"])
    print(f"\n{healthy}/{len(services)} healthy · engine pid {snapshot['engine_pid']} · {snapshot['scans']} scans every {snapshot['interval']:g}s")
    return 0


async def run_headless(config: Config) -> int:
    from .core.engine import Engine
    from .core.enginelock import EngineAlreadyRunning

    engine = Engine(config)
    try:
        await engine.open()
    except EngineAlreadyRunning as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A headless engine outlives the terminal that started it.
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    print(
        f"aurora: engine pid {os.getpid()} supervising {len(config.services)} services; "
        f"db {engine.db_path}; scan every {config.settings.interval:g}s",
        file=sys.stderr,
        flush=True,
    )
    runner = engine.launch()
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        await engine.close()
    if runner.done() and not runner.cancelled() and runner.exception() is not None:
        print(f"aurora: engine failed: {runner.exception()!r}", file=sys.stderr)
        return 1
    return 0


def _console(config: Config) -> int:
    from .app import run_console

    return run_console(config)


if __name__ == "__main__":
    raise SystemExit(main())
