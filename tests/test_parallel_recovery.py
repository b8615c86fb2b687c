"""Ten services killed at once are restarted together, not one after another.

Each service takes BIND_DELAY seconds after it starts before it listens, and says when it bound. If
a recovery waited for another (its detection, its plan, its restart or its verification), a later
replacement would be spawned only after an earlier one was up. So: every replacement must have been
started before the first of them was listening. The kills come from outside, all at the same moment,
and the scan interval is an hour: only the exits themselves can drive the recoveries.
"""
from __future__ import annotations

import os
import re
import signal
import sys

import psutil
import pytest

from aurora_tui.core.config import HealthCheck, ServiceConfig

from .helpers import async_wait_until, free_port
from .live import fleet_config, running

BIND_DELAY = 1.5
KILLED = 10
BYSTANDERS = 10
INTERVAL = 1.0  # scans every second compete with the recoveries, as on a busy engine
BOUND = re.compile(r"bound (\d+\.\d+) pid (\d+)")
SERVICE = """
import http.server, json, os, sys, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
time.sleep(delay)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print(f"bound {time.time():.6f} pid {os.getpid()}", flush=True)
server.serve_forever()
"""


def slow_binder(name: str) -> ServiceConfig:
    port = free_port()
    return ServiceConfig(
        name=name, command=(sys.executable, "-c", SERVICE, str(port), str(BIND_DELAY)), port=port,
        health=HealthCheck("http", "/healthz", 200, '"status": "ok"', 1.0),
        start_grace=20.0, stop_timeout=3.0, restart_delay=0.0,
    )


@pytest.mark.asyncio
async def test_ten_simultaneous_crashes_are_restarted_together(tmp_path):
    names = [f"svc{i:02d}" for i in range(KILLED + BYSTANDERS)]
    config = fleet_config(tmp_path, *(slow_binder(n) for n in names), interval=INTERVAL)
    async with running(config) as engine:
        before = {s.name: s.pid for s in (await engine.snapshot()).services}
        victims = names[:KILLED]
        for name in victims:  # from outside, back to back
            os.kill(before[name], signal.SIGKILL)

        async def all_back() -> bool:
            snap = {s.name: s for s in (await engine.snapshot()).services}
            return all(snap[n].healthy and snap[n].pid not in (None, before[n]) for n in victims)

        await async_wait_until(all_back, timeout=90, what="all ten killed services healthy again")
        after = {s.name: s.pid for s in (await engine.snapshot()).services}

        spawned, bound = {}, {}
        for name in victims:
            spawned[name] = psutil.Process(after[name]).create_time()
            lines = [m for line in await engine.logs(name, 200) if (m := BOUND.search(line))]
            bound[name] = next(float(m.group(1)) for m in lines if int(m.group(2)) == after[name])
        first_up = min(bound.values())
        late = {n: round(t - first_up, 3) for n, t in spawned.items() if t >= first_up}
        assert not late, f"replacements started only after another was already up (s after the first bound): {late}"
        # The two services nobody touched kept their processes.
        assert all(after[n] == before[n] for n in names[KILLED:])
