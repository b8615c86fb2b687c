"""Diagnosis: findings become diagnoses with a cause, a 1-10 confidence and the evidence behind it.

Several findings with one root cause become one diagnosis: a pattern that ``supersedes`` another
(``hung`` supersedes ``slow_responses`` and ``http_errors``) absorbs it as corroborating evidence.
Pure functions; the learned belief about a pattern arrives as a plain callable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .detect import Finding
from .patterns import Pattern, load_patterns

# Learned success of the usual fix for a pattern, 0..1, or None when nothing is known yet.
Belief = Callable[[str], float | None]


@dataclass
class Diagnosis:
    service: str
    pattern: str
    title: str
    severity: str
    cause: str
    confidence: int
    confidence_factors: dict[str, float]
    evidence: dict[str, Any]
    onset: float
    actions: tuple[str, ...]
    risk: str
    related: dict[str, str] = field(default_factory=dict)


def confidence(finding: Finding, pattern: Pattern, corroborating: int, belief: float | None) -> tuple[int, dict[str, float]]:
    """A 1-10 score that moves with the evidence: how long, how far past the threshold, how many
    other signals agree, and what was learned before. Returned with its parts, so it can be explained."""
    factors: dict[str, float] = {"base": float(pattern.base_confidence)}
    factors["persistence"] = 1.0 if finding.persisted >= 2 * max(1, finding.debounce) else 0.0
    if finding.magnitude is None:
        factors["magnitude"] = 0.0
    elif finding.magnitude >= 1.5:
        factors["magnitude"] = 1.0
    elif finding.magnitude < 1.1:
        factors["magnitude"] = -1.0
    else:
        factors["magnitude"] = 0.0
    factors["corroboration"] = float(min(2, corroborating))
    factors["learned"] = 0.0 if belief is None else round((belief - 0.5) * 4, 2)
    score = round(sum(factors.values()))
    return max(1, min(10, score)), factors


def diagnose(findings: Iterable[Finding], belief: Belief | None = None) -> list[Diagnosis]:
    patterns = load_patterns()
    by_service: dict[str, dict[str, Finding]] = {}
    for finding in findings:
        by_service.setdefault(finding.service, {})[finding.pattern] = finding
    diagnoses: list[Diagnosis] = []
    for service, found in by_service.items():
        absorbed: dict[str, list[Finding]] = {}
        suppressed: set[str] = set()
        for pid, finding in found.items():
            for other in patterns[pid].supersedes:
                if other in found:
                    suppressed.add(other)
                    absorbed.setdefault(pid, []).append(found[other])
        for pid, finding in found.items():
            if pid in suppressed:
                continue
            pattern = patterns[pid]
            related = {f.pattern: f.summary for f in absorbed.get(pid, [])}
            score, factors = confidence(finding, pattern, len(related), belief(pid) if belief else None)
            evidence = dict(finding.evidence)
            if related:
                evidence["related_findings"] = related
            diagnoses.append(
                Diagnosis(
                    service=service,
                    pattern=pid,
                    title=pattern.title,
                    severity=pattern.severity,
                    cause=finding.summary,
                    confidence=score,
                    confidence_factors=factors,
                    evidence=evidence,
                    onset=finding.onset,
                    actions=pattern.actions,
                    risk=pattern.risk,
                    related=related,
                )
            )
    return diagnoses
