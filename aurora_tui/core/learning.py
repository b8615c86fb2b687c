"""Learning: a Beta posterior per (pattern, fix) that verified outcomes and operator decisions move.

A verified success adds one to alpha, a failed verification one to beta, a rejection one to beta (and is
counted, so that a fix the operator keeps rejecting stops being proposed on its own), and a grade g of
1-10 adds g/10 to alpha and 1 - g/10 to beta. The mean feeds the diagnosis confidence and guardian L2.
Beliefs live in SQLite, so they survive restarts, and can be exported and imported as JSON.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from .api import BeliefRow
from .guardians import Belief
from .store import Store

# A fix rejected this often, and believed in this little, is no longer proposed automatically.
REFUSE_AFTER_REJECTIONS = 3
REFUSE_BELOW = 0.35


def update(belief: Belief, event: str, grade: int | None = None) -> Belief:
    """Pure: the belief after one outcome ("success", "failure", "rejected", "graded")."""
    b = Belief(belief.alpha, belief.beta, belief.successes, belief.failures, belief.rejections)
    if event == "success":
        b.alpha += 1
        b.successes += 1
    elif event == "failure":
        b.beta += 1
        b.failures += 1
    elif event == "rejected":
        b.beta += 1
        b.rejections += 1
    elif event == "graded":
        if grade is None or not 1 <= grade <= 10:
            raise ValueError("a grade is a whole number from 1 to 10")
        b.alpha += grade / 10
        b.beta += 1 - grade / 10
    else:
        raise ValueError(f"unknown learning event {event!r}")
    return b


def refused(belief: Belief) -> bool:
    return belief.rejections >= REFUSE_AFTER_REJECTIONS and belief.mean < REFUSE_BELOW


class Learning:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.beliefs: dict[tuple[str, str], Belief] = {}

    async def load(self) -> None:
        rows = await self.store.fetch("SELECT pattern, fix, alpha, beta, successes, failures, rejections FROM beliefs")
        self.beliefs = {(r["pattern"], r["fix"]): Belief(r["alpha"], r["beta"], r["successes"], r["failures"], r["rejections"]) for r in rows}

    def get(self, pattern: str, fix: str) -> Belief | None:
        return self.beliefs.get((pattern, fix))

    def refused_fixes(self, pattern: str) -> set[str]:
        return {fix for (p, fix), b in self.beliefs.items() if p == pattern and refused(b)}

    def mean_for_pattern(self, pattern: str) -> float | None:
        """The pooled belief in fixing this pattern, whatever shape the fix took; None before any evidence."""
        alpha = beta = 1.0
        evidence = 0
        for (p, _), b in self.beliefs.items():
            if p == pattern:
                alpha += b.alpha - 1
                beta += b.beta - 1
                evidence += b.evidence
        return alpha / (alpha + beta) if evidence else None

    async def record(self, pattern: str, fix: str, event: str, grade: int | None = None) -> Belief:
        belief = update(self.beliefs.get((pattern, fix), Belief()), event, grade)
        self.beliefs[(pattern, fix)] = belief
        await self._save(pattern, fix, belief)
        return belief

    async def _save(self, pattern: str, fix: str, b: Belief) -> None:
        await self.store.write(
            "INSERT INTO beliefs(pattern, fix, alpha, beta, successes, failures, rejections, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(pattern, fix) DO UPDATE SET alpha = excluded.alpha, beta = excluded.beta, successes = excluded.successes, "
            "failures = excluded.failures, rejections = excluded.rejections, updated_at = excluded.updated_at",
            (pattern, fix, b.alpha, b.beta, b.successes, b.failures, b.rejections, time.time()),
        )

    def export(self) -> list[BeliefRow]:
        return [
            BeliefRow(p, f, b.alpha, b.beta, b.successes, b.failures, b.rejections, round(b.mean, 3), refused(b))
            for (p, f), b in sorted(self.beliefs.items())
        ]

    async def import_(self, entries: Iterable[dict[str, Any]]) -> int:
        count = 0
        for e in entries:
            try:
                b = Belief(float(e["alpha"]), float(e["beta"]), int(e.get("successes", 0)), int(e.get("failures", 0)), int(e.get("rejections", 0)))
                pattern, fix = str(e["pattern"]), str(e["fix"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"bad learning entry {e!r}: {exc}") from None
            if b.alpha <= 0 or b.beta <= 0:
                raise ValueError(f"bad learning entry {e!r}: alpha and beta must be positive")
            self.beliefs[(pattern, fix)] = b
            await self._save(pattern, fix, b)
            count += 1
        return count
