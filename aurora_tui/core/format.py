"""Human-readable numbers shared by the CLI and the console."""
from __future__ import annotations

STATE_GLYPHS = {
    "running": "●",
    "starting": "◐",
    "stopping": "◑",
    "stopped": "○",
    "backoff": "↻",
    "failed": "✖",
    "unmanaged": "◌",
}


def next_try_h(next_try_at: float | None, now: float) -> str:
    """When Aurora next tries to bring a service back, while it waits out a back-off ("" if it does not)."""
    if next_try_at is None:
        return ""
    return f"next try in {duration_h(max(0.0, next_try_at - now))}"


def bytes_h(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit in ("B", "K") else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def duration_h(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def percent_h(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def health_h(healthy: bool | None, latency_ms: float | None = None) -> str:
    if healthy is None:
        return "-"
    if not healthy:
        return "down"
    return "ok" if latency_ms is None else f"ok {latency_ms:.0f}ms"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '30m', '2h', '1d' or a plain number of seconds. ValueError with a readable message."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS else "s"
    number = value[:-1] if value[-1:] in _UNITS else value
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h, 1d)") from None
    if not seconds > 0 or seconds != seconds:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds
