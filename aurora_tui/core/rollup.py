"""Minute roll-ups of service samples, and which raw samples are worth a row. Pure: no I/O.

Why this exists: a row per service per scan cannot fit the disk budget (200 services at the default
15 s are 1.15 M rows a day). So every sample is folded, in memory, into its service's current minute
(:class:`Bucket`: how many samples, how many healthy, cpu/rss/latency min/avg/max, fds/threads/
connections max, the last state and pid), and the minute is written once, when it closes. A raw sample
is written only when it says something new (:func:`worth_keeping`); every raw row is still a real
sample as taken, never an average.

What is stored is small integers (the table is ``sample_minutes``, migration 0006): cpu in tenths of a
percent, rss in KiB, latency in tenths of a millisecond, the state as a code, the service as an id.
:func:`minute_row` turns a stored row back into a :class:`~aurora_tui.core.api.MinuteRow` in natural
units. The SQL that rolls raw rows up (for minutes an engine died before writing) rounds the same way
as :meth:`Bucket.stored`, so both give the same figures for the same samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .api import MinuteRow
from .model import ServiceSample

#: Seconds per roll-up. A module attribute so that a test can shorten it instead of waiting a minute;
#: the ``minute`` column holds ``floor(ts / PERIOD)``, so one database must always use one period.
PERIOD = 60
#: Roll-ups are kept this long (raw samples: the configured ``retention_hours``).
KEEP_DAYS = 30
#: The most rows one history page holds (200 services over an hour fit); the newest are kept.
MAX_HISTORY_ROWS = 20_000
#: The longest window a history page may ask for, in roll-up periods: everything that is kept.
MAX_HISTORY_MINUTES = KEEP_DAYS * 24 * 60

# The state as stored. Codes are fixed here (not derived from the enum's order) so that adding a state
# never changes what an old row means; a state not listed is stored as NULL.
STATE_CODES = {"starting": 1, "running": 2, "stopping": 3, "stopped": 4, "backoff": 5, "failed": 6, "unmanaged": 7}
STATE_NAMES = {code: name for name, code in STATE_CODES.items()}

# Scale of each stored figure: value as stored = round(value * scale).
CPU_SCALE = 10.0  # tenths of a percent
RSS_SCALE = 1 / 1024  # KiB
LATENCY_SCALE = 10.0  # tenths of a millisecond


@dataclass(frozen=True)
class Tolerances:
    """When a raw sample is worth a row though nothing discrete changed. Detection never reads these
    rows (it has every sample in memory), so they only need to show how a service moved: small moves
    are the noise of one measurement, not news."""

    # CPU of a quiet process jumps by a point or two between scans just from when the scan fell.
    cpu_points: float = 5.0
    # RSS creeps by allocator pages; 5 % is a change a person looking at the history would notice.
    rss_fraction: float = 0.05
    # fds/threads/connections: 10 %, but at least this many, or a health check's own connection
    # (0 <-> 1) would write a row on every scan.
    count_fraction: float = 0.10
    count_floor: int = 2
    # A quiet service still leaves a raw row this often, so the raw table shows it was watched.
    heartbeat_s: float = 300.0


KEEP = Tolerances()

# Process statuses that are news; the rest (running, sleeping, disk-sleep, idle) flip from scan to
# scan with what the process happened to be doing.
NOTABLE_STATUSES = frozenset({"stopped", "tracing-stop", "zombie", "dead"})


def bucket_of(ts: float, period: float) -> int:
    return int(math.floor(ts / period))


def scaled(value: float | None, scale: float) -> int | None:
    """A figure as stored: rounded half up, as SQLite's round() does for the non-negative figures here."""
    return None if value is None else int(math.floor(value * scale + 0.5))


def _moved(old: float | None, new: float | None, fraction: float, floor: float = 0.0) -> bool:
    if old is None or new is None:
        return old is not new
    return abs(new - old) > max(abs(old) * fraction, floor)


def _status_class(status: str) -> str:
    return status if status in NOTABLE_STATUSES else "alive"


def worth_keeping(last_written: ServiceSample | None, sample: ServiceSample, tolerances: Tolerances = KEEP) -> bool:
    """Whether ``sample`` says something the last raw row of its service (``last_written``) does not:
    a state, pid or health change, a port holder, zombies or children, resource figures beyond the
    tolerances, or the heartbeat period passed."""
    last, t = last_written, tolerances
    if last is None or sample.ts - last.ts >= t.heartbeat_s or sample.state != last.state:
        return True
    p, q = last.process, sample.process
    if (p is None) != (q is None):
        return True
    if p is not None and q is not None:
        if (p.pid, _status_class(p.status), p.children, p.zombies) != (q.pid, _status_class(q.status), q.children, q.zombies):
            return True
        if abs(q.cpu_percent - p.cpu_percent) > t.cpu_points or _moved(p.rss, q.rss, t.rss_fraction):
            return True
        if any(_moved(a, b, t.count_fraction, t.count_floor) for a, b in (
            (p.fds, q.fds), (p.threads, q.threads), (p.connections, q.connections),
        )):
            return True
    a, b = last.port, sample.port
    if (a is None) != (b is None) or (a is not None and b is not None and (a.listening, a.holder_pid) != (b.listening, b.holder_pid)):
        return True
    g, h = last.health, sample.health
    if (g is None) != (h is None):
        return True
    return g is not None and h is not None and (g.ok, g.status_code, g.error) != (h.ok, h.status_code, h.error)


# --- the accumulator ---------------------------------------------------------------------------------


@dataclass
class Stat:
    """Minimum, maximum and running total of one figure, over the samples that had it."""

    lo: float | None = None
    hi: float | None = None
    total: float = 0.0
    n: int = 0

    def add(self, value: float | None) -> None:
        if value is None:
            return
        self.lo = value if self.lo is None else min(self.lo, value)
        self.hi = value if self.hi is None else max(self.hi, value)
        self.total += value
        self.n += 1

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def stored(self, scale: float) -> tuple[int | None, int | None, int | None]:
        return scaled(self.lo, scale), scaled(self.mean, scale), scaled(self.hi, scale)


def _top(current: int | None, value: int | None) -> int | None:
    if value is None:
        return current
    return value if current is None else max(current, value)


@dataclass
class Bucket:
    """One service's samples within one roll-up period."""

    service: str
    minute: int  # floor(ts / period)
    samples: int = 0
    healthy: int = 0
    cpu: Stat = field(default_factory=Stat)
    rss: Stat = field(default_factory=Stat)
    latency: Stat = field(default_factory=Stat)
    fds_max: int | None = None
    threads_max: int | None = None
    connections_max: int | None = None
    state: str | None = None
    pid: int | None = None

    def add(self, s: ServiceSample) -> None:
        self.samples += 1
        self.healthy += bool(s.health is not None and s.health.ok)
        p = s.process
        self.cpu.add(p.cpu_percent if p else None)
        self.rss.add(p.rss if p else None)
        self.latency.add(s.health.latency_ms if s.health is not None else None)
        if p is not None:
            self.fds_max = _top(self.fds_max, p.fds)
            self.threads_max = _top(self.threads_max, p.threads)
            self.connections_max = _top(self.connections_max, p.connections)
        self.state, self.pid = s.state, (p.pid if p else None)

    def stored(self) -> tuple[Any, ...]:
        """The values of :data:`ROLLUP_COLUMNS` for this bucket, as written."""
        return (
            self.minute, self.service, self.samples, self.healthy,
            *self.cpu.stored(CPU_SCALE), *self.rss.stored(RSS_SCALE), *self.latency.stored(LATENCY_SCALE),
            self.fds_max, self.threads_max, self.connections_max, STATE_CODES.get(self.state or ""), self.pid,
        )

    def row(self, period: float, still_open: bool = False) -> MinuteRow:
        names = ("minute", "service", *ROLLUP_COLUMNS[2:])
        return minute_row(dict(zip(names, self.stored())), period, still_open=still_open)


class MinuteRollups:
    """Every service's open bucket. :meth:`add` folds a scan's samples in and hands back the buckets
    that closed (the first scan after a period's end closes it); :meth:`close_all` hands back the rest
    (the engine is closing)."""

    def __init__(self, period: float | None = None) -> None:
        self.period = float(period if period is not None else PERIOD)
        self.open: dict[str, Bucket] = {}

    def add(self, samples: Iterable[ServiceSample], now: float) -> list[Bucket]:
        closed = []
        for s in samples:
            minute = bucket_of(s.ts, self.period)
            bucket = self.open.get(s.service)
            if bucket is not None and bucket.minute != minute:
                closed.append(bucket)
                bucket = None
            if bucket is None:
                bucket = self.open[s.service] = Bucket(s.service, minute)
            bucket.add(s)
        # A service missing from this scan still has its minute closed on time.
        current = bucket_of(now, self.period)
        for name, bucket in list(self.open.items()):
            if bucket.minute < current:
                closed.append(self.open.pop(name))
        return closed

    def close_all(self) -> list[Bucket]:
        closed, self.open = list(self.open.values()), {}
        return closed


def merged(a: MinuteRow, b: MinuteRow) -> MinuteRow:
    """Two parts of one service's minute (written by an engine that stopped, and kept by the one that
    followed it within the same minute) as one. Averages are weighted by sample count."""

    def lo(x: Any, y: Any) -> Any:
        return y if x is None else x if y is None else min(x, y)

    def hi(x: Any, y: Any) -> Any:
        return y if x is None else x if y is None else max(x, y)

    def mean(x: float | None, y: float | None) -> float | None:
        if x is None or y is None:
            return y if x is None else x
        return (x * a.samples + y * b.samples) / (a.samples + b.samples)

    return MinuteRow(
        service=a.service, start=a.start, seconds=a.seconds, samples=a.samples + b.samples, healthy=a.healthy + b.healthy,
        cpu_min=lo(a.cpu_min, b.cpu_min), cpu_avg=mean(a.cpu_avg, b.cpu_avg), cpu_max=hi(a.cpu_max, b.cpu_max),
        rss_min=lo(a.rss_min, b.rss_min), rss_avg=mean(a.rss_avg, b.rss_avg), rss_max=hi(a.rss_max, b.rss_max),
        latency_min=lo(a.latency_min, b.latency_min), latency_avg=mean(a.latency_avg, b.latency_avg),
        latency_max=hi(a.latency_max, b.latency_max),
        fds_max=hi(a.fds_max, b.fds_max), threads_max=hi(a.threads_max, b.threads_max),
        connections_max=hi(a.connections_max, b.connections_max),
        state=b.state, pid=b.pid, still_open=a.still_open or b.still_open,
    )


# --- the SQL -----------------------------------------------------------------------------------------

ROLLUP_COLUMNS = (
    "minute", "service_id", "samples", "healthy",
    "cpu_min", "cpu_avg", "cpu_max", "rss_min", "rss_avg", "rss_max", "latency_min", "latency_avg", "latency_max",
    "fds_max", "threads_max", "connections_max", "state", "pid",
)
_MINS = ("cpu_min", "rss_min", "latency_min")
_MAXES = ("cpu_max", "rss_max", "latency_max", "fds_max", "threads_max", "connections_max")
_AVGS = ("cpu_avg", "rss_avg", "latency_avg")

SERVICE_ID_INSERT = "INSERT INTO service_ids(name) VALUES (?) ON CONFLICT DO NOTHING"


def _upsert() -> str:
    # A second write of one (minute, service) comes from an engine that started within the minute the
    # previous one closed in: the two parts are merged. On the right of SET, columns are the old values.
    sets = ["samples = samples + excluded.samples", "healthy = healthy + excluded.healthy"]
    sets += [f"{c} = min(coalesce({c}, excluded.{c}), coalesce(excluded.{c}, {c}))" for c in _MINS]
    sets += [f"{c} = max(coalesce({c}, excluded.{c}), coalesce(excluded.{c}, {c}))" for c in _MAXES]
    sets += [
        f"{c} = CASE WHEN {c} IS NULL THEN excluded.{c} WHEN excluded.{c} IS NULL THEN {c} "
        f"ELSE CAST(round((1.0 * {c} * samples + excluded.{c} * excluded.samples) / (samples + excluded.samples)) AS INTEGER) END"
        for c in _AVGS
    ]
    sets += ["state = excluded.state", "pid = excluded.pid"]
    values = ", ".join("(SELECT id FROM service_ids WHERE name = ?)" if c == "service_id" else "?" for c in ROLLUP_COLUMNS)
    return (
        f"INSERT INTO sample_minutes({', '.join(ROLLUP_COLUMNS)}) VALUES ({values}) "
        f"ON CONFLICT(minute, service_id) DO UPDATE SET {', '.join(sets)}"
    )


ROLLUP_UPSERT = _upsert()


def _sql_scaled(expr: str, scale: float) -> str:
    return f"CAST(round({expr} * {scale!r}) AS INTEGER)"


def _from_raw() -> str:
    """Roll raw rows older than a cutoff up into the minutes that have no roll-up yet (an engine died
    before writing them, or the rows predate roll-ups). Parameters: period, cutoff."""
    state = "CASE state " + " ".join(f"WHEN '{name}' THEN {code}" for name, code in STATE_CODES.items()) + " END"
    figures = []
    for column, scale in (("cpu_percent", CPU_SCALE), ("rss", RSS_SCALE), ("latency_ms", LATENCY_SCALE)):
        figures += [_sql_scaled(f"{agg}({column})", scale) for agg in ("min", "avg", "max")]
    return (
        "WITH raw AS ("
        "SELECT service, CAST(ts / :period AS INTEGER) AS m, healthy, cpu_percent, rss, latency_ms, fds, threads, connections, "
        f"{state} AS state_code, pid, "
        "row_number() OVER (PARTITION BY service, CAST(ts / :period AS INTEGER) ORDER BY ts DESC, id DESC) AS newest "
        "FROM samples WHERE ts < :cutoff) "
        f"INSERT INTO sample_minutes({', '.join(ROLLUP_COLUMNS)}) "
        "SELECT r.m, i.id, count(*), count(CASE WHEN r.healthy = 1 THEN 1 END), "
        f"{', '.join(figures)}, max(r.fds), max(r.threads), max(r.connections), "
        "max(CASE WHEN r.newest = 1 THEN r.state_code END), max(CASE WHEN r.newest = 1 THEN r.pid END) "
        "FROM raw r JOIN service_ids i ON i.name = r.service WHERE true GROUP BY r.service, r.m "
        "ON CONFLICT DO NOTHING"
    )


ROLLUP_FROM_RAW = _from_raw()
SERVICE_IDS_FROM_RAW = "INSERT INTO service_ids(name) SELECT DISTINCT service FROM samples WHERE ts < :cutoff ON CONFLICT DO NOTHING"

_SELECT = f"SELECT i.name AS service, {', '.join('r.' + c for c in ROLLUP_COLUMNS if c != 'service_id')} " \
          "FROM sample_minutes r JOIN service_ids i ON i.id = r.service_id"


def history_query(first: int, last: int, service: str | None, limit: int = MAX_HISTORY_ROWS) -> tuple[str, tuple[Any, ...]]:
    """The stored roll-ups from bucket ``first`` to ``last`` (both included), of one service or all,
    newest first, at most ``limit`` rows."""
    where, params = "r.minute BETWEEN ? AND ?", [int(first), int(last)]
    if service is not None:
        where += " AND r.service_id = (SELECT id FROM service_ids WHERE name = ?)"
        params.append(service)
    return f"{_SELECT} WHERE {where} ORDER BY r.minute DESC, r.service_id LIMIT ?", (*params, int(limit))


def minute_row(row: Mapping[str, Any], period: float, still_open: bool = False) -> MinuteRow:
    """A stored roll-up (by column name) in natural units."""

    def unscaled(column: str, scale: float) -> float | None:
        value = row[column]
        return None if value is None else value / scale

    def whole(column: str, scale: float) -> int | None:
        value = row[column]
        return None if value is None else int(round(value / scale))

    return MinuteRow(
        service=row["service"], start=row["minute"] * period, seconds=period, samples=row["samples"], healthy=row["healthy"],
        cpu_min=unscaled("cpu_min", CPU_SCALE), cpu_avg=unscaled("cpu_avg", CPU_SCALE), cpu_max=unscaled("cpu_max", CPU_SCALE),
        rss_min=whole("rss_min", RSS_SCALE), rss_avg=whole("rss_avg", RSS_SCALE), rss_max=whole("rss_max", RSS_SCALE),
        latency_min=unscaled("latency_min", LATENCY_SCALE), latency_avg=unscaled("latency_avg", LATENCY_SCALE),
        latency_max=unscaled("latency_max", LATENCY_SCALE),
        fds_max=row["fds_max"], threads_max=row["threads_max"], connections_max=row["connections_max"],
        state=STATE_NAMES.get(row["state"]) if row["state"] is not None else None, pid=row["pid"], still_open=still_open,
    )


def window(minutes: int, until: float, period: float) -> tuple[int, int]:
    """The first and last bucket of a history page of ``minutes`` periods ending at ``until``."""
    last = bucket_of(until, period)
    return last - int(minutes) + 1, last


def sorted_rows(rows: Sequence[MinuteRow]) -> list[MinuteRow]:
    return sorted(rows, key=lambda r: (r.service, r.start))
