"""What the subcommands share: argument types, the options that name an engine, and the way to reach it."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, TypeVar

from ..core.config import Config, Settings, demo_config, load_config, with_overrides
from ..core.config_model import MAX_DURATION
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
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"a duration must be finite, got {text!r}")
    return seconds


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def interval(text: str) -> float:
    value = positive_float(text)
    if value > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DURATION:g} seconds (a day), got {text}")
    return value


def engine_options(p: argparse.ArgumentParser, subcommand: bool = False) -> None:
    # A subcommand leaves its options unset (SUPPRESS) when they are not given: its own default None
    # would overwrite `aurora --config F run --headless`, and the demo fleet would run instead of F.
    unset = {"default": argparse.SUPPRESS} if subcommand else {}
    p.add_argument("--config", type=Path, help="TOML config file (default: the built-in demo fleet)", **unset)
    p.add_argument("--db", type=Path, help="SQLite database (default: from the config, else the per-user data dir)", **unset)
    p.add_argument("--interval", type=interval, help="seconds between full scans, at most a day (default: from the config, 15)", **unset)


def target_options(p: argparse.ArgumentParser) -> None:
    # Subcommands only: what `aurora --db D status` gave before the subcommand stands (see engine_options).
    unset = argparse.SUPPRESS
    p.add_argument("--db", type=Path, default=unset, help="database of the running engine (default: the per-user one)")
    p.add_argument("--config", type=Path, default=unset, help="take the database path from this config file")
    p.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", default=unset,
        help="give up on an engine that does not answer within this long (default: 20 s for queries, 300 s for actions)",
    )


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
        async with RemoteEngine(target_db(args), timeout=getattr(args, "timeout", None)) as engine:
            return await call(engine)

    return asyncio.run(once())


def on_engine(fn: Callable[[RemoteEngine, argparse.Namespace], Awaitable[int]]) -> Command:
    """A subcommand whose whole work is done against the running engine."""

    @functools.wraps(fn)
    def command(args: argparse.Namespace) -> int:
        return run_on(args, lambda engine: fn(engine, args))

    return command


class CommandFailed(RuntimeError):
    """What a command needs is unusable (a damaged or unreadable database): said in one line, exit 1."""


@contextlib.contextmanager
def read_db(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection: the engine stays the only writer, and reading works without it. Any
    SQLite error while it is used becomes one :class:`CommandFailed` naming the database."""
    if not db.exists():
        raise NoEngine(f"no Aurora database at {db}")
    try:
        conn = _connect_read_only(db)
        try:
            yield conn
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CommandFailed(f"cannot read the database {db}: {exc}") from None


def _connect_read_only(db: Path) -> sqlite3.Connection:
    uri = db.absolute().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=5)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        conn.close()
        # On a read-only mount a WAL database cannot be opened as usual (its -shm cannot be made), yet no
        # one can change it either: read the file as it is, unless commits still wait in its WAL.
        if not _on_read_only_mount(db) or _wal_pending(db):
            raise
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _on_read_only_mount(db: Path) -> bool:
    try:
        return bool(os.statvfs(db.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _wal_pending(db: Path) -> bool:
    try:
        return db.with_name(db.name + "-wal").stat().st_size > 0
    except FileNotFoundError:
        return False


def print_json(value: Any, **options: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, **options))
