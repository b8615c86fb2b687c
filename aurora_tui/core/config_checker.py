"""How one raw TOML value is checked and how a bad one is described in a config error.

A :class:`Checker` collects ``(key, problem)`` pairs instead of raising, so that one pass
over a file reports every problem in it at once.
"""
from __future__ import annotations

import difflib
import math
from datetime import date, datetime, time
from typing import Any, Sequence

__all__ = ["Checker", "describe", "did_you_mean", "unknown_key_message"]


def describe(value: Any) -> str:
    """A TOML-flavoured description of a value for error messages, e.g. ``boolean true``."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        text = str(value) if abs(value) < 10**30 else "a huge integer"
        return f"integer {text}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"string {text!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime, date, time)):
        return f"date/time {value.isoformat()}"
    return type(value).__name__  # pragma: no cover - tomllib yields nothing else


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice ``word`` most likely misspells, or ``""``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_key_message(key: str, allowed: tuple[str, ...], what: str = "key") -> str:
    suggestion = did_you_mean(key, allowed) or f" (expected one of: {', '.join(allowed)})"
    return f"unknown {what} {key!r}{suggestion}"


class Checker:
    """Collects problems while converting raw TOML values.

    Each conversion returns the converted value, or None after recording why there is none."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.prefix = ""  # "name: " for a service with a valid name

    def add(self, key: str, problem: str) -> None:
        self.problems.append((key, self.prefix + problem))

    def unknown_keys(self, table: dict, allowed: tuple[str, ...], path: str) -> None:
        for key in table:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else key, unknown_key_message(key, allowed))

    def number(self, key: str, value: Any, *, minimum: float | None = 0.0, strict: bool = True,
               maximum: float | None = None, unit: str = "") -> float | None:
        """A finite int/float (not a bool).  ``strict``: must be > minimum, else >= minimum; at most
        ``maximum`` (in ``unit``, which the message names)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(key, f"must be a number, got {describe(value)}")
            return None
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float is as unusable as inf
            number = math.inf
        if not math.isfinite(number):
            self.add(key, f"must be a finite number, got {describe(value)}")
            return None
        if minimum is not None:
            if strict and not number > minimum:
                bound = "positive (> 0)" if minimum == 0 else f"greater than {minimum:g}"
                self.add(key, f"must be {bound}, got {value!r}")
                return None
            if not strict and not number >= minimum:
                bound = "zero or more (>= 0)" if minimum == 0 else f"at least {minimum:g}"
                self.add(key, f"must be {bound}, got {value!r}")
                return None
        if maximum is not None and number > maximum:
            shown = "a huge integer" if isinstance(value, int) and abs(value) >= 10**30 else repr(value)
            self.add(key, f"must be at most {maximum:g}{' ' + unit if unit else ''}, got {shown}")
            return None
        return number

    def integer(self, key: str, value: Any, lo: int, hi: int | None, what: str = "an integer") -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, f"must be {what}, got {describe(value)}")
            return None
        if value < lo or (hi is not None and value > hi):
            shown = value if abs(value) < 10**30 else "a huge integer"
            rng = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
            self.add(key, f"must be an integer {rng}, got {shown}")
            return None
        return value

    def string(self, key: str, value: Any, *, nonempty: bool = True) -> str | None:
        if not isinstance(value, str):
            self.add(key, f"must be a string, got {describe(value)}")
            return None
        if nonempty and not value.strip():
            self.add(key, "must not be empty")
            return None
        return value

    def boolean(self, key: str, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.add(key, f"must be true or false, got {describe(value)}")
            return None
        return value
