"""What an operator names in a command: a fleet service (fuzzily, against the live list) or an issue
pattern (by its id or the phrases operators use for it)."""
from __future__ import annotations

import re
from typing import Sequence

from rapidfuzz import fuzz, process

from .text import MAX_INPUT_CHARS, clean, words_of

__all__ = [
    "NOT_SERVICE_WORDS",
    "PATTERN_IDS",
    "PATTERN_PHRASES",
    "SERVICE_CUTOFF",
    "SUGGEST_CUTOFF",
    "resolve_pattern",
    "resolve_service",
    "service_aliases",
]


PATTERN_IDS: tuple[str, ...] = (
    "crashed", "crash_loop", "startup_failure", "hung", "zombie_children", "orphaned_children",
    "port_conflict_foreign", "port_conflict_stale", "port_not_listening", "high_cpu", "memory_leak",
    "memory_limit", "fd_exhaustion", "thread_explosion", "connection_exhaustion", "http_errors",
    "rate_limited", "http_unexpected_status", "slow_responses", "health_content_mismatch", "disk_full",
    "host_memory_pressure", "host_cpu_overload", "dependency_down", "flapping", "log_error_burst",
)

#: Extra phrases operators use for the patterns (the id with spaces is always accepted too).
PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "crashed": ("crash", "crashes", "crashed service"),
    "crash_loop": ("crash loop", "crashloop", "crash looping", "crashloopbackoff", "restart loop"),
    "startup_failure": ("startup failure", "start up failure", "failed to start", "fails to start",
                        "startup fail", "start failure", "boot failure"),
    "hung": ("hang", "hanging", "hung service", "frozen", "stuck"),
    "zombie_children": ("zombie", "zombies", "zombie process", "zombie processes", "zombie child"),
    "orphaned_children": ("orphan", "orphans", "orphaned", "orphan processes", "orphaned processes"),
    "port_conflict_foreign": ("port conflict", "port clash", "port taken", "port in use",
                              "address in use", "address already in use", "foreign port conflict"),
    "port_conflict_stale": ("stale port", "stale port conflict", "stale port owner"),
    "port_not_listening": ("not listening", "port closed", "no listener"),
    "high_cpu": ("cpu hog", "high cpu usage", "cpu spike", "hot cpu"),
    "memory_leak": ("leak", "mem leak", "leaking memory", "leaky memory"),
    "memory_limit": ("mem limit", "oom", "out of memory", "memory cap"),
    "fd_exhaustion": ("fd exhaustion", "file descriptor exhaustion", "too many open files", "fd leak"),
    "thread_explosion": ("too many threads", "thread leak", "thread blowup"),
    "connection_exhaustion": ("too many connections", "connection leak", "connections exhausted"),
    "http_errors": ("http error", "5xx", "5xxs", "500s", "server errors"),
    "rate_limited": ("rate limiting", "rate limit", "429", "429s", "throttled", "throttling"),
    "http_unexpected_status": ("unexpected status", "wrong status", "wrong status code", "404", "403", "4xx",
                               "3xx", "not found", "forbidden"),
    "slow_responses": ("slow response", "slow", "slowness", "high latency"),
    "health_content_mismatch": ("content mismatch", "health mismatch", "wrong health body",
                                "health body mismatch"),
    "disk_full": ("full disk", "out of disk", "no space left", "disk space"),
    "host_memory_pressure": ("memory pressure", "host memory"),
    "host_cpu_overload": ("cpu overload", "host cpu", "host overloaded"),
    "dependency_down": ("dependency", "dependency failure", "upstream down", "dep down"),
    "flapping": ("flap", "flaps", "flappy", "flapping health"),
    "log_error_burst": ("error burst", "log burst", "burst of errors", "log errors"),
}

#: Fuzzy score (0–100) a service name must reach to be taken without asking.
SERVICE_CUTOFF = 80.0
#: Candidates at or above this score are offered as "did you mean".
SUGGEST_CUTOFF = 55.0


_GENERIC_WORDS = frozenset({
    "api", "server", "service", "services", "svc", "app", "worker", "web", "the", "aurora", "db",
    "backend", "frontend", "daemon", "proc", "process", "main",
})
NOT_SERVICE_WORDS = frozenset({
    "the", "a", "an", "on", "for", "of", "to", "in", "at", "my", "our", "your", "please", "pls", "plz",
    "it", "its", "again", "now", "asap", "right", "with", "from", "and", "is", "are", "was", "be", "up",
    "down", "all", "me", "us", "this", "that", "logs", "log", "alerts", "alert", "last", "lines", "line",
    "service", "services", "svc", "fleet", "everything", "about", "till", "until", "tomorrow", "today",
    "minutes", "minute", "min", "mins", "hours", "hour", "hr", "hrs", "seconds", "second", "secs", "sec",
    "day", "days", "week", "weeks", "issues", "issue", "problems", "doing", "looking", "so", "why",
    "what", "how", "did", "does", "do", "keep", "keeps", "too", "just", "some", "any", "state", "status",
    "health", "healthy", "ok", "okay", "red", "green", "dead", "die", "died", "crash", "crashing",
    "previous", "version", "deploy", "change", "fix", "remediation", "maintenance", "offline", "online",
    "since", "been", "has", "have", "had", "again", "then", "by", "can", "you", "could", "would",
    "quick", "check", "show", "get", "give", "pull", "tail", "view", "dump", "recent", "open", "new",
    "history", "incidents", "incident", "pending", "approvals", "approval", "queue", "id", "restart",
    "start", "stop", "scan", "silence", "mute", "snooze", "rollback", "revert", "undo", "bounce", "kick",
    "reboot", "halt", "launch", "boot", "grade", "rate", "approve", "reject", "explain", "help", "is",
    "whats", "was", "were", "happened", "wrong", "root", "cause", "rca", "diagnose", "hung", "frozen",
    "stuck", "wedged", "slow", "flapping", "eating", "memory", "cpu", "hey", "yo", "thing", "things",
    "one", "i", "we", "need", "want", "go", "ahead", "run", "full", "do", "sweep", "diagnostics", "look",
    "rescan", "recycle", "cycle", "disable", "turn", "off", "take", "bring", "spin", "fire", "power",
    "shut", "quiet", "alerting", "paging", "lgtm", "pattern", "mean", "means",
})


def service_aliases(services: Sequence[str]) -> dict[str, str]:
    """alias (space separated words) -> canonical service name."""
    names = [s for s in dict.fromkeys(services) if isinstance(s, str) and words_of(s)]
    word_owners: dict[str, set[str]] = {}
    for name in names:
        for w in words_of(name):
            word_owners.setdefault(w, set()).add(name)
    aliases: dict[str, str] = {}
    for name in names:
        ws = words_of(name)
        aliases.setdefault(" ".join(ws), name)
        aliases.setdefault("".join(ws), name)
        for w in ws:
            if w not in _GENERIC_WORDS and len(word_owners[w]) == 1 and not w.isdigit():
                aliases.setdefault(w, name)
    return aliases


def _candidate_windows(text: str) -> list[str]:
    """Runs of 1–3 consecutive non-filler words: the places a service name can hide."""
    runs: list[list[str]] = [[]]
    for w in words_of(text):
        if w in NOT_SERVICE_WORDS or w.isdigit() or re.fullmatch(r"\d+[a-z]{1,3}", w):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(w)
    windows: list[str] = []
    for run in runs:
        for size in (3, 2, 1):
            for i in range(len(run) - size + 1):
                windows.append(" ".join(run[i:i + size]))
    return windows


def _alias_score(window: str, alias: str) -> float:
    if window == alias:
        return 100.0
    if len(alias) <= 3 or len(window) <= 3:  # "ui": short names only match exactly
        return 0.0
    if window in _GENERIC_WORDS:  # "aurora" alone is Aurora itself, not aurora_ui
        return 0.0
    score = fuzz.ratio(window, alias)
    squashed = window.replace(" ", "")
    if squashed != window:
        score = max(score, fuzz.ratio(squashed, alias.replace(" ", "")))
    return float(score)


def resolve_service(text: str, services: Sequence[str]) -> tuple[str | None, float, list[str]]:
    """Find the service ``text`` refers to among the live ``services``.

    Returns ``(name, score, alternatives)``.  ``name`` is ``None`` when the best score is below
    :data:`SERVICE_CUTOFF`; ``alternatives`` are other plausible services (best first) for a
    "did you mean" prompt.
    """
    if not isinstance(text, str) or not services:
        return None, 0.0, []
    aliases = service_aliases(services)
    best: dict[str, float] = {}
    for window in _candidate_windows(clean(text[:MAX_INPUT_CHARS])):
        for alias, name in aliases.items():
            score = _alias_score(window, alias)
            if score > best.get(name, 0.0):
                best[name] = score
    if not best:
        return None, 0.0, []
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    name, score = ranked[0]
    if score < SERVICE_CUTOFF:
        return None, score, [n for n, s in ranked if s >= SUGGEST_CUTOFF]
    if len(ranked) > 1 and ranked[1][1] == score:  # a tie is not a decision
        return None, score, [n for n, s in ranked if s >= SUGGEST_CUTOFF]
    return name, score, [n for n, s in ranked[1:] if s >= SUGGEST_CUTOFF]


def _pattern_phrases(patterns: Sequence[str]) -> list[tuple[str, str]]:
    """(phrase, pattern id), longest phrase first."""
    pairs: dict[str, str] = {}
    for pid in patterns:
        pairs.setdefault(" ".join(words_of(pid)), pid)
        pairs.setdefault("".join(words_of(pid)), pid)
    for pid in patterns:
        for phrase in PATTERN_PHRASES.get(pid, ()):
            pairs.setdefault(" ".join(words_of(phrase)), pid)
    return sorted(pairs.items(), key=lambda kv: (-len(kv[0]), kv[0]))


_EXPLAIN_FILLER = frozenset({
    "a", "an", "the", "is", "are", "does", "do", "mean", "means", "meaning", "pattern", "patterns",
    "issue", "about", "me", "to", "what", "whats", "s", "by", "term", "called", "exactly", "again",
    "please", "pls", "one", "this", "that", "it", "of", "in", "aurora", "so", "thing", "problem",
    "concept", "word", "really", "actually", "you", "can", "could", "for", "us", "quickly", "briefly",
})


def resolve_pattern(text: str, patterns: Sequence[str] = ()) -> str | None:
    """The issue-pattern id ``text`` names ("crash loop" -> ``crash_loop``), or ``None``.

    The pattern must be essentially all the text says (``"explain why we debounce flapping alerts"``
    is a question about debouncing, not about the ``flapping`` pattern).
    """
    pats = tuple(patterns) or PATTERN_IDS
    words = [w for w in words_of(clean(text)) if w not in _EXPLAIN_FILLER]
    if not words:
        return None
    joined = " ".join(words)
    for phrase, pid in _pattern_phrases(pats):
        if re.search(r"(?:^| )" + re.escape(phrase) + r"(?: |$)", joined):
            return pid if len(words) == len(phrase.split()) else None
    # misspelt pattern names: fuzzy, but only when the whole remainder is the name
    if len(words) <= 4:
        choices = {phrase: pid for phrase, pid in _pattern_phrases(pats) if len(phrase) > 3}
        hit = process.extractOne(joined, list(choices), scorer=fuzz.ratio, score_cutoff=84)
        if hit:
            return choices[hit[0]]
    return None
