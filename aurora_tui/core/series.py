"""Pure helpers over a series of samples that the detectors share: a least-squares fit, the newest
health answers, and a duration in words."""
from __future__ import annotations

from typing import Sequence

from .model import ServiceSample


def last_checks(samples: Sequence[ServiceSample], count: int, answered: bool = False) -> list[ServiceSample]:
    """The newest ``count`` samples that carry a health answer (with ``answered``: a verdict), oldest
    first, walking back only as far as needed."""
    found: list[ServiceSample] = []
    for sample in reversed(samples):
        if len(found) >= count:
            break
        h = sample.health
        if h is not None and (not answered or h.ok is not None):
            found.append(sample)
    found.reverse()
    return found


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope (per second) and R² of (t, value) points."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    var_v = sum((v - mean_v) ** 2 for _, v in points)
    if var_t == 0:
        return 0.0, 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    slope = cov / var_t
    r2 = 0.0 if var_v == 0 else (cov * cov) / (var_t * var_v)
    return slope, r2


def eta_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
