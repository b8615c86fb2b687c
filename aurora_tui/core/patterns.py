"""The issue-pattern catalogue (``catalogue/patterns.toml``) as typed, cached data."""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping

HOST = "(host)"  # the "service" name host-level incidents are filed under; no service can be named so


@dataclass(frozen=True)
class Pattern:
    id: str
    title: str
    severity: str
    scope: str
    explanation: str
    looks_like: str
    causes: tuple[str, ...]
    fix: str
    actions: tuple[str, ...]
    risk: str
    base_confidence: int
    clear_after: int
    supersedes: tuple[str, ...]
    params: Mapping[str, float] = field(default_factory=dict)


@functools.cache
def load_patterns() -> dict[str, Pattern]:
    raw = tomllib.loads(resources.files("aurora_tui.catalogue").joinpath("patterns.toml").read_text())
    patterns: dict[str, Pattern] = {}
    for entry in raw["pattern"]:
        data: dict[str, Any] = dict(entry)
        for key in ("causes", "actions", "supersedes"):
            data[key] = tuple(data.get(key, ()))
        data["params"] = {k: float(v) for k, v in data.get("params", {}).items()}
        patterns[data["id"]] = Pattern(**data)
    return patterns


def pattern_params(pattern: str, *overrides: Mapping[str, Mapping[str, float]] | None) -> dict[str, float]:
    """The pattern's default parameters, overridden in order (global settings, then the service)."""
    params = dict(load_patterns()[pattern].params)
    for layer in overrides:
        if layer and pattern in layer:
            params.update(layer[pattern])
    return params
