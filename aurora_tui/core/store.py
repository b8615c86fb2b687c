"""The SQLite store. The engine is its only writer.

One writer task owns the write connection and commits queued statements in batches; a caller that needs
to know a write is durable awaits the future it gets back, which resolves only after the commit. Reads use
a second connection, which WAL lets proceed while the writer commits. The schema is versioned with
``PRAGMA user_version`` and upgraded from the numbered ``migrations/*.sql`` files shipped in the package.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import aiosqlite

# Most statements a single commit carries; bounds the latency of an acknowledgement behind a burst.
MAX_BATCH = 500


@dataclass
class _Write:
    sql: str
    params: Sequence[Any] | Iterable[Sequence[Any]]
    many: bool
    done: asyncio.Future[int | None]
    rowcount: bool = False  # answer with the number of rows changed instead of the last row id


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, in order."""
    found = []
    for entry in resources.files("aurora_tui.core").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


SCHEMA_VERSION = max(v for v, _, _ in migrations())


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            await self._writer.execute(f"PRAGMA {pragma}")
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

    def submit(self, sql: str, params: Sequence[Any] = ()) -> asyncio.Future[int | None]:
        """Queue a statement; the future resolves to its lastrowid once it is committed."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(sql, params, False, done))
        return done

    def submit_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> asyncio.Future[int | None]:
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(sql, list(rows), True, done))
        return done

    async def write(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        return await self.submit(sql, params)

    async def update(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an UPDATE or DELETE once committed; returns how many rows it changed."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(sql, params, False, done, rowcount=True))
        return int(await done or 0)

    async def _write_loop(self) -> None:
        assert self._writer is not None
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[_Write]) -> None:
        assert self._writer is not None
        results: list[int | None | BaseException] = []
        await self._writer.execute("BEGIN")
        for item in batch:
            # A bad statement fails its own caller, not the whole batch.
            try:
                await self._writer.execute("SAVEPOINT item")
                if item.many:
                    cur = await self._writer.executemany(item.sql, item.params)  # type: ignore[arg-type]
                else:
                    cur = await self._writer.execute(item.sql, item.params)  # type: ignore[arg-type]
                results.append(cur.rowcount if item.rowcount else cur.lastrowid)
                await self._writer.execute("RELEASE item")
            except sqlite3.Error as exc:
                await self._writer.execute("ROLLBACK TO item")
                await self._writer.execute("RELEASE item")
                results.append(exc)
        try:
            await self._writer.execute("COMMIT")
        except sqlite3.Error as exc:
            results = [exc] * len(batch)
        self.commits += 1
        for item, result in zip(batch, results):
            if item.done.done():
                continue
            if isinstance(result, BaseException):
                item.done.set_exception(result)
            else:
                item.done.set_result(result)

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
        """Commit everything queued, then close both connections."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
