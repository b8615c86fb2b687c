"""Incidents, kept the way on-call people expect: one open incident per (service, pattern), repeats
counted rather than duplicated, a timeline of what happened, and silences that say what they hid.

The book holds the open incidents in memory (loaded at start, so they survive an engine restart) and
writes every change through the store. Opening an incident is acknowledged: its id exists on disk
before anyone is told about it.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from .api import IncidentRow
from .diagnose import Diagnosis
from .patterns import load_patterns
from .store import StorageUnavailable, Store, dumps

log = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "acknowledged", "healing", "awaiting_approval", "escalated")
INCIDENT_FIELDS = (
    "id, service, pattern, status, severity, confidence, summary, evidence_json, onset_at, opened_at, "
    "last_seen, resolved_at, count, detect_seconds, recover_seconds, caused_by, acknowledged_by"
)


@dataclass
class OpenIncident:
    id: int
    service: str
    pattern: str
    status: str
    opened_at: float
    confidence: int
    clear_streak: int = 0


@dataclass
class Silence:
    id: int
    service: str
    until: float
    reason: str
    announced: set[str] = field(default_factory=set)


@dataclass
class Change:
    """What a pass did, for the engine's event stream."""

    kind: str  # opened | repeated | resolved | suppressed
    incident_id: int | None
    service: str
    pattern: str
    message: str


def incident_row(row: Any) -> IncidentRow:
    data = dict(row)
    data["evidence"] = json.loads(data.pop("evidence_json") or "{}")
    return IncidentRow(**data)


class IncidentBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.open: dict[tuple[str, str], OpenIncident] = {}
        self.silences: dict[str, Silence] = {}
        # Incident ids are given here, not by SQLite: an incident opens (and is healed) even while the
        # storage refuses its commit; its row lands with that id once it can.
        self._last_id = 0

    async def load(self) -> None:
        rows = await self.store.fetch(
            "SELECT id, service, pattern, status, opened_at, confidence FROM incidents WHERE resolved_at IS NULL"
        )
        self.open = {(r["service"], r["pattern"]): OpenIncident(r["id"], r["service"], r["pattern"], r["status"], r["opened_at"], r["confidence"]) for r in rows}
        now = time.time()
        rows = await self.store.fetch("SELECT id, service, until, reason FROM silences WHERE until > ? ORDER BY until", (now,))
        self.silences = {r["service"]: Silence(r["id"], r["service"], r["until"], r["reason"]) for r in rows}
        row = await self.store.fetch_one("SELECT coalesce(max(id), 0) AS n FROM incidents")
        self._last_id = int(row["n"]) if row else 0

    # --- the pass ---------------------------------------------------------------------------------------

    async def record(self, diagnoses: Iterable[Diagnosis], scope: Iterable[str], now: float) -> list[Change]:
        """Apply one detection pass over the services in ``scope``: open or repeat what was diagnosed,
        resolve what has been clear for long enough."""
        patterns = load_patterns()
        scope = set(scope)
        changes: list[Change] = []
        seen: set[tuple[str, str]] = set()
        # Causes first, so a dependant opened in the same pass can point at its dependency's incident.
        for d in sorted(diagnoses, key=lambda d: d.pattern == "dependency_down"):
            key = (d.service, d.pattern)
            seen.add(key)
            current = self.open.get(key)
            if current is not None:
                current.clear_streak = 0
                current.confidence = d.confidence
                self._background(
                    "UPDATE incidents SET count = count + 1, last_seen = ?, confidence = ?, summary = ?, evidence_json = ? WHERE id = ?",
                    (now, d.confidence, d.cause, dumps(d.evidence), current.id),
                )
                changes.append(Change("repeated", current.id, d.service, d.pattern, d.cause))
                continue
            silence = self._silence_for(d.service, now)
            if silence is not None:
                self._background("UPDATE silences SET suppressed = suppressed + 1 WHERE id = ?", (silence.id,))
                if d.pattern not in silence.announced:
                    silence.announced.add(d.pattern)
                    until = time.strftime("%H:%M:%S", time.localtime(silence.until))
                    changes.append(Change("suppressed", None, d.service, d.pattern, f"{d.title} on {d.service} not opened: silenced until {until} ({silence.reason})"))
                continue
            changes.append(await self._open(d, now))
        # One root cause, one incident: what a newer diagnosis explains is folded into it.
        for service, pattern in seen:
            cause = self.open.get((service, pattern))
            if cause is None:
                continue
            for effect in patterns[pattern].supersedes:
                merged = self.open.get((service, effect))
                if merged is not None and (service, effect) not in seen:
                    changes.append(await self.resolve(merged.id, now, f"superseded by incident #{cause.id} ({pattern})", by="diagnosis"))
                    self.timeline(cause.id, now, "merged", f"incident #{merged.id} ({effect}) folded into this one", {"merged": merged.id})
        for key, incident in list(self.open.items()):
            if key in seen or incident.service not in scope:
                continue
            incident.clear_streak += 1
            if incident.clear_streak >= patterns[incident.pattern].clear_after:
                changes.append(await self.resolve(incident.id, now, "condition cleared", by="detector"))
        return changes

    async def _open(self, d: Diagnosis, now: float) -> Change:
        caused_by = self._cause_of(d)
        detect_seconds = max(0.0, now - d.onset)
        self._last_id += 1
        incident_id = self._last_id
        # On disk before anyone is told, while the storage works; queued (and told all the same) when not.
        await self.store.write(
            "INSERT INTO incidents(id, service, pattern, status, severity, confidence, summary, evidence_json, onset_at, opened_at, last_seen, detect_seconds, caused_by) "
            "VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, d.service, d.pattern, d.severity, d.confidence, d.cause, dumps(d.evidence), d.onset, now, now, detect_seconds, caused_by),
        )
        self.open[(d.service, d.pattern)] = OpenIncident(incident_id, d.service, d.pattern, "open", now, d.confidence)
        self.timeline(incident_id, d.onset, "detected", f"first evidence of {d.title.lower()}", {"onset": d.onset})
        self.timeline(
            incident_id, now, "diagnosed", f"{d.cause} (confidence {d.confidence}/10)",
            {"confidence": d.confidence, "factors": d.confidence_factors, "related": d.related, "caused_by": caused_by},
        )
        message = f"{d.title} on {d.service}: {d.cause}"
        if caused_by is not None:
            message += f" (caused by incident #{caused_by})"
        return Change("opened", incident_id, d.service, d.pattern, message)

    def _cause_of(self, d: Diagnosis) -> int | None:
        """A dependant's incident points at its dependency's incident instead of being healed alone."""
        if d.pattern != "dependency_down":
            return None
        down = sorted(d.evidence.get("dependencies_down", {}))
        severity = {"critical": 0, "warning": 1, "info": 2}
        patterns = load_patterns()
        candidates = [i for (svc, _), i in self.open.items() if svc in down and i.pattern != "dependency_down"]
        candidates.sort(key=lambda i: (severity.get(patterns[i.pattern].severity, 3), -i.opened_at))
        return candidates[0].id if candidates else None

    # --- operator and healer actions ------------------------------------------------------------------

    async def resolve(self, incident_id: int, now: float, reason: str, by: str) -> Change:
        incident = next((i for i in self.open.values() if i.id == incident_id), None)
        if incident is None:
            raise KeyError(f"incident #{incident_id} is not open")
        del self.open[(incident.service, incident.pattern)]
        self._background(
            "UPDATE incidents SET status = 'resolved', resolved_at = ?, recover_seconds = ? - onset_at WHERE id = ?",
            (now, now, incident_id),
        )
        await self.store.write(
            "INSERT INTO incident_events(incident_id, ts, kind, message, data_json) VALUES (?, ?, ?, ?, ?)",
            (incident_id, now, "resolved", f"resolved: {reason}", dumps({"by": by})),
        )
        return Change("resolved", incident_id, incident.service, incident.pattern, f"incident #{incident_id} ({incident.pattern} on {incident.service}) resolved: {reason}")

    async def set_status(self, incident_id: int, status: str) -> None:
        """The healer moves an open incident through healing, awaiting_approval and escalated."""
        incident = next((i for i in self.open.values() if i.id == incident_id), None)
        if incident is None or incident.status == status:
            return
        incident.status = status
        await self.store.write("UPDATE incidents SET status = ? WHERE id = ? AND resolved_at IS NULL", (status, incident_id))

    async def acknowledge(self, incident_id: int, by: str) -> None:
        incident = next((i for i in self.open.values() if i.id == incident_id), None)
        if incident is None:
            raise KeyError(f"incident #{incident_id} is not open")
        # An operator's decision is on disk, timeline included, before it is confirmed (or it is refused).
        await self.store.write("UPDATE incidents SET status = 'acknowledged', acknowledged_by = ? WHERE id = ?", (by, incident_id), ack=True)
        incident.status = "acknowledged"
        await self.store.write(
            "INSERT INTO incident_events(incident_id, ts, kind, message, data_json) VALUES (?, ?, ?, ?, ?)",
            (incident_id, time.time(), "acknowledged", f"acknowledged by {by}", dumps({"by": by})), ack=True,
        )

    async def silence(self, service: str, until: float, reason: str, by: str) -> Silence:
        silence_id = await self.store.write(
            "INSERT INTO silences(service, until, reason, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            (service, until, reason, time.time(), by), ack=True,
        )
        assert silence_id is not None
        self.silences[service] = Silence(silence_id, service, until, reason)
        return self.silences[service]

    async def unsilence(self, service: str) -> bool:
        silence = self.silences.get(service)
        if silence is None:
            return False
        await self.store.write("UPDATE silences SET until = ? WHERE id = ?", (time.time(), silence.id), ack=True)
        self.silences.pop(service, None)
        return True

    def _silence_for(self, service: str, now: float) -> Silence | None:
        silence = self.silences.get(service)
        if silence is not None and silence.until <= now:
            del self.silences[service]
            return None
        return silence

    def timeline(self, incident_id: int, ts: float, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self._background(
            "INSERT INTO incident_events(incident_id, ts, kind, message, data_json) VALUES (?, ?, ?, ?, ?)",
            (incident_id, ts, kind, message, dumps(data or {})),
        )

    def _background(self, sql: str, params: tuple[Any, ...]) -> None:
        self.store.submit(sql, params).add_done_callback(_report)


def _report(future: Any) -> None:
    # A write dropped because the storage refused it for long is counted by the store, not told one by one.
    if not future.cancelled() and future.exception() is not None and not isinstance(future.exception(), StorageUnavailable):
        log.error("incident write failed: %r", future.exception())


# --- queries (read side, shared by the engine and the CLI) ------------------------------------------------


def incident_query(
    *, service: str | None = None, pattern: str | None = None, open_only: bool = False, since: float | None = None,
    limit: int = 50, before_id: int | None = None,
) -> tuple[str, list[Any]]:
    """SQL for a page of incidents, newest first. Paging by id keeps every page as fast as the first."""
    where, params = [], []
    if service:
        where.append("service = ?")
        params.append(service)
    if pattern:
        where.append("pattern = ?")
        params.append(pattern)
    if open_only:
        where.append("resolved_at IS NULL")
    if since is not None:
        where.append("opened_at >= ?")
        params.append(since)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {INCIDENT_FIELDS} FROM incidents {clause} ORDER BY id DESC LIMIT ?", [*params, int(limit)]
