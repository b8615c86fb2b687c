"""No false positives: a quiet fleet for 60+ scans, and a spike shorter than its debounce, give nothing."""
from __future__ import annotations

import pytest

from aurora_tui.core.config import Limits

from .fleet import demo_fleet
from .helpers import async_wait_until
from .live import demo_service, fleet_config, running, scans_pass

pytestmark = pytest.mark.timeout(120)


async def test_a_quiet_fleet_produces_no_findings_in_60_scans(tmp_path):
    config = demo_fleet(tmp_path, interval=0.15)
    async with running(config) as engine:
        await scans_pass(engine, 60, timeout=90)
        assert await engine.list_incidents(limit=10) == []
        events = await engine.recent_events(limit=500)
        assert not [e for e in events if e.kind.startswith("incident_")]


async def test_a_spike_shorter_than_the_debounce_is_ignored(tmp_path):
    svc = demo_service("spiky", limits=Limits(cpu_percent=50), patterns={"high_cpu": {"debounce": 4}})
    async with running(fleet_config(tmp_path, svc, interval=0.5)) as engine:
        await engine.chaos("cpu", "spiky")

        def spiking() -> bool:
            sample = engine.monitor.samples["spiky"]
            return sample.process is not None and sample.process.cpu_percent >= 50

        await async_wait_until(spiking, timeout=60, what="one scan to see the spike")
        await engine.chaos("clear", "spiky")
        await scans_pass(engine, 6)
        high = [s.process.cpu_percent for s in engine.monitor.history["spiky"] if s.process and s.process.cpu_percent >= 50]
        assert 1 <= len(high) < 4, high
        assert await engine.list_incidents(limit=10) == []
