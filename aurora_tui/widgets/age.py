"""Ages the way on-call tools show them: to the second only while it is under a minute, then to the
minute, then hours and minutes, then days and hours. A cell that shows an age then changes at most
once a minute after the first minute, so an idle console redraws almost nothing."""
from __future__ import annotations


def age_h(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
