"""The SQLite store. The engine is its only writer.

One writer task owns the write connection and commits queued statements in batches; a caller that needs
to know a write is durable awaits it, which resolves only after the commit. Reads use a second
connection, which WAL lets proceed while the writer commits. The schema is versioned with
``PRAGMA user_version`` and upgraded from the numbered ``migrations/*.sql`` files shipped in the package.

Supervision never waits on a disk: a commit the storage refuses (full, read-only, I/O error) keeps its
statements in memory, in order, and tries again with back-off until they land. How long a caller waits
is its own choice:

- ``submit``: nobody waits; the statement stays queued until committed (or dropped, oldest samples
  first, once the queue holds :data:`MAX_QUEUED` statements);
- ``write(..., ack=False)``, the default: waits for the commit while the store works, and stops waiting
  (answering None) the moment it does not, so supervision goes on;
- ``write(..., ack=True)``: an operator's decision, which must be on disk before anything acts on it: it
  waits at most :data:`ACK_DEADLINE` and then is withdrawn and fails with :class:`StorageUnavailable`.

Each batch also checks that the path still names the file the engine opened: a database deleted or
replaced under a running engine is reported (:attr:`Store.moved`), and decisions are refused from then on.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import aiosqlite

from .model import StorageProblem
from .private_files import create_private

log = logging.getLogger(__name__)

# Most statements a single commit carries; bounds the latency of an acknowledgement behind a burst.
MAX_BATCH = 500
# Statements kept while the storage refuses commits; beyond that the oldest samples go first.
MAX_QUEUED = 10_000
# How long an acknowledged write (an operator's decision) may wait for its commit.
ACK_DEADLINE = 5.0
# How much longer it waits on a store that works but is slow (a busy disk), before giving up all the same.
ACK_SLOW_GRACE = 25.0
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 10.0
# How long closing keeps trying to commit what is queued before giving it up.
CLOSE_FLUSH = 3.0
# How often a failure that goes on is logged again.
WARN_EVERY = 60.0
# SQLite's primary result codes that mean the storage refused, not that the statement is wrong:
# PERM, BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN.
STORAGE_CODES = frozenset({3, 5, 6, 8, 10, 13, 14})


class StorageUnavailable(RuntimeError):
    """The database cannot be written now, so what needed a commit was not done."""


def storage_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in STORAGE_CODES
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and any(
        s in text for s in ("disk is full", "readonly", "disk I/O", "unable to open", "database is locked")
    )


@dataclass(eq=False)  # compared by identity: a queue holds each write once
class _Write:
    sql: str
    params: Sequence[Any] | Iterable[Sequence[Any]]
    many: bool
    done: asyncio.Future[int | None]
    rowcount: bool = False  # answer with the number of rows changed instead of the last row id
    droppable: bool = False  # a sample: the first to go when the queue is full
    deadline: float | None = None  # monotonic; set for acknowledged writes
    # Several statements as one item (each run with executemany over its rows): they land together or
    # not at all, whatever batch they fall into. ``sql`` and ``params`` are unused then.
    steps: list[tuple[str, list[Any]]] | None = None


@dataclass
class Failure:
    error: str
    since: float
    attempts: int = 1
    warned_at: float = field(default_factory=time.monotonic)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, in order."""
    found = []
    for entry in resources.files("aurora_tui.core").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


SCHEMA_VERSION = max(v for v, _, _ in migrations())


def _settle(future: asyncio.Future[Any], error: BaseException) -> None:
    """Fail a future and mark its exception seen: a dropped sample is counted, not reported one by one."""
    if not future.done():
        future.set_exception(error)
        future.exception()


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: deque[_Write] = deque()
        self._inflight: list[_Write] = []
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._give_up: set[asyncio.Future[None]] = set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.failure: Failure | None = None
        self.dropped = 0  # statements given up on because the queue was full, over the store's life
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the database the engine opened
        self.moved: str | None = None  # "deleted" | "replaced", once noticed
        self.moved_at: float | None = None
        self._moved_warned = 0.0

    @classmethod
    async def open(cls, path: Path) -> "Store":
        store = cls(path)
        try:
            await store._open()
        except BaseException:
            await store.close()
            raise
        return store

    async def _open(self) -> None:
        create_private(self.path, "database")
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            await self._writer.execute(f"PRAGMA {pragma}")
        st = os.stat(self.path)
        self._file = (st.st_dev, st.st_ino)
        await self._migrate(self._writer)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = aiosqlite.Row
        await self._reader.execute("PRAGMA busy_timeout=5000")
        await self._reader.execute("PRAGMA query_only=ON")
        self._task = asyncio.create_task(self._write_loop(), name="store-writer")

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = row[0] if row else 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {current}, newer than this Aurora understands ({SCHEMA_VERSION})"
            )
        for version, name, sql in migrations():
            if version <= current:
                continue
            # executescript commits first; wrap the migration and its version bump in one transaction.
            await db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")

    # --- writes ----------------------------------------------------------------------------------------

    def submit(self, sql: str, params: Sequence[Any] = (), *, droppable: bool = False) -> asyncio.Future[int | None]:
        """Queue a statement; the future resolves to its lastrowid once it is committed."""
        return self._put(_Write(sql, params, False, self._future(), droppable=droppable)).done

    def submit_many(self, sql: str, rows: Iterable[Sequence[Any]], *, droppable: bool = False) -> asyncio.Future[int | None]:
        return self._put(_Write(sql, list(rows), True, self._future(), droppable=droppable)).done

    def submit_group(self, steps: Iterable[tuple[str, Iterable[Any]]], *, droppable: bool = False) -> asyncio.Future[int | None]:
        """Queue statements that must commit together (in order; each runs over its list of parameter
        rows); the future resolves to the last one's lastrowid."""
        group = [(sql, list(rows)) for sql, rows in steps]
        if not group:
            raise ValueError("a group of statements needs at least one")
        return self._put(_Write("", (), True, self._future(), droppable=droppable, steps=group)).done

    async def write(self, sql: str, params: Sequence[Any] = (), *, ack: bool = False) -> int | None:
        """The statement's lastrowid once committed. Without ``ack``, None when the storage refuses
        commits (the statement stays queued); with it, :class:`StorageUnavailable` (and it never happens)."""
        return await self._wait(self._put(_Write(sql, params, False, self._future(), deadline=self._deadline(ack))))

    async def write_many(self, sql: str, rows: Iterable[Sequence[Any]], *, ack: bool = False) -> None:
        await self._wait(self._put(_Write(sql, list(rows), True, self._future(), deadline=self._deadline(ack))))

    async def update(self, sql: str, params: Sequence[Any] = (), *, ack: bool = False) -> int | None:
        """Run an UPDATE or DELETE once committed; returns how many rows it changed (None: not known,
        because the storage refuses commits and nobody waited)."""
        item = self._put(_Write(sql, params, False, self._future(), rowcount=True, deadline=self._deadline(ack)))
        changed = await self._wait(item)
        return None if changed is None else int(changed)

    def _future(self) -> asyncio.Future[int | None]:
        return asyncio.get_running_loop().create_future()

    @staticmethod
    def _deadline(ack: bool) -> float | None:
        return time.monotonic() + ACK_DEADLINE if ack else None

    def _put(self, item: _Write) -> _Write:
        if self._closing and self._task is None:
            _settle(item.done, self.unavailable())
            return item
        self._pending.append(item)
        self._wake.set()
        if item.deadline is not None:
            self._retry_now.set()  # someone waits: try at once rather than at the end of the back-off
        if self.failure is not None:
            self._bound()
        return item

    async def _wait(self, item: _Write) -> int | None:
        if item.deadline is not None:
            return await self._wait_acknowledged(item)
        if self.failure is not None and not item.done.done():
            return None  # the storage refuses commits: queued, and nobody is held up by it
        give_up: asyncio.Future[None] = self._future()  # type: ignore[assignment]
        self._give_up.add(give_up)
        try:
            await asyncio.wait({item.done, give_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._give_up.discard(give_up)
        if not item.done.done():
            return None
        try:
            return item.done.result()
        except StorageUnavailable:
            return None

    async def _wait_acknowledged(self, item: _Write) -> int | None:
        """Wait for the commit until the deadline while the storage refuses commits (a slow but working
        store gets longer), then withdraw the write: it fails, and never happens."""
        assert item.deadline is not None
        while not item.done.done():
            failing = self.failure is not None
            limit = item.deadline if failing else item.deadline + ACK_SLOW_GRACE
            now = time.monotonic()
            if now >= limit:
                if item in self._pending:
                    self._pending.remove(item)
                    _settle(item.done, self.unavailable(None if failing else f"no commit within {ACK_DEADLINE + ACK_SLOW_GRACE:.0f}s"))
                break  # in flight: that commit decides, and a failed one fails it (see _failed)
            # Polled: whether the storage fails can change while this waits.
            await asyncio.wait({item.done}, timeout=min(limit - now, 0.25))
        return await item.done

    def unavailable(self, why: str | None = None) -> StorageUnavailable:
        if why is None:
            why = self.failure.error if self.failure is not None else "the store is closed"
        return StorageUnavailable(f"cannot commit to {self.path}: {why}")

    def moved_message(self) -> str:
        return (f"the database {self.path} was {self.moved} while the engine ran; "
                "decisions are refused until the engine is restarted")

    @property
    def queued(self) -> int:
        return len(self._pending) + len(self._inflight)

    def _bound(self) -> None:
        """Keep at most MAX_QUEUED statements: the oldest samples go first, then the oldest of what
        nobody waits for. What someone waits for is never dropped (its deadline settles it)."""
        excess = self.queued - MAX_QUEUED
        if excess <= 0:
            return
        victims: set[int] = set()
        for tier in (lambda i: i.droppable, lambda i: i.deadline is None):
            for item in self._pending:
                if len(victims) >= excess:
                    break
                if id(item) not in victims and tier(item):
                    victims.add(id(item))
        if not victims:
            return
        error = StorageUnavailable(f"dropped: the write queue for {self.path} was full ({MAX_QUEUED} statements)")
        kept: deque[_Write] = deque()
        for item in self._pending:
            if id(item) in victims:
                _settle(item.done, error)
            else:
                kept.append(item)
        self._pending = kept
        self.dropped += len(victims)

    # --- the writer --------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        assert self._writer is not None
        close_by: float | None = None
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._closing and close_by is None:
                close_by = time.monotonic() + CLOSE_FLUSH
            batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            self._inflight = batch
            self._retry_now.clear()
            self._check_file()
            try:
                error = await self._commit(batch)
            finally:
                self._inflight = []
            if error is None:
                self._recovered()
                continue
            self._failed(error, batch)
            if close_by is not None and time.monotonic() >= close_by:
                self._abandon()
                return
            await self._backoff(close_by)

    async def _commit(self, batch: list[_Write]) -> BaseException | None:
        """One transaction for the batch. Returns the storage error that stopped it (nothing of it is
        then committed, and it is kept), or None once every item has its answer."""
        assert self._writer is not None
        results: list[int | None | BaseException] = []
        try:
            await self._writer.execute("BEGIN")
            for item in batch:
                results.append(await self._run(item))
            await self._writer.execute("COMMIT")
        except sqlite3.Error as exc:
            await self._rollback()
            if storage_error(exc):
                return exc
            results = [exc] * len(batch)
        self.commits += 1
        for item, result in zip(batch, results):
            if item.done.done():
                continue
            if isinstance(result, BaseException):
                item.done.set_exception(result)
            else:
                item.done.set_result(result)
        return None

    async def _run(self, item: _Write) -> int | None | BaseException:
        """One statement in its savepoint: a bad statement fails its own caller, not the whole batch;
        a refusal of the storage fails the batch (and is raised)."""
        assert self._writer is not None
        await self._writer.execute("SAVEPOINT item")
        try:
            if item.steps is not None:
                for sql, rows in item.steps:
                    cur = await self._writer.executemany(sql, rows)
            elif item.many:
                cur = await self._writer.executemany(item.sql, item.params)  # type: ignore[arg-type]
            else:
                cur = await self._writer.execute(item.sql, item.params)  # type: ignore[arg-type]
        except Exception as exc:  # also what binding raises (an int too large): never the writer's end
            if isinstance(exc, sqlite3.Error) and storage_error(exc):
                raise
            await self._writer.execute("ROLLBACK TO item")
            await self._writer.execute("RELEASE item")
            return exc
        await self._writer.execute("RELEASE item")
        return cur.rowcount if item.rowcount else cur.lastrowid

    async def _rollback(self) -> None:
        assert self._writer is not None
        if self._writer.in_transaction:
            try:
                await self._writer.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.debug("rollback after a failed commit failed too: %r", exc)

    def _failed(self, exc: BaseException, batch: list[_Write]) -> None:
        """Keep the batch (in order, ahead of what came since), except acknowledged writes whose
        deadline has passed: those fail now, and never happen."""
        now = time.monotonic()
        error = str(exc)
        if self.failure is None:
            self.failure = Failure(error, time.time())
            log.warning("cannot commit to %s (%s): writes are kept in memory (up to %d statements) and retried",
                        self.path, error, MAX_QUEUED)
            for waiter in self._give_up:
                if not waiter.done():
                    waiter.set_result(None)
        else:
            self.failure.error = error
            self.failure.attempts += 1
        kept = [item for item in batch if item.deadline is None or item.deadline > now]
        self._pending.extendleft(reversed(kept))
        for item in batch:
            if item.deadline is not None and item.deadline <= now:
                _settle(item.done, self.unavailable())
        self._bound()
        if now - self.failure.warned_at >= WARN_EVERY:
            self.failure.warned_at = now
            log.warning("still cannot commit to %s (%s): %d statements waiting, %d dropped so far",
                        self.path, error, self.queued, self.dropped)

    def _recovered(self) -> None:
        failure = self.failure
        if failure is None:
            return
        if self._pending:
            return  # the backlog is still being written: only its end says the storage is back
        self.failure = None
        log.warning("commits to %s work again after %.0fs; the queued writes are in (%d statements dropped so far)",
                    self.path, time.time() - failure.since, self.dropped)

    async def _backoff(self, close_by: float | None) -> None:
        assert self.failure is not None
        delay = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (self.failure.attempts - 1))
        if close_by is not None:
            delay = min(delay, max(0.0, close_by - time.monotonic()))
        try:
            await asyncio.wait_for(self._retry_now.wait(), delay)
        except asyncio.TimeoutError:
            pass

    def _abandon(self) -> None:
        lost = list(self._pending)
        self._pending.clear()
        error = self.unavailable()
        for item in lost:
            _settle(item.done, error)
        log.error("closing with %d statements that could not be committed to %s: %s", len(lost), self.path, error)

    # --- the file under the engine -----------------------------------------------------------------------

    def _check_file(self) -> None:
        """Whether the path still names the database the engine has open (cheap: one stat per batch)."""
        if self._file is None:
            return
        try:
            st = os.stat(self.path)
            moved = None if (st.st_dev, st.st_ino) == self._file else "replaced"
        except FileNotFoundError:
            moved = "deleted"
        except OSError:
            return  # cannot tell (a permission, an I/O error): the commit itself will say more
        if moved is None:
            return
        now = time.monotonic()
        if self.moved is None:
            self.moved, self.moved_at, self._moved_warned = moved, time.time(), now
            log.error("%s: what is written from now on is lost when the engine stops", self.moved_message())
        elif now - self._moved_warned >= WARN_EVERY:
            self._moved_warned = now
            log.error("%s (noticed %.0fs ago)", self.moved_message(), time.time() - (self.moved_at or time.time()))

    def problems(self) -> list[StorageProblem]:
        found = []
        if self.moved is not None:
            found.append(StorageProblem("database", str(self.path), f"the database file was {self.moved} while the engine ran",
                                        self.moved_at or time.time(), cause=self.moved, queued=self.queued, dropped_writes=self.dropped))
        if self.failure is not None:
            found.append(StorageProblem("database", str(self.path), self.failure.error, self.failure.since,
                                        queued=self.queued, dropped_writes=self.dropped))
        return found

    # --- reads -----------------------------------------------------------------------------------------

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        assert self._reader is not None
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    # --- shutdown --------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Commit everything queued (trying for at most CLOSE_FLUSH while the storage refuses), then
        close both connections."""
        self._closing = True
        if self._task is not None:
            self._wake.set()
            self._retry_now.set()
            await self._task
            self._task = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
