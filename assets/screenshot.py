"""Regenerate the README screenshots: the real console on the real demo fleet (on shifted ports), one SVG
per screen in assets/.

    .venv/bin/python assets/screenshot.py

Automatic healing is held off for the run, so the faults caused here (a killed service, a stopped one)
leave real incidents open and real fix plans waiting in the approval queue.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import socket
import tempfile
import time
from pathlib import Path

from aurora_tui.app import AuroraApp
from aurora_tui.core.config import demo_config, with_overrides
from aurora_tui.core.engine import Engine

OUT = Path(__file__).parent
SIZE = (100, 30)


def free_offset() -> int:
    for _ in range(200):
        offset = random.randrange(20000, 50000, 7)
        try:
            for port in (5000, 5001, 5002, 8080):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free port offset")


async def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the demo did not get there in time")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = with_overrides(demo_config(port_offset=free_offset()), db=Path(tmp) / "aurora.db", interval=1.0)
        settings = dataclasses.replace(config.settings, log_dir=Path(tmp) / "logs", auto_heal=False)
        config = dataclasses.replace(config, settings=settings)
        async with Engine(config) as engine:
            engine.launch()
            app = AuroraApp(engine, blink=False)
            async with app.run_test(size=SIZE) as pilot:

                async def shot(name: str) -> None:
                    await pilot.pause(0.6)
                    app.save_screenshot(f"{name}.svg", path=str(OUT))
                    print(f"wrote {OUT / (name + '.svg')}")

                async def healthy() -> bool:
                    snap = await engine.snapshot()
                    return snap.scans >= 10 and snap.healthy_count == len(snap.services)

                await until(healthy)
                # Real faults: one service killed, one stopped; with healing held, both wait for a human.
                os.kill(engine.runners["aurora_ui"].pid, signal.SIGKILL)
                await engine.chaos("stop", "file_server")
                await until(lambda: len(engine.incidents.open) >= 2 if engine.incidents else False)
                if hasattr(engine, "list_plans"):
                    await until(lambda: engine.list_plans(status="pending"))
                await pilot.pause(2.5)

                await shot("services")
                await pilot.press("down", "down", "down", "enter")
                await shot("service")
                await pilot.press("escape", "2")
                await shot("incidents")
                await pilot.press("enter")
                await shot("incident")
                await pilot.press("escape", "3")
                await shot("approvals")
                await pilot.press("4")
                await shot("chat")
                await pilot.press("5", "down", "down", "down")
                await shot("explorer")
                await pilot.press("1", "c")
                await shot("chat-pane")
                await pilot.press("c", "question_mark")
                await shot("keys")


if __name__ == "__main__":
    asyncio.run(main())
