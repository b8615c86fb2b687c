"""Where a service's output goes: a size-capped, rotated log file plus an in-memory tail.

Writes happen on the event loop, one ``write`` per chunk read from the pipe (at most 64 KiB), which is
cheap next to the read itself; rotation renames files and never copies them.
"""
from __future__ import annotations

import os
import re
import time
from collections import deque
from pathlib import Path

# What counts as an error line in a service's own output.
ERROR_LINE = re.compile(r"\b(?:ERROR|CRITICAL|FATAL)\b|^Traceback \(most recent call last\)|^\w*(?:Error|Exception):")


class LogSink:
    def __init__(self, path: Path, max_bytes: int = 1 << 20, backups: int = 3, tail_lines: int = 500) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._partial = ""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab", buffering=0)
        self._size = self._file.tell()
        self.lines_written = 0
        self.error_lines = 0
        self.recent_errors: deque[str] = deque(maxlen=20)

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._size + len(chunk) > self.max_bytes:
            self._rotate()
        self._file.write(chunk)
        self._size += len(chunk)
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

    def mark(self, message: str) -> None:
        """A line written by Aurora itself, so the log shows where one run ends and the next begins."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if self._partial:
            self.write(b"\n")
        self.write(f"--- aurora {stamp}: {message} ---\n".encode())

    def tail(self, n: int = 50) -> list[str]:
        lines = list(self._tail)[-n:] if n > 0 else []
        if self._partial and n > 0:
            lines = (lines + [self._partial])[-n:]
        return lines

    def rotate_now(self) -> None:
        if self._size:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i - 1}") if i > 1 else self.path
            dst = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, dst)
        self._file = open(self.path, "ab", buffering=0)
        self._size = 0

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
