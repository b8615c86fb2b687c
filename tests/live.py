"""Engines over real demo services for pattern tests: one call builds the fleet, starts it, and
guarantees everything stops."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, AsyncIterator

from aurora_tui.core.api import IncidentRow
from aurora_tui.core.config import Config, HealthCheck, Limits, ServiceConfig, Settings
from aurora_tui.core.engine import Engine

from .helpers import async_wait_until, free_port

PY = sys.executable


def overrides(patterns: dict[str, dict[str, float]] | None) -> tuple:
    return tuple(sorted((p, tuple(sorted((k, float(v)) for k, v in params.items()))) for p, params in (patterns or {}).items()))


def demo_service(
    name: str, port: int | None = None, *, upstream: int | None = None, depends_on: tuple[str, ...] = (),
    limits: Limits = Limits(memory_mb=400), patterns: dict | None = None, health_timeout: float = 1.0, **extra: Any,
) -> ServiceConfig:
    port = port or free_port()
    command = [PY, "-m", "aurora_tui.demo.service", "--name", name, "--port", str(port)]
    if upstream:
        command += ["--upstream", f"http://127.0.0.1:{upstream}/healthz"]
    return ServiceConfig(
        name=name, command=tuple(command), port=port,
        health=HealthCheck("http", "/healthz", 200, '"status": "ok"', health_timeout),
        depends_on=depends_on, start_grace=5.0, stop_timeout=3.0, restart_delay=0.1, limits=limits,
        patterns=overrides(patterns), **extra,
    )


def fleet_config(
    tmp_path: Path, *services: ServiceConfig, interval: float = 0.4, host_patterns: dict | None = None, auto_heal: bool = True,
) -> Config:
    settings = Settings(
        interval=interval, db=tmp_path / "aurora.db", log_dir=tmp_path / "logs", patterns=overrides(host_patterns), auto_heal=auto_heal,
    )
    return Config(source="<test fleet>", settings=settings, services=tuple(services))


@contextlib.asynccontextmanager
async def running(config: Config, healthy: bool = True) -> AsyncIterator[Engine]:
    engine = Engine(config)
    await engine.open()
    try:
        engine.launch()
        if healthy:
            async def up() -> bool:
                snap = await engine.snapshot()
                return all(s.healthy for s in snap.services)

            await async_wait_until(up, timeout=30, what="the test fleet healthy")
            # Scans run alongside the start-up, so the last one may have begun before everything was
            # up: one more, begun now, makes the samples a test reads describe the running services
            # (whatever the interval; some tests set an hour so that no scan comes in between).
            await engine.scan_now()
        yield engine
    finally:
        await engine.close()


async def incident_for(engine: Engine, service: str, pattern: str, timeout: float = 60.0) -> IncidentRow:
    async def found():
        rows = await engine.list_incidents(service=service, pattern=pattern, limit=1)
        return rows[0] if rows else None

    return await async_wait_until(found, timeout=timeout, interval=0.1, what=f"a {pattern} incident on {service}")


async def patterns_seen(engine: Engine, service: str) -> set[str]:
    return {r.pattern for r in await engine.list_incidents(service=service, limit=100)}


async def scans_pass(engine: Engine, count: int, timeout: float = 60.0) -> None:
    target = engine.monitor.scans + count
    await async_wait_until(lambda: engine.monitor.scans >= target, timeout=timeout, what=f"{count} more scans")


async def restarted_healthy(engine: Engine, service: str, old_pid: int, timeout: float = 60.0) -> None:
    """Wait until ``service`` runs again as a new pid and answers its health check."""
    async def back() -> bool:
        status = engine.monitor.status_of(service)
        return status is not None and status.pid not in (None, old_pid) and bool(status.healthy)

    await async_wait_until(back, timeout=timeout, what=f"{service} restarted and healthy")
