"""Opening an engine of this process's own, as the console and ``aurora run --headless`` both do."""
from __future__ import annotations

import sqlite3
import sys

from .core.config import Config
from .core.engine import Engine
from .core.enginelock import EngineAlreadyRunning
from .core.private_files import UnsafeFile


async def open_own_engine(config: Config) -> Engine | int:
    """An opened engine on the config's database, or the exit status after saying on stderr, in one
    line, why it could not be opened: 1 when another engine holds the database or the database cannot
    be used (corrupt, read-only, unreadable), 2 when a file in its place is unsafe (the setup is wrong,
    like a bad config)."""
    engine = Engine(config)
    db = engine.db_path
    try:
        await engine.open()
    except EngineAlreadyRunning as exc:
        return _refused(str(exc), 1)
    except UnsafeFile as exc:
        return _refused(str(exc), 2)
    except sqlite3.Error as exc:
        # Exactly DatabaseError: not a database, or a damaged one (read-only, full or locked are subclasses).
        hint = " (move it aside to start with a new one)" if type(exc) is sqlite3.DatabaseError else ""
        return _refused(f"cannot use the database {db}: {exc}{hint}", 1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _refused(f"cannot use the database {db}: {where}{exc.strerror or exc}", 1)
    return engine


def _refused(message: str, status: int) -> int:
    print(f"aurora: {message}", file=sys.stderr)
    return status
