"""Running an engine: the console (with its own engine or attached), ``run --headless``, and its config."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from ..core.config import Config, ConfigError, demo_config_text, executable_problems, load_config
from ..core.control import socket_path
from ..core.logconfig import FORMATS, LEVELS, configure_logging, log_path
from ..core.private_files import UnsafeFile, create_private
from .common import engine_options, load, target_db

log = logging.getLogger(__name__)

LOG_LEVEL_HELP = (
    "DEBUG, INFO, WARNING or ERROR (default INFO). run --headless logs to stderr; "
    "the console logs to <db>.log, never to the terminal it draws on"
)
LOG_FORMAT_HELP = "text (LEVEL logger: message, for journald) or json (one object per line) (default text)"


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of the console itself (``aurora`` with no subcommand)."""
    engine_options(parser)
    parser.set_defaults(timeout=None)  # subcommands that take --timeout leave it unset unless given
    parser.add_argument(
        "--attach", action="store_true",
        help="open the console on the engine already running on --db (aurora run --headless); quitting leaves it running",
    )
    _log_options(parser, LOG_LEVEL_HELP)
    parser.set_defaults(func=console)


def _log_options(p: argparse.ArgumentParser, level_help: str, defaults: bool = True) -> None:
    # A subcommand leaves its defaults unset (SUPPRESS): its own default would overwrite the value of
    # `aurora --log-level X run --headless` given before the subcommand.
    level, fmt = ("INFO", "text") if defaults else (argparse.SUPPRESS, argparse.SUPPRESS)
    p.add_argument("--log-level", type=str.upper, choices=LEVELS, default=level, metavar="LEVEL", help=level_help)
    p.add_argument("--log-format", choices=FORMATS, default=fmt, help=LOG_FORMAT_HELP)


def register(sub: argparse._SubParsersAction) -> None:
    run_p = sub.add_parser("run", help="run the engine without a console (until SIGTERM/SIGINT)")
    engine_options(run_p, subcommand=True)
    run_p.add_argument("--headless", action="store_true", required=True, help="no console (required)")
    _log_options(run_p, "DEBUG, INFO, WARNING or ERROR (default INFO), to stderr", defaults=False)
    run_p.set_defaults(func=run)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path)
    check.set_defaults(func=check_config)

    demo = sub.add_parser("demo-config", help="print the demo fleet as a config file")
    demo.add_argument("--port-offset", type=int, default=0, help="shift every demo port by N")
    demo.set_defaults(func=demo_config)


def console(args: argparse.Namespace) -> int:
    if args.attach:
        from ..app import run_attached

        db = target_db(args)
        # No socket, no engine: run_attached says so, and leaves no log file behind for nothing.
        if socket_path(db).exists() and (status := _log_to_file(args, db)):
            return status
        return run_attached(db)
    from ..app import run_console

    config = load(args)
    if status := _log_to_file(args, Path(config.settings.db)):
        return status
    return run_console(config)


def _log_to_file(args: argparse.Namespace, db: Path) -> int:
    """0 once the log goes to ``<db>.log``, else the exit status after saying why it cannot."""
    path = log_path(db)
    try:
        # Created 0600 (in a 0700 directory, which the engine would make for its database anyway)
        # before logging opens it by name.
        create_private(path, "log file")
        configure_logging(args.log_level, args.log_format, path=path)
    except UnsafeFile as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"aurora: cannot write the log {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(run_headless(load(args), args.log_level, args.log_format))


def check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    errors, warnings = executable_problems(config)
    for key, problem in warnings:
        print(f"{args.file}: {key}: warning: {problem}", file=sys.stderr)
    if errors:
        raise ConfigError(str(args.file), errors)
    managed = sum(1 for s in config.services if s.managed)
    noted = f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""
    print(f"{args.file}: ok ({len(config.services)} services, {managed} managed{noted})")
    return 0


def demo_config(args: argparse.Namespace) -> int:
    sys.stdout.write(demo_config_text(args.port_offset))
    return 0


async def run_headless(config: Config, log_level: str = "INFO", log_format: str = "text") -> int:
    from ..own_engine import open_own_engine

    configure_logging(log_level, log_format)
    engine = await open_own_engine(config)
    if isinstance(engine, int):  # not opened: why was said on stderr
        return engine
    stop = asyncio.Event()

    def stop_on(sig: signal.Signals) -> None:
        log.info("%s received: stopping every service, then exiting", sig.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_on, sig)
    # A headless engine outlives the terminal that started it.
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    log.info(
        "engine pid %d supervising %d services; db %s; scan every %gs",
        os.getpid(), len(config.services), engine.db_path, config.settings.interval,
    )
    runner = engine.launch()
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        await engine.close()
    if runner.done() and not runner.cancelled() and runner.exception() is not None:
        failure = runner.exception()
        log.error("engine failed: %r", failure, exc_info=failure)
        return 1
    return 0
