"""Ages the way on-call tools show them: to the second only while it is under a minute, then to the
minute, then hours and minutes, then days and hours. A cell that shows an age then changes at most
once a minute after the first minute, so an idle console redraws almost nothing."""
from __future__ import annotations

from ..core.format import duration_h


def age_h(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    # Between a minute and an hour the seconds are dropped; otherwise it reads as any duration.
    return f"{s // 60}m" if 60 <= s < 3600 else duration_h(s)
