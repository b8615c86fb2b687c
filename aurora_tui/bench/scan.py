"""CPU time of one scan, per service, for fleets of 4, 50 and 200 real supervised processes.

Each process is a real demo service with an HTTP health check on its own port, so a scan does everything
it does in production: one host-wide socket table, a psutil pass over each process tree, an HTTP health
request per service, a host sample and a batched SQLite write. CPU time is the engine process's own
(all its threads), measured with ``time.process_time`` across several scans after a warm-up scan.
"""
from __future__ import annotations

import asyncio
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..core.config import Config, HealthCheck, ServiceConfig, Settings
from ..core.engine import Engine

SIZES = (4, 50, 200)
SCANS = 10


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are chosen, so no port is handed out twice.
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def fleet(size: int, workdir: Path) -> Config:
    services = tuple(
        ServiceConfig(
            name=f"svc{i:03d}",
            command=(sys.executable, "-m", "aurora_tui.demo.service", "--name", f"svc{i:03d}", "--port", str(port)),
            port=port,
            health=HealthCheck("http", "/healthz", 200, '"status": "ok"', 2.0),
            start_grace=60.0,
            stop_timeout=5.0,
        )
        for i, port in enumerate(_free_ports(size))
    )
    settings = Settings(interval=3600.0, db=workdir / f"bench-{size}.db", log_dir=workdir / f"logs-{size}")
    return Config(source=f"<scan benchmark, {size} services>", settings=settings, services=services)


async def measure(size: int, workdir: Path, scans: int = SCANS) -> dict[str, Any]:
    engine = Engine(fleet(size, workdir))
    await engine.open()
    try:
        started = time.perf_counter()
        await engine.start_fleet()
        startup = time.perf_counter() - started
        await engine.monitor.scan()  # warm-up: primes CPU counters and caches
        healthy = sum(1 for s in (await engine.snapshot()).services if s.healthy)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(scans):
            await engine.monitor.scan()
        cpu = (time.process_time() - cpu0) / scans
        wall = (time.perf_counter() - wall0) / scans
        return {
            "services": size,
            "healthy": healthy,
            "scans": scans,
            "cpu_ms_per_scan": round(cpu * 1000, 2),
            "cpu_us_per_service": round(cpu / size * 1e6, 1),
            "wall_ms_per_scan": round(wall * 1000, 2),
            "fleet_start_s": round(startup, 2),
        }
    finally:
        await engine.close()


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    rows = []
    with tempfile.TemporaryDirectory(prefix="aurora-bench-") as tmp:
        for size in sizes:
            rows.append(asyncio.run(measure(size, Path(tmp))))
    lines = [
        "scan benchmark: CPU time of the engine per full scan (HTTP health on every service)",
        f"{'services':>8} {'healthy':>8} {'cpu ms/scan':>12} {'cpu µs/service':>15} {'wall ms/scan':>13} {'start s':>8}",
    ]
    for r in rows:
        lines.append(
            f"{r['services']:>8} {r['healthy']:>8} {r['cpu_ms_per_scan']:>12} {r['cpu_us_per_service']:>15} "
            f"{r['wall_ms_per_scan']:>13} {r['fleet_start_s']:>8}"
        )
    return {"benchmark": "scan", "rows": rows, "report": "\n".join(lines)}
