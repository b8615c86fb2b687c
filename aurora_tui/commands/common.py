"""What the subcommands share: argument types, the options that name an engine, and the way to reach it."""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sqlite3
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from ..core.config import Config, Settings, demo_config, load_config, with_overrides
from ..core.control import NoEngine
from ..core.format import parse_duration
from ..core.model import to_jsonable
from ..core.remote import RemoteEngine

T = TypeVar("T")
Command = Callable[[argparse.Namespace], int]


def grade(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10:
        raise argparse.ArgumentTypeError(f"a grade is a whole number from 1 to 10, got {text!r}")
    return int(text)


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (default: the built-in demo fleet)")
    p.add_argument("--db", type=Path, help="SQLite database (default: from the config, else the per-user data dir)")
    p.add_argument("--interval", type=positive_float, help="seconds between full scans (default: from the config, 15)")


def target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, help="database of the running engine (default: the per-user one)")
    p.add_argument("--config", type=Path, help="take the database path from this config file")


def load(args: argparse.Namespace) -> Config:
    config = load_config(args.config) if args.config else demo_config()
    return with_overrides(config, db=args.db, interval=getattr(args, "interval", None))


def target_db(args: argparse.Namespace) -> Path:
    if args.db:
        return args.db.resolve()
    if args.config:
        return Path(load_config(args.config).settings.db)
    return Settings().db


def run_on(args: argparse.Namespace, call: Callable[[RemoteEngine], Awaitable[T]]) -> T:
    """Run ``call`` against the engine running on the target database (NoEngine if there is none)."""

    async def once() -> T:
        async with RemoteEngine(target_db(args)) as engine:
            return await call(engine)

    return asyncio.run(once())


def on_engine(fn: Callable[[RemoteEngine, argparse.Namespace], Awaitable[int]]) -> Command:
    """A subcommand whose whole work is done against the running engine."""

    @functools.wraps(fn)
    def command(args: argparse.Namespace) -> int:
        return run_on(args, lambda engine: fn(engine, args))

    return command


def read_db(db: Path) -> sqlite3.Connection:
    """A read-only connection: the engine stays the only writer, and reading works without it."""
    if not db.exists():
        raise NoEngine(f"no Aurora database at {db}")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def print_json(value: Any, **options: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, **options))
