"""Detection benchmarks.

1. ``pass``: CPU time of one detection pass (detect + diagnose) over 200 services, each with a full
   history of 120 samples, in microseconds per service. Pure functions, no I/O.
2. ``ttd``: time to detect each of the 25 patterns on the real demo fleet scanned every second: the
   fault is caused for real (a signal, a demo fault switch, a squatted port, a stale copy) and the clock
   runs until the incident is opened. Host patterns use thresholds set just below the machine's current
   readings; CPU overload is real load from spinning demo services.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import psutil

from ..core.config import Limits, demo_config
from ..core.detect import ServiceView, detect_service
from ..core.diagnose import diagnose
from ..core.engine import Engine
from ..core.model import HealthResult, PortFacts, ProcessFacts, ServiceSample
from ..core.patterns import HOST, load_patterns, pattern_params
from .fleetkit import demo_fleet, wait_healthy

MB = 1024 * 1024


# --- 1. the pure detection pass ---------------------------------------------------------------------


def detection_pass(services: int = 200, history: int = 120, repeats: int = 20) -> dict[str, Any]:
    config = demo_config()
    template = config.services[0]
    now = time.time()
    views = []
    for i in range(services):
        svc = dataclasses.replace(template, name=f"svc{i:03d}", port=20000 + i)
        samples = [
            ServiceSample(
                svc.name, now - history + t, "running",
                ProcessFacts(1000 + i, "sleeping", 1.0 + (t % 3), int((30 + (t % 5)) * MB), 12, 3, 2, 0, 0, now - 3600, ["python3"], [1000 + i], 4096, []),
                PortFacts(svc.port, True, 1000 + i, ["python3"], "root", True),
                HealthResult("http", True, 4.0 + (t % 7), 200, '{"status": "ok"}'),
                0,
            )
            for t in range(history)
        ]
        views.append((svc, samples))
    params = {p: pattern_params(p) for p in load_patterns()}
    lookup = params.__getitem__
    start = time.process_time()
    for _ in range(repeats):
        # Fresh views every pass, as the engine builds them: nothing cached carries over.
        fresh = [ServiceView(config=svc, state="running", samples=samples, started_at=now - 3600, healthy_since_start=True) for svc, samples in views]
        diagnose([f for v in fresh for f in detect_service(v, lookup, now)])
    cpu = (time.process_time() - start) / repeats
    return {"services": services, "history": history, "us_per_service": round(cpu / services * 1e6, 1), "ms_per_pass": round(cpu * 1000, 2)}


# --- 2. time to detect, per pattern, on the demo fleet -------------------------------------------------


@dataclasses.dataclass
class Scenario:
    pattern: str
    target: str
    cause: Callable[["Bench"], Awaitable[None]]
    limits: Limits | None = None
    host: dict[str, dict[str, float]] | None = None
    before_start: Callable[["Bench"], None] | None = None
    service: str | None = None  # where the incident is filed, when not the target


def chaos(fault: str, **params: Any) -> Callable[["Bench"], Awaitable[None]]:
    async def cause(bench: "Bench") -> None:
        await bench.engine.chaos(fault, bench.scenario.target, {k: str(v) for k, v in params.items()})

    return cause


async def crash_thrice(bench: "Bench") -> None:
    for _ in range(3):
        await bench.wait_healthy(bench.scenario.target)
        await bench.engine.chaos("crash", bench.scenario.target)
        await asyncio.sleep(0.2)


async def failstart(bench: "Bench") -> None:
    await bench.engine.chaos("failstart", bench.scenario.target, {"count": "5"})
    await bench.engine.chaos("crash", bench.scenario.target)


async def spin_all(bench: "Bench") -> None:
    for svc in bench.engine.config.services:
        await bench.engine.chaos("cpu", svc.name)


async def nothing(bench: "Bench") -> None:
    return None


def squat_port(bench: "Bench") -> None:
    port = bench.engine.config.service(bench.scenario.target).port
    bench.helper = subprocess.Popen(
        [sys.executable, "-c", f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); print('ok', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    bench.helper.stdout.readline()


def stale_copy(bench: "Bench") -> None:
    command = list(bench.engine.config.service(bench.scenario.target).command)
    bench.helper = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    bench.helper.stdout.readline()


def scenarios() -> list[Scenario]:
    disk = psutil.disk_usage(tempfile.gettempdir()).percent
    mem = psutil.virtual_memory().percent
    return [
        Scenario("crashed", "file_server", chaos("kill")),
        Scenario("crash_loop", "file_server", crash_thrice),
        Scenario("startup_failure", "file_server", failstart),
        Scenario("hung", "aurora_ui", chaos("stop")),
        Scenario("zombie_children", "aurora_ui", chaos("zombies")),
        Scenario("orphaned_children", "aurora_ui", chaos("orphans", count=1, mb=8)),
        Scenario("port_conflict_foreign", "file_server", nothing, before_start=squat_port),
        Scenario("port_conflict_stale", "file_server", nothing, before_start=stale_copy),
        Scenario("port_not_listening", "aurora_ui", chaos("unlisten")),
        Scenario("high_cpu", "aurora_ui", chaos("cpu")),
        Scenario("memory_leak", "learning_api", chaos("leak", rate_mb=16, max_mb=400), limits=Limits(memory_mb=1000)),
        Scenario("memory_limit", "learning_api", chaos("leak", rate_mb=64, max_mb=300), limits=Limits(memory_mb=100)),
        Scenario("fd_exhaustion", "file_server", chaos("fds", rate=2000)),
        Scenario("thread_explosion", "file_server", chaos("threads", rate=500, max=300)),
        Scenario("connection_exhaustion", "file_server", chaos("conns", count=200, rate=500)),
        Scenario("http_errors", "aurora_ui", chaos("errors")),
        Scenario("rate_limited", "aurora_ui", chaos("ratelimit")),
        Scenario("slow_responses", "aurora_ui", chaos("slow", delay=1.2)),
        Scenario("health_content_mismatch", "aurora_ui", chaos("badhealth")),
        Scenario("disk_full", "aurora_ui", nothing, host={"disk_full": {"percent": max(0.1, disk - 1), "debounce": 1}}, service=HOST),
        Scenario("host_memory_pressure", "aurora_ui", nothing, host={"host_memory_pressure": {"percent": max(0.1, mem - 2), "min_duration_s": 0}}, service=HOST),
        Scenario("host_cpu_overload", "aurora_ui", spin_all, host={"host_cpu_overload": {"percent": 70, "load_per_cpu": 100, "min_duration_s": 0}}, service=HOST),
        Scenario("dependency_down", "learning_api", chaos("stop"), service="bridge_api"),
        Scenario("flapping", "aurora_ui", chaos("flap", period=1.5)),
        Scenario("log_error_burst", "aurora_ui", chaos("logerrors", rate=50, duration=5)),
    ]


class Bench:
    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        self.scenario = scenario
        self.helper: subprocess.Popen[str] | None = None
        config = demo_fleet(workdir, scenario.pattern, limits=scenario.limits, targets=(scenario.target,), host=scenario.host)
        self.engine = Engine(config)

    async def wait_healthy(self, name: str, timeout: float = 30.0) -> None:
        if not await wait_healthy(self.engine, [name], timeout):
            raise TimeoutError(f"{name} not healthy")

    async def measure(self, timeout: float = 60.0) -> dict[str, Any]:
        if self.scenario.before_start:
            self.scenario.before_start(self)
        await self.engine.open()
        try:
            self.engine.launch()
            if self.scenario.before_start is None:
                await wait_healthy(self.engine)
                while self.engine.monitor.scans < 2:
                    await asyncio.sleep(0.05)
            started = time.time()
            await self.scenario.cause(self)
            where = self.scenario.service or self.scenario.target
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                rows = await self.engine.list_incidents(service=where, pattern=self.scenario.pattern, limit=1)
                if rows:
                    others = {r.pattern for r in await self.engine.list_incidents(service=where, limit=50)} - {self.scenario.pattern}
                    return {
                        "pattern": self.scenario.pattern, "detected": True,
                        "seconds": round(max(0.0, rows[0].opened_at - started), 2),
                        "confidence": rows[0].confidence, "also": sorted(others),
                    }
                await asyncio.sleep(0.05)
            return {"pattern": self.scenario.pattern, "detected": False, "seconds": None, "confidence": None, "also": []}
        finally:
            for svc in self.engine.config.services:
                runner = self.engine.fleet.runners.get(svc.name)
                if runner and runner.alive:
                    runner.send_signal(signal.SIGCONT)
            await self.engine.close()
            if self.helper is not None:
                os.killpg(self.helper.pid, signal.SIGKILL)
                self.helper.wait()


def time_to_detect(only: list[str] | None = None) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="aurora-ttd-") as tmp:
        os.environ["AURORA_DEMO_STATE_DIR"] = str(Path(tmp) / "demo-state")
        for scenario in scenarios():
            if only and scenario.pattern not in only:
                continue
            results.append(asyncio.run(Bench(scenario, Path(tmp)).measure()))
    return results


def run() -> dict[str, Any]:
    passes = detection_pass()
    ttd = time_to_detect()
    lines = [
        f"detection pass: {passes['services']} services x {passes['history']} samples: "
        f"{passes['us_per_service']} µs per service ({passes['ms_per_pass']} ms per pass, CPU)",
        "",
        "time to detect on the demo fleet, scanned every 1 s (fault caused -> incident opened):",
        f"{'pattern':<24} {'detected':>8} {'seconds':>8} {'conf':>5}  other incidents",
    ]
    for r in ttd:
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.2f}"
        lines.append(f"{r['pattern']:<24} {str(r['detected']):>8} {seconds:>8} {r['confidence'] or '-':>5}  {', '.join(r['also']) or '-'}")
    detected = [r for r in ttd if r["detected"]]
    lines.append(f"\n{len(detected)}/{len(ttd)} patterns detected")
    return {"benchmark": "detect", "pass": passes, "time_to_detect": ttd, "report": "\n".join(lines)}
