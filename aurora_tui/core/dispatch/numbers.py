"""Numbers in a command: durations (``30m``, ``half an hour``), plan and incident ids, grades, and the
reason given after them."""
from __future__ import annotations

import re
import unicodedata

from .text import QUOTES, clean

__all__ = ["find_grade", "find_id", "find_reason", "parse_duration", "strip_durations"]


_UNIT_SECONDS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "wks": 604800, "week": 604800, "weeks": 604800,
}
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
}
_UNIT_RE = (r"(?:seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|wks?|w)")
_DURATION_RE = re.compile(
    r"(?<![\w/#.])(\d+(?:\.\d+)?|" + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True))
    + r")\s*(" + _UNIT_RE + r")(?![a-z])(?!\s*/)"
)
_NAMED_WINDOWS = (
    (re.compile(r"\bhalf an hour\b"), 1800),
    (re.compile(r"\b(?:last|past|the)\s+hour\b"), 3600),
    (re.compile(r"\b(?:today|past day|last day)\b"), 86400),
    (re.compile(r"\bovernight\b|\blast night\b"), 43200),
    (re.compile(r"\b(?:this|last|past) week\b"), 604800),
    (re.compile(r"\byesterday\b"), 172800),
)


def parse_duration(text: str) -> int | None:
    """Seconds in the first duration of ``text``: ``30m``, ``2h``, ``for 1 hour``, ``90s``, ``1h30m``,
    ``an hour``, ``half an hour``; ``None`` when there is none."""
    t = re.sub(r"(?<=\d[hmsdw])(?=\d)", " ", clean(text))  # "1h30m" -> "1h 30m"
    for rx, seconds in _NAMED_WINDOWS[:1]:
        if rx.search(t):
            return seconds
    total = 0.0
    last_end = None
    for m in _DURATION_RE.finditer(t):
        if last_end is not None and t[last_end:m.start()].strip() not in ("", "and"):
            break  # only a compound like "1h30m" / "1 hour and 30 minutes" keeps adding
        raw = m.group(1)
        # single letters after spelled-out numbers ("a m") are not durations
        if raw in _NUMBER_WORDS and len(m.group(2)) <= 3:
            continue
        value = float(raw) if raw[0].isdigit() else float(_NUMBER_WORDS[raw])
        total += value * _UNIT_SECONDS[m.group(2)]
        last_end = m.end()
    if total > 0:
        return int(round(total))
    for rx, seconds in _NAMED_WINDOWS[1:]:
        if rx.search(t):
            return seconds
    return None


def strip_durations(t: str) -> str:
    t = _DURATION_RE.sub(" ", t)
    return re.sub(r"\b\d+\s*lines?\b", " ", t)


_ID_PREFIXED = re.compile(
    r"(?:#|\b(?:id|incident|approval|request|req|item|number|no\.?|fix|action|ticket)\s*#?)\s*(\d{1,9})\b"
)
_BARE_NUMBER = re.compile(r"(?<![\w./:#-])(\d{1,9})\b(?!\s*(?:/|%|out of|\.\d))")
_GRADE_RE = re.compile(r"(?<![\w.])(\d{1,2})\s*(?:/\s*10\b|out of\s*10\b)")


def find_id(t: str) -> tuple[str | None, str]:
    """(id, text with the id removed)."""
    t = strip_durations(t)
    m = _ID_PREFIXED.search(t) or _BARE_NUMBER.search(t)
    if not m:
        return None, t
    return str(int(m.group(1))), t[:m.start()] + " " + t[m.end():]


def find_grade(t: str) -> tuple[int | None, str | None, str]:
    """(grade, id, rest) for ``grade 4 8/10``, ``rate #6 4/10``, ``grade 12 6``, ``give #2 a 10/10``."""
    grade = None
    m = _GRADE_RE.search(t)
    if m:
        grade = int(m.group(1))
        t = t[:m.start()] + " " + t[m.end():]
    ident, t = find_id(t)
    if grade is None:
        m = re.search(r"(?:\b(?:a|an|as|grade|score|of)\s+|(?<![\w#])(?=\d))(\d{1,2})\b(?!\s*/)", t)
        if m:
            grade = int(m.group(1))
            t = t[:m.start()] + " " + t[m.end():]
        else:
            m = re.search(r"\b(?:a|an|as)\s+(" + "|".join(k for k in _NUMBER_WORDS if k not in ("a", "an"))
                          + r")\b", t)
            if m:
                grade = _NUMBER_WORDS[m.group(1)]
                t = t[:m.start()] + " " + t[m.end():]
    if grade is not None and not 0 <= grade <= 10:
        grade = None
    return grade, ident, t


_REASON_RE = re.compile(
    r"\b(?:because|cuz|coz|bc|b/c|since|due to)\b\s*(.+)$|\breason\s*(?:is|:|=|-)?\s*(.+)$"
)


def find_reason(original: str, after_id: bool = True) -> str | None:
    text = " ".join(unicodedata.normalize("NFKC", original).translate(QUOTES).split())
    m = _REASON_RE.search(text.lower())
    if m:
        start = m.start(1) if m.group(1) is not None else m.start(2)
        reason = text[start:].strip(" .:;,-")
        return reason or None
    if after_id:
        m = re.search(r"(?:#\s*|\b)\d{1,9}\s*(?:/\s*10\b)?\s*(?:[,:;-]+\s*|\s+)(.+)$", text)
        if m:
            reason = m.group(1).strip(" .:;,-")
            if reason and not re.fullmatch(r"(?:\d+\s*(?:/\s*10)?|go ahead|please|pls|thanks?|now)", reason,
                                           re.I):
                return reason
    return None
