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

The parser is split by what it reads: :mod:`.text` (normalisation), :mod:`.danger` (what is refused),
:mod:`.names` (services and issue patterns), :mod:`.numbers` (durations, ids, grades, reasons) and
:mod:`.grammar` (verbs and the clause rules).  This module puts them together.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from .danger import SELF_TARGET, looks_dangerous
from .grammar import NOT_TYPOS, STATE_WORDS, VERB_WORDS, match_verbs, split_clauses, suggest_verb
from .names import (
    NOT_SERVICE_WORDS,
    PATTERN_IDS,
    SERVICE_CUTOFF,
    resolve_pattern,
    resolve_service,
    service_aliases,
)
from .numbers import find_grade, find_id, find_reason, parse_duration, strip_durations
from .text import MAX_INPUT_CHARS, clean, words_of

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

#: Fleet commands are short; longer text is never parsed as one.
MAX_COMMAND_CHARS = 400


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


_FLEET_WORDS = re.compile(r"\b(?:everything|all|fleet|services|every service|the lot|whole fleet)\b")

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
    t = clean(text[:MAX_INPUT_CHARS])
    if not t or len(t) > MAX_COMMAND_CHARS:
        return None
    services = tuple(dict.fromkeys(s for s in services if isinstance(s, str)))
    pats = tuple(p for p in patterns if isinstance(p, str)) or PATTERN_IDS
    clauses = split_clauses(t)
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
    hits = list(match_verbs(c))
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
        if verb is None and len(word) >= 4 and word not in NOT_TYPOS:
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
        grade, ident, _ = find_grade(c)
        if ident is None or grade is None:
            return None
        args: dict = {"grade": grade}
        reason = find_reason(re.sub(r"\b\d{1,2}\s*(?:/\s*10|out of 10)\b", " ", original), after_id=True)
        if reason and not re.fullmatch(r"(?:a|an|as)?\s*\d{1,2}", reason):
            args["reason"] = reason
        return Command("grade", ident, args)
    ident, _ = find_id(c)
    if ident is None and re.fullmatch(r"\S+(?:\s+(?:that|this|the|it|one|fix|request|please|pls))*", c):
        ident, _ = find_id(whole)  # "approve that one, #22"
    if ident is None:
        # "approve" / "reject" without an id: show the queue so the operator can pick one
        if re.fullmatch(r"(?:approve|reject|deny|decline)(?:\s+(?:it|this|that|something|one))?", c):
            return Command("approvals", None, {})
        return None
    args = {}
    reason = find_reason(original)
    if reason:
        args["reason"] = reason
    return Command(action, ident, args)


def _status_question(action: str, rest: str, services: Sequence[str]) -> Command | None:
    if action == "status?is":  # "is the file server up", "is ui ok"
        m = re.match(r"^(?:the\s+)?(.{1,40}?)\s+" + STATE_WORDS + r"\b", rest)
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
    alias_words = {w for a in service_aliases(services) for w in a.split()}
    return [w for w in words_of(strip_durations(rest))
            if w not in NOT_SERVICE_WORDS and w not in alias_words and not w.isdigit()
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
        if SELF_TARGET.search(rest):
            return Refusal("Aurora only acts on the services it supervises, never on itself, init or a pid")
        if action in ("start", "stop", "restart") and re.search(r"(?<![\w#])\d+\b", strip_durations(rest)):
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
        target, _ = find_id(rest)
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
        reason = find_reason(original, after_id=False)
        if reason:
            args["reason"] = reason
    return Command(action, target, args)
