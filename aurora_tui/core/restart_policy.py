"""When to restart a service that exited on its own. Pure functions, so the policy is testable alone.

Unlike supervisord (FATAL after ``startretries``) and systemd (``StartLimitBurst``), Aurora never gives up:
back-off grows exponentially to a cap and the retries continue at that slow pace.
"""
from __future__ import annotations

# A run shorter than this counts as a failed start when deciding how long to back off.
SHORT_RUN = 10.0
BACKOFF_CAP = 60.0
BACKOFF_FLOOR = 0.5
# The first back-off after the quick tries of a fix have failed; it doubles up to BACKOFF_CAP.
RETRY_FIRST = 5.0
# A service with no health check has started once it has stayed up this long (or for its start grace,
# if that is shorter): an exit before then is a failed start, like an exit before a first passing check.
# It matches start-up failure's default max_runtime_s, so an exit at once is diagnosed as one.
SETTLE = 3.0


def consecutive_short_runs(previous: int, runtime: float) -> int:
    return previous + 1 if runtime < SHORT_RUN else 1


def restart_delay(base: float, short_runs: int, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait before the next start: the configured delay after an isolated crash, then
    doubling from ``BACKOFF_FLOOR`` with every further crash that came soon after a start."""
    if short_runs <= 1:
        return base
    return min(cap, max(base, BACKOFF_FLOOR) * 2 ** (short_runs - 1))


def settle_time(start_grace: float) -> float:
    """How long a new process with nothing to health-check must stay up to count as started."""
    return min(start_grace, SETTLE)
