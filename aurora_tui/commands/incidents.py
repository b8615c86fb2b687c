"""Incidents: read straight from the database (no engine needed), acknowledged and silenced through it.

``aurora incident N`` also shows the service's per-minute roll-ups around the incident (from
:data:`MINUTES_BEFORE` minutes before it opened to its resolution, or now), so what the service did
before and during it is there after the raw samples are gone. The minute an engine is still taking
is in its memory, not the database: it shows once written.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import datetime

from ..core import rollup
from ..core.api import MinuteRow, TimelineEntry
from ..core.format import bytes_h, duration_h
from ..core.incidents import INCIDENT_FIELDS as COLUMNS, incident_query, incident_row
from ..core.model import to_jsonable
from ..core.remote import RemoteEngine
from .common import duration, on_engine, print_json, read_db, target_db, target_options

INCIDENT_FIELDS = ("id", "service", "pattern", "status", "confidence", "opened_at", "resolved_at", "count", "summary", "evidence")
# The roll-ups shown with an incident: from this many minutes before it opened to its end; a long one
# shows its first and last MAX_MINUTES_SHOWN / 2 minutes.
MINUTES_BEFORE = 10
MAX_MINUTES_SHOWN = 60


def register(sub: argparse._SubParsersAction) -> None:
    incidents_p = sub.add_parser("incidents", help="incidents, newest first (reads the database; no engine needed)")
    target_options(incidents_p)
    incidents_p.add_argument("--json", action="store_true")
    incidents_p.add_argument("--service")
    incidents_p.add_argument("--pattern")
    incidents_p.add_argument("--since", type=duration, help="only those opened within this long, e.g. 1h")
    incidents_p.add_argument("--open", action="store_true", help="only incidents that are not resolved")
    incidents_p.add_argument("-n", "--limit", type=int, default=50)
    incidents_p.set_defaults(func=incidents)

    incident_p = sub.add_parser("incident", help="one incident with its timeline")
    target_options(incident_p)
    incident_p.add_argument("id", type=int)
    incident_p.add_argument("--json", action="store_true")
    incident_p.set_defaults(func=incident)

    ack_p = sub.add_parser("ack", help="acknowledge an incident")
    target_options(ack_p)
    ack_p.add_argument("id", type=int)
    ack_p.set_defaults(func=ack)

    silence_p = sub.add_parser("silence", help="open no new incidents for a service for a while")
    target_options(silence_p)
    silence_p.add_argument("service", help="a service name, or (host) for host-level patterns")
    silence_p.add_argument("--for", dest="duration", type=duration, required=True, help="e.g. 30m, 2h")
    silence_p.add_argument("--reason", default="")
    silence_p.set_defaults(func=silence)

    unsilence_p = sub.add_parser("unsilence", help="lift a service's silence")
    target_options(unsilence_p)
    unsilence_p.add_argument("service")
    unsilence_p.set_defaults(func=unsilence)


def incidents(args: argparse.Namespace) -> int:
    since = time.time() - args.since if args.since else None
    sql, params = incident_query(service=args.service, pattern=args.pattern, open_only=args.open, since=since, limit=args.limit)
    with read_db(target_db(args)) as conn:
        rows = [incident_row(r) for r in conn.execute(sql, params)]
    if args.json:
        print_json([{k: getattr(r, k) for k in INCIDENT_FIELDS} for r in rows])
        return 0
    if not rows:
        print("no incidents")
        return 0
    now = time.time()
    print(f"{'ID':>5}  {'STATUS':<17} {'CONF':>4} {'COUNT':>5} {'AGE':>7}  {'SERVICE':<14} {'PATTERN':<24} SUMMARY")
    for r in rows:
        print(
            f"{r.id:>5}  {r.status:<17} {r.confidence:>4} {r.count:>5} {duration_h(now - r.opened_at):>7}  "
            f"{r.service:<14} {r.pattern:<24} {r.summary[:90]}"
        )
    return 0


def incident(args: argparse.Namespace) -> int:
    with read_db(target_db(args)) as conn:
        row = conn.execute(f"SELECT {COLUMNS} FROM incidents WHERE id = ?", (args.id,)).fetchone()
        if row is None:
            print(f"aurora: no incident #{args.id}", file=sys.stderr)
            return 1
        found = incident_row(row)
        found.timeline = [TimelineEntry(e["ts"], e["kind"], e["message"], json.loads(e["data_json"])) for e in conn.execute(
            "SELECT ts, kind, message, data_json FROM incident_events WHERE incident_id = ? ORDER BY ts, id", (args.id,))]
        minutes, left_out = incident_minutes(conn, found.service, found.opened_at, found.resolved_at or time.time())
    if args.json:
        data = to_jsonable(found)
        # The order this command has always printed: evidence after the columns, then the timeline.
        data["evidence"] = data.pop("evidence")
        data["timeline"] = data.pop("timeline")
        data["minutes"] = to_jsonable(minutes)
        data["minutes_left_out"] = left_out
        print_json(data, default=str)
        return 0
    print(f"#{found.id} {found.pattern} on {found.service}: {found.status}, confidence {found.confidence}/10, seen {found.count}x")
    print(f"  {found.summary}")
    print(f"  time to detect {found.detect_seconds:.1f}s" + (f", recovered after {found.recover_seconds:.1f}s" if found.recover_seconds else ""))
    if found.caused_by:
        print(f"  caused by incident #{found.caused_by}")
    print("timeline:")
    for e in found.timeline:
        print(f"  {datetime.fromtimestamp(e.ts).strftime('%H:%M:%S')}  {e.kind:<12} {e.message}")
    print("evidence:")
    print("  " + json.dumps(found.evidence, indent=2, default=str).replace("\n", "\n  "))
    if minutes:
        print(f"per minute, from {MINUTES_BEFORE} minutes before it opened (min/avg/max):")
        print(f"  {'MINUTE':<8} {'OK':>7}  {'CPU %':<17} {'RSS':<20} {'LATENCY ms':<20} STATE")
        half = len(minutes) // 2 if left_out else len(minutes)
        for i, row in enumerate(minutes):
            if left_out and i == half:
                print(f"  ... {left_out} minutes left out")
            print("  " + minute_line(row))
    return 0


def incident_minutes(conn: sqlite3.Connection, service: str, opened_at: float, until: float) -> tuple[list[MinuteRow], int]:
    """The service's stored roll-ups around an incident, capped at MAX_MINUTES_SHOWN (its first and last
    halves), and how many minutes were left out. None in a database no engine of this version opened yet."""
    period = rollup.PERIOD
    first, last = rollup.bucket_of(opened_at - MINUTES_BEFORE * 60, period), rollup.bucket_of(until, period)
    sql, params = rollup.history_query(first, last, service, limit=rollup.MAX_HISTORY_ROWS)
    try:
        rows = [rollup.minute_row(r, period) for r in conn.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return [], 0
        raise
    rows.reverse()  # the query gives the newest first
    if len(rows) <= MAX_MINUTES_SHOWN:
        return rows, 0
    half = MAX_MINUTES_SHOWN // 2
    return rows[:half] + rows[-half:], len(rows) - 2 * half


def _spread(lo: float | None, avg: float | None, hi: float | None, show) -> str:
    return "-" if avg is None else "/".join(show(v) for v in (lo, avg, hi))


def minute_line(row: MinuteRow) -> str:
    when = datetime.fromtimestamp(row.start).strftime("%H:%M")
    cpu = _spread(row.cpu_min, row.cpu_avg, row.cpu_max, lambda v: f"{v:.1f}")
    rss = _spread(row.rss_min, row.rss_avg, row.rss_max, bytes_h)
    latency = _spread(row.latency_min, row.latency_avg, row.latency_max, lambda v: f"{v:.0f}")
    return f"{when:<8} {row.healthy:>3}/{row.samples:<3}  {cpu:<17} {rss:<20} {latency:<20} {row.state or '-'}"


@on_engine
async def ack(engine: RemoteEngine, args: argparse.Namespace) -> int:
    row = await engine.acknowledge(args.id)
    print(f"incident #{row.id} acknowledged ({row.pattern} on {row.service})")
    return 0


@on_engine
async def silence(engine: RemoteEngine, args: argparse.Namespace) -> int:
    row = await engine.silence(args.service, args.duration, reason=args.reason)
    print(f"{args.service} silenced for {duration_h(args.duration)}: {row.reason}")
    return 0


@on_engine
async def unsilence(engine: RemoteEngine, args: argparse.Namespace) -> int:
    result = await engine.unsilence(args.service)
    print(f"{args.service}: silence lifted" if result.removed else f"{args.service} was not silenced")
    return 0
