"""The ``aurora`` command line: the console, the headless engine, and commands against a running engine.

Exit statuses: 0 success, 1 the engine is not running or refused, 2 bad usage or a bad config.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from .core.config import Config, ConfigError, Settings, demo_config, demo_config_text, load_config, with_overrides
from .core.control import ControlError, NoEngine, call_engine
from .core.format import STATE_GLYPHS, bytes_h, duration_h, health_h, percent_h

STATUS_FIELDS = ("name", "state", "pid", "port", "healthy", "restarts", "uptime", "cpu", "rss")


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

    bench = sub.add_parser("bench", help="run the benchmarks")
    bench.add_argument("name", nargs="?", default="scan", choices=["scan"])
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
    if command == "bench":
        from .bench import run_benchmark

        return run_benchmark(args.name, as_json=args.json)
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
