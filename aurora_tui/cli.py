"""The ``aurora`` command line: the console, the headless engine, and commands against a running engine.

Exit statuses: 0 success, 1 the engine is not running, refused or did not answer, or the database cannot
be used; 2 bad usage, a bad config or a file Aurora refuses to use. A failure is one line on stderr.
The subcommands live in :mod:`aurora_tui.commands`, one module per family.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import Sequence

from .commands import engine, fleet, incidents, plans, tools
from .commands.common import CommandFailed
from .core.config import ConfigError
from .core.control import ControlError, NoEngine
from .core.private_files import UnsafeFile
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
    except UnsafeFile as exc:  # a file in Aurora's place that it refuses to use: the setup is wrong
        print(f"aurora: {exc}", file=sys.stderr)
        return 2
    except (NoEngine, ControlError, Unsupported, CommandFailed) as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:
        # The machine said no (a read-only or full disk, a permission): one line, not a traceback.
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"aurora: {where}{detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
