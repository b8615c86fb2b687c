"""One engine per database: an exclusive ``flock`` on ``<db>.lock`` held for the engine's lifetime.

The kernel drops the lock when the process dies, so a ``kill -9`` never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class EngineAlreadyRunning(RuntimeError):
    pass


class EngineLock:
    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineAlreadyRunning(
                f"another Aurora engine (pid {holder}) is already running on {self.path.with_suffix('')}; "
                "attach to it or choose another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def holder(db: Path) -> int | None:
        """The pid of the engine holding ``db``'s lock, or None when no engine runs on it."""
        path = db.with_name(db.name + ".lock")
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
