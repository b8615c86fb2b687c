"""Opening an engine of this process's own, as the console and ``aurora run --headless`` both do."""
from __future__ import annotations

import sys

from .core.config import Config
from .core.engine import Engine
from .core.enginelock import EngineAlreadyRunning


async def open_own_engine(config: Config) -> Engine | None:
    """An opened engine on the config's database, or None after saying on stderr that another engine
    already holds that database (the caller exits 1)."""
    engine = Engine(config)
    try:
        await engine.open()
    except EngineAlreadyRunning as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return None
    return engine
