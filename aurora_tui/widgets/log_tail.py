"""A service's output tail. Each refresh brings the last N lines; only the lines that are new are
appended, so the operator's scroll position survives a refresh. Capped at ``max_lines``."""
from __future__ import annotations

from typing import Any, Sequence

from textual.widgets import Log

MAX_LINES = 2000


def new_lines(old: Sequence[str], new: Sequence[str]) -> list[str] | None:
    """The lines of ``new`` that follow what ``old`` ended with, or None when they do not overlap
    (too much was written in between: start over)."""
    if not old:
        return list(new)
    if list(old[-len(new):]) == list(new):
        return []
    for k in range(min(len(old), len(new)), 0, -1):
        if old[-k] == new[0] and list(old[-k:]) == list(new[:k]):
            return list(new[k:])
    return None


class LogTail(Log):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, **kwargs)
        self._tail: list[str] = []

    def show_lines(self, lines: Sequence[str]) -> None:
        added = new_lines(self._tail, lines)
        if added is None:
            self.clear()
            added = list(lines)
        if added:
            self.write_lines(added)
        self._tail = list(lines)
