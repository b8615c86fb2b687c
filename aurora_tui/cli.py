"""The ``aurora`` command line: the console, the headless engine, and commands against a running engine.

Exit statuses: 0 success, 1 the engine is not running or refused, 2 bad usage or a bad config.
The subcommands live in :mod:`aurora_tui.commands`, one module per family.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .commands import engine, fleet, incidents, plans, tools
from .core.config import ConfigError
from .core.control import ControlError, NoEngine
from .core.remote import Unsupported


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aurora", description="Aurora: supervise, diagnose and heal a fleet of services.")
    engine.add_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In this order in --help: run the engine, then the fleet, incidents, plans, and the offline tools.
    for family in (engine, fleet, incidents, plans, tools):
        family.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"aurora: bad config\n{exc}", file=sys.stderr)
        return 2
    except (NoEngine, ControlError, Unsupported) as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
