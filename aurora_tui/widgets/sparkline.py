"""Text sparklines (one cell per value) for table cells and detail panes, and the small ring buffers
the console keeps of recent values."""
from __future__ import annotations

from collections import deque
from typing import Iterable, Sequence

from rich.text import Text

BARS = "▁▂▃▄▅▆▇█"


def spark(values: Iterable[float | None], width: int, *, floor: float | None = 0.0, min_span: float = 1e-9, style: str = "") -> Text:
    """The last ``width`` values as bars, scaled from ``floor`` (or the minimum) to the maximum; a gap
    (None) is a space. ``min_span`` keeps noise on a flat line from looking like a cliff."""
    recent = list(values)[-width:] if width > 0 else []
    known = [v for v in recent if v is not None]
    if not known:
        return Text(" " * max(width, 0))
    low = min(floor, min(known)) if floor is not None else min(known)
    high = max(max(known), low + min_span)
    span = high - low
    cells = []
    for v in recent:
        if v is None:
            cells.append(" ")
        else:
            index = int((v - low) / span * (len(BARS) - 1) + 0.5)
            cells.append(BARS[max(0, min(len(BARS) - 1, index))])
    return Text("".join(cells).rjust(width), style=style, no_wrap=True, overflow="crop")


class Ring:
    """A fixed number of recent values of one metric."""

    def __init__(self, size: int = 60) -> None:
        self.values: deque[float | None] = deque(maxlen=size)

    def add(self, value: float | None) -> None:
        self.values.append(value)

    def last(self, count: int) -> Sequence[float | None]:
        return list(self.values)[-count:]

    def known(self) -> list[float]:
        return [v for v in self.values if v is not None]

    def __len__(self) -> int:
        return len(self.values)
