"""Where a service's output goes: a size-capped, rotated log file plus an in-memory tail.

Writes happen on the event loop, one ``write`` per chunk read from the pipe (at most 64 KiB), which is
cheap next to the read itself; rotation renames files and never copies them.

Writing the file is best effort and never raises: supervision must not depend on a disk that is full,
read-only or gone. Output that cannot be written is dropped and counted (the in-memory tail still gets
all of it); the first failure is logged once, then at most once a minute with what was dropped, and the
file is tried again every :data:`RETRY_EVERY` seconds. The first write that works notes in the file how
much output is missing from it.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .model import StorageProblem
from .private_files import open_private, private_dir

log = logging.getLogger(__name__)

# What counts as an error line in a service's own output.
ERROR_LINE = re.compile(r"\b(?:ERROR|CRITICAL|FATAL)\b|^Traceback \(most recent call last\)|^\w*(?:Error|Exception):")
# While the file cannot be written, how often it is tried again (output in between is dropped untried,
# so a chatty service on a full disk costs no failing system call per chunk).
RETRY_EVERY = 1.0
# How often a failure that goes on is logged again.
WARN_EVERY = 60.0


@dataclass
class WriteFailure:
    error: str
    since: float
    last_try: float  # monotonic
    warned_at: float  # monotonic
    dropped_bytes: int = 0
    dropped_lines: int = 0


def describe(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return str(exc)


class LogSink:
    def __init__(self, path: Path, max_bytes: int = 1 << 20, backups: int = 3, tail_lines: int = 500) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._partial = ""
        self._fd: int | None = None
        self._size = 0
        self._at_line_start = True
        self.lines_written = 0
        self.error_lines = 0
        self.recent_errors: deque[str] = deque(maxlen=20)
        self.failure: WriteFailure | None = None
        # Over the sink's whole life, across failures.
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self._open()

    # --- writing -------------------------------------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._to_file(chunk)
        self._remember(chunk)

    def mark(self, message: str) -> None:
        """A line written by Aurora itself, so the log shows where one run ends and the next begins."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if self._partial:
            self.write(b"\n")
        self.write(f"--- aurora {stamp}: {message} ---\n".encode())

    def retry(self) -> None:
        """Try a failed file again now (if it is due), so a service that writes nothing for a while
        still has its log working again once the disk has room."""
        if self.failure is not None:
            self._recover()

    def _remember(self, chunk: bytes) -> None:
        text = self._partial + chunk.decode("utf-8", errors="replace")
        *lines, self._partial = text.split("\n")
        # A runaway line with no newline must not grow without bound.
        if len(self._partial) > 4096:
            lines.append(self._partial)
            self._partial = ""
        for line in lines:
            line = line.rstrip("\r")
            self._tail.append(line)
            if ERROR_LINE.search(line) and not line.startswith("--- aurora "):
                self.error_lines += 1
                self.recent_errors.append(line)
        self.lines_written += len(lines)

    def _to_file(self, chunk: bytes) -> None:
        if self.failure is not None and not self._recover():
            self._drop(chunk)
            return
        written = 0
        try:
            if self._size + len(chunk) > self.max_bytes:
                self._rotate()
            if self._fd is None:
                raise FileNotFoundError(f"{self.path} is not open")
            while written < len(chunk):
                n = os.write(self._fd, chunk[written:])
                written += n
                self._size += n
        except OSError as exc:
            self._failed(exc)
            self._drop(chunk[written:])
        if written:
            self._at_line_start = chunk[written - 1:written] == b"\n"

    # --- failures ------------------------------------------------------------------------------------

    def _failed(self, exc: OSError) -> None:
        now = time.monotonic()
        error = describe(exc)
        if self.failure is None:
            self.failure = WriteFailure(error, time.time(), now, now)
            log.warning("cannot write %s (%s): the output is dropped and counted until it can be written again", self.path, error)
        else:
            self.failure.error = error
            self.failure.last_try = now

    def _drop(self, data: bytes) -> None:
        if not data:
            return
        lines = data.count(b"\n")
        self.dropped_bytes += len(data)
        self.dropped_lines += lines
        failure = self.failure
        if failure is None:
            return
        failure.dropped_bytes += len(data)
        failure.dropped_lines += lines
        now = time.monotonic()
        if now - failure.warned_at >= WARN_EVERY:
            failure.warned_at = now
            log.warning("still cannot write %s (%s): %d bytes (%d lines) of output dropped so far",
                        self.path, failure.error, failure.dropped_bytes, failure.dropped_lines)

    def _recover(self) -> bool:
        """One try (when due) at writing the file again: True once it works."""
        failure = self.failure
        assert failure is not None
        now = time.monotonic()
        if now - failure.last_try < RETRY_EVERY:
            return False
        failure.last_try = now
        if self._fd is None and not self._open():
            return False
        since = time.strftime("%H:%M:%S", time.localtime(failure.since))
        note = (f"{'' if self._at_line_start else chr(10)}--- aurora {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                f"{failure.dropped_bytes} bytes ({failure.dropped_lines} lines) of output could not be written here "
                f"since {since} ({failure.error}) ---\n").encode()
        try:
            while note:
                n = os.write(self._fd, note)  # type: ignore[arg-type]
                self._size += n
                note = note[n:]
        except OSError as exc:
            failure.error = describe(exc)
            return False
        self._at_line_start = True
        self.failure = None
        log.warning("%s can be written again; %d bytes (%d lines) of output were dropped", self.path, failure.dropped_bytes, failure.dropped_lines)
        return True

    def problem(self) -> StorageProblem | None:
        failure = self.failure
        if failure is None:
            return None
        return StorageProblem("log", str(self.path), failure.error, failure.since,
                              dropped_bytes=failure.dropped_bytes, dropped_lines=failure.dropped_lines)

    # --- the file ------------------------------------------------------------------------------------

    def _open(self) -> bool:
        try:
            private_dir(self.path.parent)
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND, "log file")
            self._size = os.fstat(fd).st_size
        except OSError as exc:
            self._failed(exc)
            return False
        self._fd = fd
        return True

    def tail(self, n: int = 50) -> list[str]:
        lines = list(self._tail)[-n:] if n > 0 else []
        if self._partial and n > 0:
            lines = (lines + [self._partial])[-n:]
        return lines

    def rotate_now(self) -> None:
        if self._size and self._fd is not None:
            try:
                self._rotate()
            except OSError as exc:
                self._failed(exc)

    def _rotate(self) -> None:
        self._close_fd()
        for i in range(self.backups, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i - 1}") if i > 1 else self.path
            dst = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, dst)
        self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND, "log file")
        self._size = 0

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass  # the close of a file on a failing disk may report it; the descriptor is gone anyway

    def close(self) -> None:
        self._close_fd()
