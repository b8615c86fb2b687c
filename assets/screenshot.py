"""Regenerate the README screenshot: the real console on the real demo fleet (on shifted ports).

    .venv/bin/python assets/screenshot.py
"""
from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path

from aurora_tui.app import AuroraApp
from aurora_tui.core.config import demo_config, with_overrides
from aurora_tui.core.engine import Engine

OUT = Path(__file__).parent / "services.svg"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = with_overrides(demo_config(port_offset=23000), db=Path(tmp) / "aurora.db", interval=1.0)
        config = dataclasses.replace(config, settings=dataclasses.replace(config.settings, log_dir=Path(tmp) / "logs"))
        async with Engine(config) as engine:
            engine.launch()
            app = AuroraApp(engine)
            async with app.run_test(size=(100, 14)) as pilot:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    snap = await engine.snapshot()
                    if snap.scans >= 3 and snap.healthy_count == 4:
                        break
                    await asyncio.sleep(0.2)
                await pilot.pause(1.2)
                app.save_screenshot(str(OUT.name), path=str(OUT.parent))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
