"""The engine's event bus: every part publishes here, subscribers (the console, the socket) read here,
the event log in SQLite is written from here, and each significant event becomes one log line.

Publishing never waits for a slow subscriber: its queue drops the oldest event instead.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, AsyncIterator, Callable

from .model import Event

if TYPE_CHECKING:
    from .records import Records

log = logging.getLogger("aurora_tui.events")

SUBSCRIBER_QUEUE = 1000
# Event kinds that only describe the present (the console redraws on them); they are neither stored
# nor logged.
TRANSIENT = frozenset({"scan", "state", "incident_repeated"})
# Kinds an operator should notice in the journal without reading the console.
WARNING_KINDS = frozenset({
    "crashed", "spawn_failed", "backoff", "start_grace_expired", "scan_failed", "incident_opened",
    "plan_failed", "escalated", "stale_stopped",
})


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._records: Records | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def attach(self, records: "Records | None") -> None:
        """Where events are stored from now on (None: the database is closed)."""
        self._records = records

    def publish(self, event: Event) -> None:
        """Tell subscribers only: for what describes the present and is not worth keeping."""
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # a slow reader loses the oldest event, never the engine's time
            queue.put_nowait(event)

    def emit(self, event: Event) -> None:
        """Publish, log and store in the background (nobody waits for the write)."""
        self.publish(event)
        if event.kind in TRANSIENT:
            return
        _log_event(event)
        if self._records is not None:
            self._records.background(self._records.add_event(event))

    async def acknowledged(self, event: Event, ack: bool = True) -> None:
        """Publish, log, and return only once the event is committed to the database. With ``ack`` (an
        operator's request) a commit the storage refuses raises StorageUnavailable after a deadline;
        without (the healer's own events) it stops waiting at once and the event stays queued."""
        self.publish(event)
        _log_event(event)
        if self._records is not None:
            await self._records.write_event(event, ack=ack)

    def close(self) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(Event("engine_closed", None, "engine closed"))

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)

        async def iterate() -> AsyncIterator[Event]:
            while True:
                event = await queue.get()
                yield event
                if event.kind == "engine_closed":
                    return

        try:
            yield iterate()
        finally:
            self._subscribers.discard(queue)


Emit = Callable[[Event], None]


def _log_event(event: Event) -> None:
    level = logging.WARNING if event.kind in WARNING_KINDS else logging.INFO
    log.log(level, "%s", event.message, extra={"event": event.kind, "service": event.service})
