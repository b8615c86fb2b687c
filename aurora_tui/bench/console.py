"""Console benchmarks: the real ``aurora`` console in a real pseudo-terminal.

1. **First frame**: from spawning ``aurora --config F --db D`` (Python start, imports, engine open,
   fleet launch) to the first frame that shows every service's row. Medians over a few runs.
2. **Incidents at 100,000**: a database filled with 100,000 incidents (written straight into SQLite,
   created by :class:`~aurora_tui.core.store.Store` with its migrations), the console opened on it. The
   time from pressing ``2`` to the frame with the newest incident, compared with the same on a database of
   10; then key-press-to-frame latency for moving through the list (``down``, ``pagedown``, which also
   pages in more rows from SQLite near the end) and for ``o`` (open only: a new query).
3. **Idle CPU**: the console with its own engine on the demo fleet, scanning every 15 s, left alone; CPU
   time of the console process (engine included) over a window, as a percentage of one core: once in the
   first minute, and once the services are past a minute old.

Timing is done from outside: bytes are written to the terminal's master side and the clock stops at the
first output that contains what the frame must show, so rendering and the terminal write are included.
Every process started is stopped (``q`` ``y``, then SIGTERM/SIGKILL of its group if it hangs).
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import random
import re
import select
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from ..core.config import demo_config_text
from ..core.store import Store
from .fleetkit import free_offset

SERVICES = ("aurora_ui", "bridge_api", "learning_api", "file_server")
KEYS = {"down": "\x1b[B", "pagedown": "\x1b[6~", "end": "\x1b[F", "2": "2", "o": "o", "q": "q", "y": "y", "1": "1"}
ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[@-Z\\-_]|\x1b\][^\x07]*(\x07|\x1b\\)")


# --- a database with many incidents ------------------------------------------------------------------


def make_incidents_db(db: Path, count: int, services: tuple[str, ...] = SERVICES, now: float | None = None, seed: int = 7) -> int:
    """``count`` incidents over the last days, newest last, written in one transaction. All but the newest
    few are resolved (one open incident per (service, pattern), as the engine keeps them); the open ones
    belong to services that are no longer configured. Returns how many are open."""
    asyncio.run(_migrate(db))
    return write_incidents(db, count, services, now, seed)


async def fill_incidents_db(db: Path, count: int, services: tuple[str, ...] = SERVICES, now: float | None = None, seed: int = 7) -> int:
    """The same from inside an event loop."""
    await _migrate(db)
    return await asyncio.to_thread(write_incidents, db, count, services, now, seed)


def write_incidents(db: Path, count: int, services: tuple[str, ...], now: float | None, seed: int) -> int:
    from ..core.patterns import load_patterns

    patterns = list(load_patterns().values())
    rng = random.Random(seed)
    now = time.time() if now is None else now
    span = 7 * 86400.0
    open_keys: set[tuple[str, str]] = set()
    rows = []
    for i in range(count):
        opened = now - span + span * (i + 1) / (count + 1)
        service = services[rng.randrange(len(services))]
        pattern = patterns[rng.randrange(len(patterns))]
        recent = i >= count - 12
        if recent:
            # Open incidents of a service no longer in the fleet: no detection pass resolves them, so the
            # number of open incidents stays what was written.
            service = f"retired_{service}"
        is_open = recent and (service, pattern.id) not in open_keys
        if is_open:
            open_keys.add((service, pattern.id))
        resolved = None if is_open else opened + rng.uniform(5, 600)
        rows.append((
            service, pattern.id, "open" if is_open else "resolved", pattern.severity, rng.randint(4, 10),
            f"{pattern.title} on {service} (synthetic #{i + 1})", '{"synthetic": true}', opened - 2.0, opened, opened + 30.0,
            resolved, rng.randint(1, 20), 2.0, None if resolved is None else resolved - opened + 2.0,
        ))
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            conn.executemany(
                "INSERT INTO incidents(service, pattern, status, severity, confidence, summary, evidence_json, onset_at, opened_at, "
                "last_seen, resolved_at, count, detect_seconds, recover_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    finally:
        conn.close()
    return len(open_keys)


async def _migrate(db: Path) -> None:
    store = await Store.open(db)
    await store.close()


# --- a console in a pseudo-terminal --------------------------------------------------------------------


class PtyConsole:
    """``aurora`` running on the slave side of a pty of ``width`` x ``height``; this side reads and types."""

    def __init__(self, args: list[str], width: int = 120, height: int = 40, env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        environment = dict(os.environ if env is None else env)
        environment.update(TERM="xterm-256color", COLUMNS=str(width), LINES=str(height))
        environment.pop("TEXTUAL", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aurora_tui", *args], stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, env=environment, close_fds=True,
        )
        os.close(slave)
        self._lock = threading.Condition()
        self._chunks: list[tuple[float, str]] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if not ready:
                    if self.proc.poll() is not None:
                        break
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            with self._lock:
                self._chunks.append((time.perf_counter(), data.decode("utf-8", "replace")))
                self._lock.notify_all()
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def mark(self) -> int:
        with self._lock:
            return len(self._chunks)

    def wait_for(self, needles: tuple[str, ...], since: int = 0, timeout: float = 60.0) -> float:
        """The time of the first output (after chunk ``since``) by which all ``needles`` were seen."""
        deadline = time.perf_counter() + timeout
        with self._lock:
            while True:
                text = ""
                for stamp, chunk in self._chunks[since:]:
                    text += chunk
                    plain = ANSI.sub("", text)
                    if all(n in plain for n in needles):
                        return stamp
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._closed:
                    tail = ANSI.sub("", "".join(c for _, c in self._chunks[-20:]))[-800:]
                    raise TimeoutError(f"no frame with {needles} after {timeout:g}s; last output: {tail!r}")
                self._lock.wait(min(remaining, 0.5))

    def press(self, key: str) -> float:
        os.write(self.master, KEYS.get(key, key).encode())
        return time.perf_counter()

    def quiet(self, for_s: float = 0.15, timeout: float = 10.0) -> None:
        """Wait until nothing has been written for ``for_s`` seconds."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self._lock:
                last = self._chunks[-1][0] if self._chunks else 0.0
            if time.perf_counter() - last >= for_s:
                return
            time.sleep(for_s / 3)

    def close(self) -> int | None:
        if self.proc.poll() is None:
            try:
                self.press("q")
                time.sleep(0.3)
                self.press("y")
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(self.proc.pid, sig)
                        self.proc.wait(10)
                        break
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        continue
        try:
            os.close(self.master)
        except OSError:
            pass
        return self.proc.returncode




def _fleet(tmp: Path, interval: float) -> list[str]:
    config = tmp / "fleet.toml"
    config.write_text(demo_config_text(free_offset()).replace("\n[aurora]\n", f'\n[aurora]\nlog_dir = "{tmp / "logs"}"\n', 1))
    return ["--config", str(config), "--db", str(tmp / "aurora.db"), "--interval", str(interval)]


# --- the benchmarks ---------------------------------------------------------------------------------


def first_frame(runs: int = 3) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            console = PtyConsole(_fleet(Path(tmp), 15.0))
            try:
                shown = console.wait_for(SERVICES)
                times.append(shown - console.started)
            finally:
                console.close()
    return {"runs": runs, "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "max_s": round(max(times), 3)}


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def incidents(count: int = 100_000, presses: int = 30) -> dict[str, Any]:
    result: dict[str, Any] = {"incidents": count}
    for size in (10, count):
        with tempfile.TemporaryDirectory() as tmp:
            args = _fleet(Path(tmp), 15.0)
            db = Path(tmp) / "aurora.db"
            started = time.perf_counter()
            open_count = make_incidents_db(db, size)
            build = time.perf_counter() - started
            console = PtyConsole(args)
            try:
                console.wait_for(SERVICES)
                console.quiet(0.5)
                # The first visit reads the first page from SQLite; the newest incident's id is on the first row.
                mark = console.mark()
                sent = console.press("2")
                entry: dict[str, Any] = {"open_ms": round((console.wait_for(("INCIDENTS", f" {size} "), since=mark) - sent) * 1000, 1)}
                console.quiet()
                switches = []
                for _ in range(3):
                    mark = console.mark()
                    console.press("1")
                    console.wait_for(("SERVICES",), since=mark)
                    console.quiet()
                    mark = console.mark()
                    sent = console.press("2")
                    switches.append(console.wait_for(("INCIDENTS", f" {size} "), since=mark) - sent)
                    console.quiet()
                entry["switch_ms"] = round(statistics.median(switches) * 1000, 1)
                if size == count:
                    result["build_db_s"] = round(build, 2)
                    latencies: dict[str, list[float]] = {"down": [], "pagedown": [], "o": []}
                    for n in range(presses):
                        for key in ("down", "pagedown"):
                            mark = console.mark()
                            sent = console.press(key)
                            latencies[key].append(console.wait_for(("",), since=mark) - sent)
                            console.quiet(0.05)
                    for n in range(6):
                        mark = console.mark()
                        sent = console.press("o")
                        # Until the new query's rows are drawn (the status line counts them), not just the label.
                        needles = ("open only", f"{open_count} loaded") if n % 2 == 0 else ("all incidents", "200 loaded")
                        latencies["o"].append(console.wait_for(needles, since=mark) - sent)
                        console.quiet(0.1)
                    for key, values in latencies.items():
                        entry[f"{key}_ms_p50"] = round(_percentile(values, 50) * 1000, 1)
                        entry[f"{key}_ms_p95"] = round(_percentile(values, 95) * 1000, 1)
                result[f"db_{size}"] = entry
            finally:
                console.close()
    return result


def idle_cpu(window_s: float = 30.0) -> dict[str, Any]:
    """Two windows: while the services are young (their uptimes tick every second on screen), and once
    they are past a minute (uptimes move once a minute; the header's scan age still ticks)."""
    with tempfile.TemporaryDirectory() as tmp:
        console = PtyConsole(_fleet(Path(tmp), 15.0), width=100, height=30)
        try:
            console.wait_for(SERVICES)
            console.wait_for(("4/4 healthy",), timeout=60)
            time.sleep(3.0)  # let start-up settle
            proc = psutil.Process(console.proc.pid)

            def window() -> float:
                before, t0 = proc.cpu_times(), time.perf_counter()
                time.sleep(window_s)
                after, wall = proc.cpu_times(), time.perf_counter() - t0
                return round(100 * ((after.user - before.user) + (after.system - before.system)) / wall, 2)

            young = window()
            time.sleep(max(0.0, console.started + 65.0 - time.perf_counter()))
            steady = window()
        finally:
            console.close()
    return {"window_s": window_s, "interval_s": 15.0, "cpu_percent_first_minute": young, "cpu_percent": steady}


def run(idle_window_s: float = 30.0, count: int = 100_000) -> dict[str, Any]:
    frame = first_frame()
    paged = incidents(count)
    idle = idle_cpu(idle_window_s)
    big, small = paged[f"db_{count}"], paged["db_10"]
    report = "\n".join([
        "console (real aurora in a pseudo-terminal, 120x40)",
        f"  start to first full frame      {frame['median_s']:.2f} s median of {frame['runs']} (min {frame['min_s']:.2f}, max {frame['max_s']:.2f})",
        f"  incidents screen, 10 rows      {small['open_ms']:.0f} ms from key to frame",
        f"  incidents screen, {count:,} rows {big['open_ms']:.0f} ms from key to frame (db built in {paged['build_db_s']:.1f} s)",
        f"  key to frame at {count:,}: down p50 {big['down_ms_p50']:.0f} ms p95 {big['down_ms_p95']:.0f} ms; "
        f"pagedown p50 {big['pagedown_ms_p50']:.0f} ms p95 {big['pagedown_ms_p95']:.0f} ms; "
        f"o (a new query, until its rows are drawn) p50 {big['o_ms_p50']:.0f} ms p95 {big['o_ms_p95']:.0f} ms",
        f"  idle CPU (own engine, demo fleet, 15 s scans)  {idle['cpu_percent']:.2f} % of a core over {idle['window_s']:.0f} s "
        f"({idle['cpu_percent_first_minute']:.2f} % in the first minute, while every uptime ticks each second)",
    ])
    return {"benchmark": "console", "first_frame": frame, "incidents": paged, "idle": idle, "report": report}


if __name__ == "__main__":
    print(run()["report"])
