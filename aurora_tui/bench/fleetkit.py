"""What the benchmarks share: the demo fleet on free ports, threshold overrides, waiting for health."""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from pathlib import Path
from typing import Any

from ..core.config import Config, Limits, demo_config, with_overrides
from ..core.engine import Engine

DEMO_PORTS = (5000, 5001, 5002, 8080)


def free_offset(start: int = 21000) -> int:
    """A port offset at which every demo port is free on 127.0.0.1 right now."""
    for offset in range(start, 40000, 97):
        ok = True
        for port in DEMO_PORTS:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + offset))
                except OSError:
                    ok = False
                    break
        if ok:
            return offset
    raise RuntimeError("no free ports for the demo fleet")


def overrides(patterns: dict[str, dict[str, float]] | None) -> tuple:
    return tuple(sorted((p, tuple(sorted((k, float(v)) for k, v in params.items()))) for p, params in (patterns or {}).items()))


def demo_fleet(workdir: Path, name: str, interval: float = 1.0, limits: Limits | None = None,
               targets: tuple[str, ...] = (), host: dict[str, dict[str, float]] | None = None) -> Config:
    """The demo fleet on free ports with its database under ``workdir``; ``limits`` apply to ``targets``."""
    config = with_overrides(demo_config(free_offset()), db=workdir / f"{name}.db", interval=interval)
    services = tuple(dataclasses.replace(s, limits=limits) if limits and s.name in targets else s for s in config.services)
    settings = dataclasses.replace(config.settings, log_dir=workdir / f"logs-{name}", patterns=overrides(host))
    return dataclasses.replace(config, settings=settings, services=services)


async def wait_healthy(engine: Engine, names: list[str] | None = None, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = await engine.snapshot()
        wanted = [s for s in snap.services if names is None or s.name in names]
        if wanted and all(s.healthy for s in wanted):
            return True
        await asyncio.sleep(0.05)
    return False


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
