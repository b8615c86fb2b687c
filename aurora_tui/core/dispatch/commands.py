"""Fleet commands typed in plain words into the dispatcher pane.

``parse_command(text, services, patterns)`` turns an operator's message into a :class:`Command`
(``action``, ``target``, ``args``), a :class:`Refusal` when the text looks dangerous, or ``None`` when
the text is not a fleet command at all (chat, questions, requests for code ...).

This module only *parses*.  Chat text is never executed: a ``Command`` is a description that the
caller validates (guardians, confirmation) before anything touches the fleet, and a shell line, a pid,
or a command aimed at PID 1 / init / Aurora itself is refused outright.

Targets
    * services are resolved fuzzily against the LIVE list passed in (``brige api`` -> ``bridge_api``,
      ``the bridge``, ``learning-api``, ``fileserver``, ``ui``); below :data:`SERVICE_CUTOFF` the target
      stays ``None`` and ``args["did_you_mean"]`` lists the candidates;
    * incident / approval ids are strings (``"12"``);
    * ``explain`` targets an issue-pattern id from :data:`PATTERN_IDS` (or the ``patterns`` passed in).

A fleet-changing command with ``target=None`` means the whole fleet only when ``args["scope"] == "all"``;
otherwise the target is missing and the caller must ask for it.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

__all__ = [
    "ACTIONS",
    "FLEET_CHANGING",
    "PATTERN_IDS",
    "SERVICE_CUTOFF",
    "Command",
    "Refusal",
    "looks_dangerous",
    "parse_command",
    "parse_duration",
    "resolve_pattern",
    "resolve_service",
    "suggest_verb",
]

ACTIONS: tuple[str, ...] = (
    "status", "start", "stop", "restart", "logs", "incidents", "approvals", "approve", "reject",
    "grade", "why", "explain", "scan", "silence", "rollback", "help",
)
#: Actions that change the fleet (or a pending decision) and therefore need guardians + confirmation.
FLEET_CHANGING = frozenset({"start", "stop", "restart", "rollback", "approve", "reject", "silence"})

PATTERN_IDS: tuple[str, ...] = (
    "crashed", "crash_loop", "startup_failure", "hung", "zombie_children", "orphaned_children",
    "port_conflict_foreign", "port_conflict_stale", "port_not_listening", "high_cpu", "memory_leak",
    "memory_limit", "fd_exhaustion", "thread_explosion", "connection_exhaustion", "http_errors",
    "rate_limited", "slow_responses", "health_content_mismatch", "disk_full", "host_memory_pressure",
    "host_cpu_overload", "dependency_down", "flapping", "log_error_burst",
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
#: Fleet commands are short; longer text is never parsed as one.
MAX_COMMAND_CHARS = 400
MAX_INPUT_CHARS = 4000


@dataclass(frozen=True)
class Command:
    """A parsed fleet command.  It is a description only; nothing has been executed."""

    action: str
    target: str | None = None
    args: dict = field(default_factory=dict, hash=False)

    @property
    def changes_fleet(self) -> bool:
        return self.action in FLEET_CHANGING


@dataclass(frozen=True)
class Refusal:
    """The text looked like a shell line, a pid, or aimed at PID 1 / init / Aurora itself."""

    reason: str


# --------------------------------------------------------------------------------------------------
# normalisation helpers

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'",
                         "\u2013": "-", "\u2014": "-"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")


def _clean(text: str) -> str:
    """NFKC, straight quotes, control characters to spaces, lower case, collapsed whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _CONTROL.sub(" ", text)
    return " ".join(text.lower().split())


def _words(text: str) -> list[str]:
    """Alphanumeric words; ``_ - . /`` and other punctuation separate words."""
    return re.findall(r"[a-z0-9]+", text.lower())


# --------------------------------------------------------------------------------------------------
# dangerous text

_SHELL_META = re.compile(
    r"`|\$\(|\$\{|\$[a-z_]|&&|\|\||\||>>|&>|\d>|>\s*[/~$&]|<\s*[/~(]|\\x[0-9a-f]{2}|:\(\)\s*\{"
)
_SHELL_WORDS = (
    r"rm|shutdown|reboot|halt|poweroff|kill\w*|pkill|sudo|su|curl|wget|cat|echo|chmod|chown|dd|mkfs"
    r"|sh|bash|zsh|python\d*|perl|ruby|node|nc|ncat|exec|eval|init|systemctl|service|drop|delete|insert"
    r"|update|truncate|select|alter|grant|exit|ls|mv|cp|touch|sleep|nohup"
)
_SHELL_CMD = re.compile(
    r";\s*(?:" + _SHELL_WORDS + r")\b"
    r"|;\s*-{2}|;\s*$"
    r"|\bsudo\b|\bsu\s+-|\bkillall\b|\bpkill\b|\bxargs\b|\bnohup\b|\bmkfs\b|\bchmod\b|\bchown\b"
    r"|\biptables\b|\bcrontab\s+-|\btelinit\b|\bsystemctl\s+\w"
    r"|\brm\s+(?:-|/|~|\*|\.)|\bdd\s+(?:if|of)="
    r"|\b(?:cat|less|more|head|tail|cp|mv|ls|source)\s+(?:/|~|\.\.?/)"
    r"|\b(?:curl|wget)\s+(?:-|https?://|\S+\.\S+/)"
    r"|\b(?:nc|ncat|netcat|telnet)\s+(?:-|\S+\.\S+)"
    r"|\b(?:bash|sh|zsh|dash|python\d*(?:\.\d+)?|perl|ruby|node)\s+-\w"
    r"|\bshutdown\b\s*(?:$|now\b|-|\+|\d)"
    r"|\binit\s+[0-6]\b"
    r"|\bkill\s*(?:-\w+|\d+|%\d|pid\b|\$)"
    r"|\bpid\s*[:#=]?\s*\d+"
    r"|/etc/(?:passwd|shadow|sudoers|hosts)|/dev/(?:sd|nvme|null|zero|u?random|tcp|mem)"
    r"|\bos\.system\b|\bsubprocess\b|\b__import__\b|\beval\s*\(|\bexec\s*\("
)
_SQL = re.compile(
    r"\b(?:drop|truncate|alter)\s+table\b|\bdelete\s+from\b|\binsert\s+into\b|\bunion\s+(?:all\s+)?select\b"
    r"|'\s*or\s+'?\w+'?\s*=|\bor\s+1\s*=\s*1\b|'\s*;|'\s*--"
)
_BARE_POWER = re.compile(r"^(?:sudo\s+)?(?:reboot|halt|poweroff|shutdown)(?:\s+(?:now|-\w+))?$")


def looks_dangerous(text: str) -> str | None:
    """The reason ``text`` looks like a shell line / injection / pid, or ``None``."""
    if not isinstance(text, str) or not text:
        return None
    raw = text[: MAX_INPUT_CHARS * 4]
    lowered = unicodedata.normalize("NFKC", raw).translate(_QUOTES).lower()
    spaced = _CONTROL.sub(" ", lowered)
    for candidate in {lowered, spaced}:
        if _SHELL_META.search(candidate):
            return "that looks like a shell line; chat text is never executed"
        if _SQL.search(candidate):
            return "that looks like an injection attempt; nothing was run"
        if _SHELL_CMD.search(candidate):
            return "that looks like a shell command or a process id; Aurora only acts on its own services"
    if _BARE_POWER.match(" ".join(spaced.split())):
        return "Aurora does not reboot or shut down the host"
    return None


# Aurora itself, PID 1, init, the host: never a target of a fleet-changing command.
_SELF_TARGET = re.compile(
    r"\baurora\b(?!\s*[-_ ]?\s*ui\b)|\b(?:init|systemd|yourself|pid)\b|\bprocess\s+#?\d+"
    r"|\bthe\s+(?:host|machine|box|kernel|os|whole\s+server)\b"
)

# --------------------------------------------------------------------------------------------------
# services


_GENERIC_WORDS = frozenset({
    "api", "server", "service", "services", "svc", "app", "worker", "web", "the", "aurora", "db",
    "backend", "frontend", "daemon", "proc", "process", "main",
})
_NOT_SERVICE_WORDS = frozenset({
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


def _service_aliases(services: Sequence[str]) -> dict[str, str]:
    """alias (space separated words) -> canonical service name."""
    names = [s for s in dict.fromkeys(services) if isinstance(s, str) and _words(s)]
    word_owners: dict[str, set[str]] = {}
    for name in names:
        for w in _words(name):
            word_owners.setdefault(w, set()).add(name)
    aliases: dict[str, str] = {}
    for name in names:
        ws = _words(name)
        aliases.setdefault(" ".join(ws), name)
        aliases.setdefault("".join(ws), name)
        for w in ws:
            if w not in _GENERIC_WORDS and len(word_owners[w]) == 1 and not w.isdigit():
                aliases.setdefault(w, name)
    return aliases


def _candidate_windows(text: str) -> list[str]:
    """Runs of 1–3 consecutive non-filler words: the places a service name can hide."""
    runs: list[list[str]] = [[]]
    for w in _words(text):
        if w in _NOT_SERVICE_WORDS or w.isdigit() or re.fullmatch(r"\d+[a-z]{1,3}", w):
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
    aliases = _service_aliases(services)
    best: dict[str, float] = {}
    for window in _candidate_windows(_clean(text[:MAX_INPUT_CHARS])):
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


# --------------------------------------------------------------------------------------------------
# patterns


def _pattern_phrases(patterns: Sequence[str]) -> list[tuple[str, str]]:
    """(phrase, pattern id), longest phrase first."""
    pairs: dict[str, str] = {}
    for pid in patterns:
        pairs.setdefault(" ".join(_words(pid)), pid)
        pairs.setdefault("".join(_words(pid)), pid)
    for pid in patterns:
        for phrase in PATTERN_PHRASES.get(pid, ()):
            pairs.setdefault(" ".join(_words(phrase)), pid)
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
    words = [w for w in _words(_clean(text)) if w not in _EXPLAIN_FILLER]
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


# --------------------------------------------------------------------------------------------------
# numbers: ids, grades, durations

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
    t = re.sub(r"(?<=\d[hmsdw])(?=\d)", " ", _clean(text))  # "1h30m" -> "1h 30m"
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


def _strip_durations(t: str) -> str:
    t = _DURATION_RE.sub(" ", t)
    return re.sub(r"\b\d+\s*lines?\b", " ", t)


_ID_PREFIXED = re.compile(
    r"(?:#|\b(?:id|incident|approval|request|req|item|number|no\.?|fix|action|ticket)\s*#?)\s*(\d{1,9})\b"
)
_BARE_NUMBER = re.compile(r"(?<![\w./:#-])(\d{1,9})\b(?!\s*(?:/|%|out of|\.\d))")
_GRADE_RE = re.compile(r"(?<![\w.])(\d{1,2})\s*(?:/\s*10\b|out of\s*10\b)")


def _find_id(t: str) -> tuple[str | None, str]:
    """(id, text with the id removed)."""
    t = _strip_durations(t)
    m = _ID_PREFIXED.search(t) or _BARE_NUMBER.search(t)
    if not m:
        return None, t
    return str(int(m.group(1))), t[:m.start()] + " " + t[m.end():]


def _find_grade(t: str) -> tuple[int | None, str | None, str]:
    """(grade, id, rest) for ``grade 4 8/10``, ``rate #6 4/10``, ``grade 12 6``, ``give #2 a 10/10``."""
    grade = None
    m = _GRADE_RE.search(t)
    if m:
        grade = int(m.group(1))
        t = t[:m.start()] + " " + t[m.end():]
    ident, t = _find_id(t)
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


def _find_reason(original: str, after_id: bool = True) -> str | None:
    text = " ".join(unicodedata.normalize("NFKC", original).translate(_QUOTES).split())
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


# --------------------------------------------------------------------------------------------------
# verbs

#: single words (and common misspellings are handled by :func:`suggest_verb`) -> canonical action
VERB_WORDS: dict[str, str] = {
    "status": "status", "sitrep": "status", "health": "status", "stats": "status",
    "start": "start", "launch": "start", "boot": "start",
    "stop": "stop", "halt": "stop", "shutdown": "stop",
    "restart": "restart", "bounce": "restart", "kick": "restart", "reboot": "restart", "cycle": "restart",
    "recycle": "restart", "reload": "restart",
    "logs": "logs", "log": "logs", "tail": "logs",
    "incidents": "incidents", "incident": "incidents",
    "approvals": "approvals", "pending": "approvals",
    "approve": "approve", "approved": "approve", "lgtm": "approve", "accept": "approve",
    "reject": "reject", "deny": "reject", "decline": "reject", "veto": "reject", "refuse": "reject",
    "grade": "grade", "rate": "grade", "score": "grade",
    "why": "why", "diagnose": "why", "rca": "why",
    "explain": "explain", "define": "explain",
    "scan": "scan", "rescan": "scan", "sweep": "scan",
    "silence": "silence", "mute": "silence", "snooze": "silence", "quiet": "silence",
    "rollback": "rollback", "revert": "rollback", "undo": "rollback",
    "help": "help", "usage": "help", "commands": "help",
}
# ordinary English words one typo away from a verb: never "corrected"
_NOT_TYPOS = frozenset({
    "shop", "step", "stow", "slop", "top", "heap", "held", "hell", "helm", "hemp", "scam", "scar",
    "span", "swan", "scat", "logo", "lots", "legs", "loss", "lugs", "smart", "stare", "stars", "stark",
    "trade", "grace", "grape", "statue", "state", "stat", "rest", "lest", "test", "text", "stats",
    "star", "sort", "stub", "snap", "scal", "coin", "cool", "load", "lock", "look", "book", "boost",
    "tall", "tale", "talk", "tell", "toil", "hall", "half", "hay", "who", "wha", "wh", "my", "we",
    "way", "why", "undone", "under", "dent", "deny", "race", "rat", "rates", "sore", "store", "core",
    "more", "quit", "quite", "quiet", "kicks", "reset", "relax", "retry", "react", "rebuild", "refresh",
    "restore", "resort", "redo", "scans", "grades", "start", "stop", "logs", "help", "mute", "cute",
    "route", "router", "hi", "hey", "ty", "yo", "ok", "k", "np", "gm", "lol", "lots", "lo", "low",
    "slow", "scar", "sup", "stay", "stab", "stun", "spot", "shot", "heal", "hello", "heals",
})


def suggest_verb(word: str) -> str | None:
    """The fleet verb a (possibly misspelt) word most likely means, or ``None``.

    ``suggest_verb("restrat") == "restart"``, ``suggest_verb("bounce") == "restart"``,
    ``suggest_verb("banana") is None``.
    """
    if not isinstance(word, str):
        return None
    w = "".join(_words(_clean(word)))
    if not w or len(w) > 20:
        return None
    if w in VERB_WORDS:
        return VERB_WORDS[w]
    if w in _NOT_TYPOS or len(w) < 2:
        return None
    if w == "wy":
        return "why"
    limit = 1 if len(w) < 8 else 2
    best: tuple[float, str] | None = None
    for cand, action in VERB_WORDS.items():
        if abs(len(cand) - len(w)) > limit or len(cand) < 3:
            continue
        dist = OSA.distance(w, cand, score_cutoff=limit)
        if dist > limit:
            continue
        if w[0] != cand[0] and dist > 0:  # typos rarely hit the first letter
            continue
        key = (dist - fuzz.ratio(w, cand) / 1000.0, action)
        if best is None or key < best:
            best = key
    return best[1] if best else None


# --------------------------------------------------------------------------------------------------
# clause-level grammar

_PREFIX = re.compile(
    r"^(?:(?:hey|hi|yo|ok so|okay so|so|um+|uh+|right|alright|aurora|dispatcher|please|pls|plz|kindly"
    r"|can you|could you|can u|could u|would you|will you|can we|could we|go ahead and|i need you to|i want you to"
    r"|i'd like you to|let's|lets|quick|quickly|just|now|yes|yeah|yep)\b[\s,:!]*)+"
)
_CLAUSE_SPLIT = re.compile(r"[.!?;]+(?:\s+|$)|,\s*|\s+(?:and then|then|but|so)\s+|\s+-\s+")
_STATE_WORDS = r"(?:up|down|ok|okay|healthy|unhealthy|running|alive|dead|green|red|fine|happy|working|broken)"
_FLEET_WORDS = re.compile(r"\b(?:everything|all|fleet|services|every service|the lot|whole fleet)\b")


_TRY_GERUND = re.compile(
    r"^(?:please\s+)?try(?:\s+to)?\s+(restart|start|stopp?|bounc|reboot|scann?|silenc|mut|rolling back|revert)"
    r"(?:ing|e)?\b"
)
_GERUND_BASE = {"restart": "restart", "start": "start", "stop": "stop", "stopp": "stop", "bounc": "bounce",
                "reboot": "reboot", "scan": "scan", "scann": "scan", "silenc": "silence", "mut": "mute",
                "rolling back": "roll back", "revert": "revert"}


def _split_clauses(t: str) -> list[str]:
    out = []
    for piece in _CLAUSE_SPLIT.split(t):
        piece = _PREFIX.sub("", piece.strip()).strip(" ?!.,:")
        m = _TRY_GERUND.match(piece)  # "try restarting the learning api"
        if m:
            piece = _GERUND_BASE[m.group(1)] + piece[m.end():]
        if piece:
            out.append(piece)
    return out


#: (regex anchored at the start of a clause, action).  Order matters: the first rule whose reading of the
#: clause yields a command wins.  "help?" / "explain?" / "status?" need a topic, pattern or service;
#: "start!" / "status!" need a resolved service; "none" marks noun phrases that are never orders.
_RULE_TABLE: list[tuple[str, str]] = [
    (r"^(?:run|do|start|kick off)\s+(?:a\s+|an\s+)?(?:full\s+|quick\s+|new\s+)?(?:scan|diagnostics?|sweep)\b",
     "scan"),
    # help
    (r"^(?:help|halp)(?:\s+(?:pls|please|me(?:\s+out)?|me\s+please))?$", "help"),
    (r"^help\s+(?:with\s+|on\s+)?(?=\w+$)", "help?"),
    (r"^(?:usage|commands|(?:list|show|get|print|display)\s+(?:the\s+|all\s+)?(?:commands|help|usage)"
     r"|what commands\b.*|what can (?:you|this(?: thing)?|aurora|it) do|what can i (?:ask(?: you)?|do|say|type)"
     r"|how do i use (?:this|you|aurora|the dispatcher)\b.*)$", "help"),
    (r"^how (?:do|can|should) (?:i|we) (?=\w+\b)", "help?"),
    # negated approve, silence phrasings that open with stop/shut
    (r"^(?:don'?t|do not|dont)\s+approve\b", "reject"),
    (r"^(?:stop|quit)\s+(?:alerting|paging|notifying|alerts|notifications|pinging)\b", "silence"),
    (r"^shut\s+up\b(?:\s+about\b)?", "silence"),
    (r"^(?:silence|mute|snooze|quiet|hush)\b", "silence"),
    # rollback
    (r"^(?:roll\s*back|rolback|revert|undo)\b", "rollback"),
    # restart
    (r"^(?:re-?start|reboot|bounce)s?\s+(?:loops?|policy|policies|storms?|counts?|backoff|delays?|limits?"
     r"|budget|history|logic)\b", "none"),
    (r"^(?:re-?start|bounce|kick|reboot|cycle|recycle|power\s*cycle|reload)\b", "restart"),
    (r"^give\b(?=.*\ba\s+(?:kick|bounce|restart|reboot)\b)", "restart"),
    # stop / start
    (r"^(?:stop|halt|shut\s*down|shut\s+off|turn\s+off|disable|power\s+off|switch\s+off)\b", "stop"),
    (r"^(?:take|bring|shut)\b(?=.*\b(?:down|offline)\b)", "stop"),
    (r"^(?:start|launch|boot|spin\s+up|fire\s+up|power\s+on|turn\s+on|switch\s+on|enable)\b", "start"),
    (r"^(?:bring)\b(?=.*\b(?:up|online|back)\b)", "start"),
    (r"^get\b(?=.*\b(?:running|started|going|up)\b)", "start!"),
    # why
    (r"^(?:(?:show|tell) me\s+)?(?:what happened (?:to|with)|root\s*cause(?:\s+(?:of|for))?|rca(?:\s+(?:of|for|on))?"
     r"|what'?s (?:wrong|up|going on) with|whats (?:wrong|up|going on) with|diagnose|what killed"
     r"|what broke)\b", "why"),
    (r"^explain\s+(?=(?:incident|#)\s*#?\d)", "why"),
    (r"^why\b", "why"),
    # explain
    (r"^(?:explain|define|describe|tell me about)\b", "explain"),
    (r"^(?:what(?:'s| is| are| does)?|whats)\b(?:\s+(?:a|an|the))?", "explain?"),
    # grade / approve / reject (need ids; checked later)
    (r"^(?:grade|rate|score)\b", "grade"),
    (r"^give\b(?=.*\d)", "grade"),
    (r"^(?:approve|approved|lgtm|ok|okay|accept|ship it|sign\s*off\s+on|go ahead with|\+1)\b", "approve"),
    (r"^(?:reject|rejected|deny|decline|veto|refuse|nack|nope)\b", "reject"),
    # approvals
    (r"^(?:approvals?|approval queue|pending approvals?|pending actions)\b", "approvals"),
    (r"^(?:what'?s|whats|what is|anything|any|is there anything|what)\b.*\b(?:waiting (?:for|on) (?:me|my approval"
     r"|approval|a decision)|waiting for (?:my )?approval"
     r"|needs? (?:my )?(?:approval|sign\s*-?\s*off|a decision)|pending|to approve|approval queue|approvals)\b",
     "approvals"),
    (r"^(?:show|list|get|view)\b(?:\s+me)?(?:\s+the)?(?:\s+\w+)?\s+pending\b", "approvals"),
    (r"^(?:show|list|get|view)\b(?:\s+me)?(?:\s+the)?\s+(?:\w+\s+)?(?:approvals?|approval queue)\b", "approvals"),
    # incidents
    (r"^(?:incidents?|incident history)\b", "incidents"),
    (r"^(?:show|list|get|view|any|recent|open|new|what|which)\b(?:\s+\S+){0,3}?\s+incidents?\b", "incidents"),
    (r"^what broke\b", "incidents"),
    (r"^(?:were|are|was|is|have)\s+there\s+(?:been\s+)?(?:any\s+)?(?:new\s+)?incidents?\b", "incidents"),
    # logs
    (r"^(?:logs?|tail)\b", "logs"),
    (r"^(?:show|get|pull|dump|view|fetch|print|grab|give|what'?s in|whats in|recent)\b.*\blogs?\b", "logs"),
    (r"^recent log lines\b", "logs"),
    (r"^(?:(?:show|get|give|print|dump|grab|fetch)(?:\s+me)?\s+)?(?:the\s+)?(?:last|first|latest)\s+\d+\s+"
     r"(?:log\s+)?lines?\b", "logs"),
    # scan
    (r"^(?:scan|rescan|sweep)\b", "scan"),
    (r"^(?:check|look)\s+for\s+(?:problems|issues|faults|trouble)\b", "scan"),
    # status
    (r"^(?:status|sitrep|fleet status|show status|show me (?:the )?status|overview|fleet overview)\b", "status"),
    (r"^(?:quick\s+)?health(?:\s+check)?(?:\s+(?:on|of|for)\b|\s*$)", "status"),
    (r"^(?:show|give|get)\b(?:\s+me)?(?:\s+(?:a|the))?\s+(?:fleet\s+)?(?:health|status|overview|state)\b",
     "status"),
    (r"^(?:what'?s|whats|what is)\s+the\s+(?:status|state|health)\b", "status"),
    (r"^(?:how'?s|hows|how is|how are)\b", "status?"),
    (r"^is\b", "status?is"),
    (r"^any\s+(?:services?|thing|one|service)\s+" + _STATE_WORDS + r"\b", "status"),
    (r"^check\s+on\b", "status"),
    (r"^(?:the\s+)?(?:fleet|overall|system|global|whole|service|services)\s+(?:status|health|state|overview)$",
     "status"),
    (r"^(?:quick\s+)?(?:health|status)(?:\s+check)?\b", "status!"),
    (r"^(?:is\s+|are\s+)?(?:everything|all(?:\s+(?:the\s+)?services)?|the\s+fleet|every\s+service)\s+(?:is\s+|are\s+)?"
     + _STATE_WORDS + r"$", "status"),
]
_RULES = [(re.compile(p), a) for p, a in _RULE_TABLE]


def _match_verbs(c: str):
    """Every (action, rest of clause) whose verb phrase opens the clause, in priority order."""
    for pattern, action in _RULES:
        m = pattern.match(c)
        if m:
            yield action, c[m.end():].strip()




_NOUN_TAIL = re.compile(
    r"(?:\s+(?:for|in|from|over|during|since|the|last|past|today|overnight|yesterday|please|pls|now|"
    r"lines?|\d+\s*[a-z]{0,7}))*\s*$"
)


def _noun_first(c: str, services: Sequence[str]) -> tuple[str, str] | None:
    """``learning api incidents last 30m`` / ``bridge logs`` / ``ui status``: service, then noun."""
    m = re.match(r"^(?:the\s+)?((?:[\w-]+\s+){0,2}?[\w-]+)\s+(incidents?|logs?|status|health|approvals?)\b(.*)$", c)
    if not m or not _NOUN_TAIL.fullmatch(m.group(3)):
        return None
    name, _, _ = resolve_service(m.group(1), services)
    if not name:
        return None
    action = {"incident": "incidents", "incidents": "incidents", "log": "logs", "logs": "logs",
              "status": "status", "health": "status", "approval": "approvals",
              "approvals": "approvals"}[m.group(2)]
    return action, (m.group(1) + " " + m.group(3)).strip()


# --------------------------------------------------------------------------------------------------
# the parser


def parse_command(text: str, services: Sequence[str], patterns: Sequence[str] = ()) -> Command | Refusal | None:
    """Parse ``text`` as a fleet command.

    Returns a :class:`Command`, a :class:`Refusal` (shell line, injection, pid, PID 1 / init /
    Aurora itself) or ``None`` (not a fleet command).  Never raises for a string argument and never
    executes anything.
    """
    if not isinstance(text, str):
        return None
    if "```" in text:  # a code block is a request about code, never an order
        danger = looks_dangerous(text.replace("`", " "))
        return Refusal(danger) if danger else None
    danger = looks_dangerous(text)
    if danger:
        return Refusal(danger)
    t = _clean(text[:MAX_INPUT_CHARS])
    if not t or len(t) > MAX_COMMAND_CHARS:
        return None
    services = tuple(dict.fromkeys(s for s in services if isinstance(s, str)))
    pats = tuple(p for p in patterns if isinstance(p, str)) or PATTERN_IDS
    clauses = _split_clauses(t)
    for clause in clauses:
        result = _parse_clause(clause, t, text, services, pats)
        if result is not None:
            return result
    # a misspelt verb: "restrat the bridge", "stauts file_server", "scna fleet"
    for clause in clauses:
        first, _, rest = clause.partition(" ")
        if first in VERB_WORDS or (not rest and len(first) < 5):
            continue
        verb = suggest_verb(first)
        if not verb:
            continue
        result = _parse_clause(verb + (" " + rest if rest else ""), t, text, services, pats)
        if isinstance(result, Refusal):
            return result
        if isinstance(result, Command) and _has_evidence(result, rest):
            return Command(result.action, result.target, {**result.args, "corrected_from": first})
    return None


def _has_evidence(cmd: Command, rest: str) -> bool:
    """A typo-corrected verb is trusted only when the rest of the clause looks like a command too."""
    if cmd.target is not None or cmd.args.get("scope") == "all":
        return True
    return bool(re.fullmatch(r"(?:\s*(?:last|in|the|past|for|pls|please|now|\d+\s*[a-z]{0,7}))*\s*", rest))


def _parse_clause(c: str, whole: str, original: str, services: Sequence[str],
                  patterns: Sequence[str]) -> Command | Refusal | None:
    if re.match(r"^kill\b", c):
        return Refusal("Aurora does not kill processes from chat; use `stop <service>`")
    hits = list(_match_verbs(c))
    noun = _noun_first(c, services)
    if noun:
        hits.append(noun)
    for action, rest in hits:
        if action == "none":  # "restart loop on the file server": a noun phrase, not an order
            return None
        result = _interpret(action, rest, c, whole, original, services, patterns)
        if result is not None:
            return result
    return None


def _interpret(action: str, rest: str, c: str, whole: str, original: str, services: Sequence[str],
               patterns: Sequence[str]) -> Command | Refusal | None:
    if action == "help?":  # "help restart", "how do i silence a service"
        word = rest.split(" ", 1)[0] if rest else ""
        verb = VERB_WORDS.get(word)
        if verb is None and len(word) >= 4 and word not in _NOT_TYPOS:
            verb = suggest_verb(word)
        return Command("help", None, {"topic": verb}) if verb else None
    if action == "help":
        return Command("help", None, {})
    if action in ("explain", "explain?"):
        pid = resolve_pattern(rest, patterns)
        return Command("explain", pid, {}) if pid else None
    if action in ("approve", "reject", "grade"):
        return _decision(action, c, whole, original)
    if action in ("status?", "status?is"):
        return _status_question(action, rest, services)
    return _service_action(action, rest, c, whole, original, services)


def _decision(action: str, c: str, whole: str, original: str) -> Command | None:
    if action == "grade":
        grade, ident, _ = _find_grade(c)
        if ident is None or grade is None:
            return None
        args: dict = {"grade": grade}
        reason = _find_reason(re.sub(r"\b\d{1,2}\s*(?:/\s*10|out of 10)\b", " ", original), after_id=True)
        if reason and not re.fullmatch(r"(?:a|an|as)?\s*\d{1,2}", reason):
            args["reason"] = reason
        return Command("grade", ident, args)
    ident, _ = _find_id(c)
    if ident is None and re.fullmatch(r"\S+(?:\s+(?:that|this|the|it|one|fix|request|please|pls))*", c):
        ident, _ = _find_id(whole)  # "approve that one, #22"
    if ident is None:
        # "approve" / "reject" without an id: show the queue so the operator can pick one
        if re.fullmatch(r"(?:approve|reject|deny|decline)(?:\s+(?:it|this|that|something|one))?", c):
            return Command("approvals", None, {})
        return None
    args = {}
    reason = _find_reason(original)
    if reason:
        args["reason"] = reason
    return Command(action, ident, args)


def _status_question(action: str, rest: str, services: Sequence[str]) -> Command | None:
    if action == "status?is":  # "is the file server up", "is ui ok"
        m = re.match(r"^(?:the\s+)?(.{1,40}?)\s+" + _STATE_WORDS + r"\b", rest)
        if not m:
            return None
        name, _, _ = resolve_service(m.group(1), services)
        return Command("status", name, {}) if name else None
    # how's / how is ...: the fleet or a service
    if _FLEET_WORDS.search(rest) or re.match(r"^(?:things|we doing)\b", rest):
        return Command("status", None, {"scope": "all"})
    name, _, _ = resolve_service(rest, services)
    return Command("status", name, {}) if name else None


_PRONOUN = re.compile(r"^(?:(?:it|them|that one|this one|that|this|again|now|please|pls|asap)\b\s*)*$")


_SENTENCE_VERB = re.compile(
    r"^(?:is|are|was|were|look|looks|looked|seem|seems|show|shows|showed|say|says|said|keep|keeps|kept|have"
    r"|has|had|fire|fires|fired|get|gets|got|went|go|goes|don'?t|doesn'?t|didn'?t|can'?t|won'?t|should|will"
    r"|would|need|needs|could|might|must|never|always|still|stay|stays|take|takes|took|fill|fills|grow|grows"
    r"|contain|contains|mention|mentions)\b"
)


def _unexplained(rest: str, services: Sequence[str]) -> list[str]:
    """Words of ``rest`` that are neither filler, numbers/durations nor part of a service name."""
    alias_words = {w for a in _service_aliases(services) for w in a.split()}
    return [w for w in _words(_strip_durations(rest))
            if w not in _NOT_SERVICE_WORDS and w not in alias_words and not w.isdigit()
            and not re.fullmatch(r"\d+[a-z]{1,3}", w)]


def _service_action(action: str, rest: str, c: str, whole: str, original: str,
                    services: Sequence[str]) -> Command | Refusal | None:
    args: dict = {}
    strict = action.endswith("!")
    action = action.rstrip("!")
    if _SENTENCE_VERB.match(rest) and re.match(r"^(?:status|logs?|incidents?|approvals?|health|scan)\b", c):
        return None  # "logs look clean", "incidents are duplicated": a sentence about them
    if re.search(r"'s\s+(?:response|latency|memory|cpu|load|time|usage|footprint|error|throughput|size|speed"
                 r"|performance|ram|disk)", rest):
        return None  # "bring down the bridge api's response time"
    if action in FLEET_CHANGING:
        if _SELF_TARGET.search(rest):
            return Refusal("Aurora only acts on the services it supervises, never on itself, init or a pid")
        if action in ("start", "stop", "restart") and re.search(r"(?<![\w#])\d+\b", _strip_durations(rest)):
            return Refusal("that looks like a process id; name a service instead")

    target: str | None = None
    name, score, alternatives = resolve_service(rest, services)
    if name is None and score == 100.0 and len(alternatives) > 1:
        args["targets"] = [a for a in alternatives if resolve_service(a, services)[1] == 100.0]
    if name is None and not alternatives:
        # "show me bridge logs for the past 15 minutes": the name sits before the noun
        name, _, alternatives = resolve_service(c, services)
    if name is None and not alternatives and _PRONOUN.match(rest):
        # "the bridge is hung, restart it"
        name, _, alternatives = resolve_service(whole, services)
    if name:
        target = name
    elif action in ("why", "rollback"):
        target, _ = _find_id(rest)
    if target is None:
        if action == "why" or strict:
            return None  # "why do we use retries" is a question, not a root-cause request
        if action not in FLEET_CHANGING and "targets" not in args and len(_unexplained(rest, services)) >= 2:
            return None  # "status shows running but ...": a sentence, not a command
        if alternatives:
            args["did_you_mean"] = alternatives
            args["unresolved"] = rest
        elif _unexplained(rest, services):
            args["unresolved"] = rest  # an unknown name is never "the whole fleet"
        elif _FLEET_WORDS.search(rest):
            args["scope"] = "all"

    if action == "silence":
        duration = parse_duration(c)
        if duration:
            args["duration_s"] = duration
    elif action in ("incidents", "logs"):
        window = parse_duration(c)
        if window:
            args["window_s"] = window
        if action == "logs":
            m = re.search(r"\b(\d{1,6})\s*lines?\b", c)
            if m:
                args["lines"] = int(m.group(1))
    elif action in ("rollback", "stop", "start", "restart"):
        reason = _find_reason(original, after_id=False)
        if reason:
            args["reason"] = reason
    return Command(action, target, args)
