"""Routing: which program, tiers and modules answer a message. Pure and fast; nothing is executed.

``route(text, services)`` returns a :class:`Route`.  The rules, in order:

1. **Fleet commands first.**  :func:`~.commands.parse_command` reads the message against the live
   service names (fuzzy: ``brige api`` -> ``bridge_api``).  A :class:`~.commands.Refusal` (a shell line,
   a pid, PID 1 / init / Aurora itself) routes nowhere: ``program`` is ``None`` and ``refusal`` says why.
   A :class:`~.commands.Command` routes to a *live* program by its action:

   ==========================================  =====================================================
   action                                      program
   ==========================================  =====================================================
   status, scan, incidents, approvals          Analysis 43-48 by keyword hits; none: 47 Metrics
                                               (stored samples and incident history are what they read)
   logs                                        Analysis 43-48 by keyword hits; none: 43 Code Analysis
                                               (its job is reading the error lines of a log tail)
   restart, start, stop                        62 Automatic Repair
   approve, reject, grade                      62 Automatic Repair (decisions on its fix plans)
   rollback                                    66 Rollback
   why                                         61 Error Detection
   silence                                     65 Health Monitoring
   explain                                     40 Patterns (an issue pattern); otherwise 37 Concepts
   help                                        none: the dispatcher answers it itself
   ==========================================  =====================================================

   The conversation type of a command follows its action (the labelling rule of ``messages.jsonl``:
   status, logs, incidents, approvals, scan, grade -> analysis; explain -> explanation; help ->
   question_answering; the rest -> debugging), and the confidence is the larger of the detector's
   probability for that type and :data:`COMMAND_CONFIDENCE` (:data:`CORRECTED_CONFIDENCE` when the verb
   was a typo the parser corrected).

2. **Everything else** is classified by the :class:`~.detector.ConversationDetector`.  The candidates are
   the programs whose ``conversation_types`` contain the detected type.  Each scores its keyword hits in
   the message (whole words, an optional plural ``s``/``es``; a keyword of *n* words counts
   ``1 + 0.5 (n - 1)``, so specific phrases beat single words).  The best score wins; a tie goes to the
   lowest id.  When no keyword hits at all, the type's default program answers
   (:data:`DEFAULT_PROGRAM`); when the message also names a fleet service, a debugging message goes to
   61 Error Detection and a question to 47 Metrics instead (:data:`FLEET_DEFAULT_PROGRAM`).

Tiers: the chosen program's own tiers plus any tier whose keywords the message names ("restart" pulls in
5 Error Recovery, "blue green" 121 Deployment Strategies), ranked by keyword weight; ties keep the
program's own tiers first, in catalogue order; at most 3.  The fleet's service names are taken out of
the text first, so ``bridge_api`` is not the keyword "api".  Modules are the program's, resolved by the
registry (dependencies first).  Keywords are indexed once per process by their first word and the
detector is cached, so a route takes well under a millisecond on typical input.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Container, Sequence

from rapidfuzz import fuzz

from ..catalogue import Catalogue, Program, Tier
from .commands import ACTIONS, Command, Refusal, parse_command
from .grammar import VERB_WORDS, suggest_verb
from .names import PATTERN_IDS, resolve_service
from .detector import CONVERSATION_TYPES, MAX_CHARS, ConversationDetector

__all__ = [
    "ACTION_PROGRAM",
    "COMMAND_CONFIDENCE",
    "CORRECTED_CONFIDENCE",
    "DEFAULT_PROGRAM",
    "FLEET_DEFAULT_PROGRAM",
    "TYPE_OF_ACTION",
    "Route",
    "route",
]

#: The conversation type a fleet command has (the labelling rule of ``messages.jsonl``).
TYPE_OF_ACTION: dict[str, str] = {
    "status": "analysis", "logs": "analysis", "incidents": "analysis", "approvals": "analysis",
    "scan": "analysis", "grade": "analysis",
    "start": "debugging", "stop": "debugging", "restart": "debugging", "why": "debugging",
    "rollback": "debugging", "silence": "debugging", "approve": "debugging", "reject": "debugging",
    "explain": "explanation", "help": "question_answering",
}
assert set(TYPE_OF_ACTION) == set(ACTIONS)

#: Fixed program per fleet action (``None``: chosen among :data:`ANALYSIS_PROGRAMS` by keywords).
ACTION_PROGRAM: dict[str, int | None] = {
    "status": None, "scan": None, "incidents": None, "approvals": None, "logs": None,
    "restart": 62, "start": 62, "stop": 62, "approve": 62, "reject": 62, "grade": 62,
    "rollback": 66, "why": 61, "silence": 65, "explain": 40, "help": None,
}
ANALYSIS_PROGRAMS = (43, 44, 45, 46, 47, 48)
#: The analysis program an analysis command falls back to when no keyword of 43-48 is in the message.
ANALYSIS_DEFAULT = {"logs": 43}
ANALYSIS_FALLBACK = 47

#: The program a conversation type goes to when no candidate's keyword is in the message.
DEFAULT_PROGRAM: dict[str, int] = {
    "code_generation": 1,      # Python: Aurora and its tooling are Python
    "debugging": 8,            # Runtime Errors
    "explanation": 37,         # Concepts
    "architecture": 13,        # System Design
    "optimization": 25,        # Performance
    "testing": 19,             # Unit Tests
    "general_chat": 65,        # Health Monitoring: small talk gets the fleet's health in one line
    "question_answering": 37,  # Concepts
    "analysis": 47,            # Metrics
    "refactoring": 29,         # Refactoring
}
#: ... and when the message names a fleet service (the live program can answer from the fleet itself).
FLEET_DEFAULT_PROGRAM: dict[str, int] = {
    "debugging": 61,           # Error Detection
    "question_answering": 47,  # Metrics ("what port is learning api on")
}
assert set(DEFAULT_PROGRAM) == set(CONVERSATION_TYPES)

#: Confidence of a parsed fleet command.  ``parse_command`` scored 0.95+ action accuracy on the frozen
#: test split (see ``messages.README.md``) and 1.0 on the 287 train messages it parsed as commands.
COMMAND_CONFIDENCE = 0.95
#: ... and of one whose verb was a typo the parser corrected ("restrat the bridge").
CORRECTED_CONFIDENCE = 0.8
MAX_TIERS = 3


@dataclass(frozen=True)
class Route:
    """Where a message goes.  A description only: routing never acts on the fleet."""

    type: str
    confidence: float
    program: dict[str, Any] | None = None
    tiers: list[dict[str, Any]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    action: str | None = None
    target: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    refusal: str | None = None
    did_you_mean: list[str] = field(default_factory=list)
    why: str = ""
    #: The type the detector alone chose (a command takes its type from its action instead).
    detected: str = ""
    keywords: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        """The confidence as the 1-10 figure shown to the operator."""
        return int(round(1 + 9 * self.confidence))

    @property
    def changes_fleet(self) -> bool:
        return self.action in ("start", "stop", "restart", "rollback", "approve", "reject", "grade", "silence")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["score"] = self.score
        return data


# --------------------------------------------------------------------------------------------------
# keyword matching (indexed once)

_APOSTROPHES = re.compile(r"['\u2019\u2018`\u00b4]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_WORD = re.compile(r"[a-z0-9]+")


def _fold(text: str) -> str:
    """NFKC, lower case, apostrophes dropped, control characters to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()
    text = _APOSTROPHES.sub("", text)
    return " ".join(_CONTROL.sub(" ", text).split())


def _words(folded: str) -> list[str]:
    """Alphanumeric runs: ``blue-green``, ``blue green`` and ``blue_green`` are the same two words."""
    return _WORD.findall(folded)


class _KeywordIndex:
    """Keywords of many owners (programs or tiers), indexed by their first word.

    A keyword hits when its words appear consecutively in the message; the last word may carry a
    plural ``s``/``es``.  A keyword of *n* words weighs ``1 + 0.5 (n - 1)``.  Matching is a dict lookup
    per message word, so scanning every tier's keywords costs microseconds.
    """

    def __init__(self, entries: Sequence[tuple[int, Sequence[str]]]) -> None:
        self.first: dict[str, list[tuple[tuple[str, ...], str, int, float]]] = {}
        for owner, keywords in entries:
            for kw in keywords:
                words = tuple(_words(_fold(kw)))
                if words:
                    self.first.setdefault(words[0], []).append((words, kw, owner, 1.0 + 0.5 * (len(words) - 1)))

    @staticmethod
    def _same(word: str, kw: str, last: bool) -> bool:
        return word == kw or (last and (word == kw + "s" or word == kw + "es"))

    def hits(self, words: Sequence[str], owners: Container[int] | None = None) -> dict[int, tuple[float, list[str]]]:
        found: dict[int, tuple[float, list[str]]] = {}
        seen: set[tuple[int, str]] = set()
        for i, word in enumerate(words):
            keys = {word}
            if word.endswith("es"):
                keys.add(word[:-2])
            if word.endswith("s"):
                keys.add(word[:-1])
            for key in keys:
                for kw_words, kw, owner, weight in self.first.get(key, ()):
                    if owners is not None and owner not in owners:
                        continue
                    n = len(kw_words)
                    if i + n > len(words) or (owner, kw) in seen:
                        continue
                    if all(self._same(words[i + j], kw_words[j], j == n - 1) for j in range(n)):
                        seen.add((owner, kw))
                        score, kws = found.get(owner, (0.0, []))
                        found[owner] = (score + weight, kws + [kw])
        return found


@dataclass(frozen=True)
class _Index:
    catalogue: Catalogue
    programs: dict[int, Program]
    tiers: dict[int, Tier]
    program_keywords: _KeywordIndex
    tier_keywords: _KeywordIndex
    by_type: dict[str, tuple[int, ...]]


@functools.cache
def _index() -> _Index:
    cat = Catalogue.load()
    by_type = {t: tuple(p.id for p in cat.programs if t in p.conversation_types) for t in CONVERSATION_TYPES}
    return _Index(
        catalogue=cat,
        programs={p.id: p for p in cat.programs},
        tiers={t.id: t for t in cat.tiers},
        program_keywords=_KeywordIndex([(p.id, p.keywords) for p in cat.programs]),
        tier_keywords=_KeywordIndex([(t.id, t.keywords) for t in cat.tiers]),
        by_type=by_type,
    )


def warm() -> None:
    """Build the detector and the keyword index now (the first route would otherwise pay for it)."""
    _index()
    ConversationDetector.default()


# --------------------------------------------------------------------------------------------------
# routing


def _best_program(candidates: Sequence[int], words: Sequence[str], idx: _Index) -> tuple[int | None, list[str]]:
    """The candidate with the most keyword weight (ties: lowest id), or ``None`` when nothing hits."""
    found = idx.program_keywords.hits(words, set(candidates))
    if not found:
        return None, []
    pid = min(found, key=lambda p: (-found[p][0], p))
    return pid, found[pid][1]


def _tiers(program: Program, words: Sequence[str], idx: _Index) -> list[Tier]:
    """The program's tiers and any tier whose keywords the message names, by keyword weight; on a tie the
    program's own tiers first, in their catalogue order, then by id.  At most :data:`MAX_TIERS`."""
    found = idx.tier_keywords.hits(words)
    own = {tid: i for i, tid in enumerate(program.tiers)}
    ranked = []
    for tid in set(own) | set(found):
        tier = idx.tiers.get(tid)
        if tier is not None:
            ranked.append((-found.get(tid, (0.0, []))[0], own.get(tid, len(own)), tid, tier))
    ranked.sort(key=lambda r: r[:3])
    return [r[3] for r in ranked[:MAX_TIERS]]


def _strip_services(folded: str, services: Sequence[str]) -> str:
    """The message without the fleet's service names, so ``bridge_api`` does not read as the keyword "api"."""
    for name in services:
        parts = _words(name.lower()) if isinstance(name, str) else []
        if parts:
            folded = re.sub(r"(?<![a-z0-9])" + r"[\s_\-]*".join(map(re.escape, parts)) + r"(?![a-z0-9])", " ", folded)
    return folded


def _without_service_words(words: Sequence[str], services: Sequence[str]) -> list[str]:
    """A command's words minus anything that is, or is a typo of, a word of a service name
    (``brige api`` -> neither word), so its tiers follow the verb, not the name."""
    names = {w for s in services if isinstance(s, str) for w in _words(s.lower())}
    if not names:
        return list(words)
    return [w for w in words if w not in names
            and not (len(w) > 3 and any(fuzz.ratio(w, n) >= 75 for n in names if len(n) > 3))]


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _quote(words: Sequence[str], n: int = 3) -> str:
    shown = [f"'{w}'" for w in words[:n]]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


_COMMAND_WHY = {
    "status": "asks for the fleet's status",
    "scan": "asks for a scan of the fleet now",
    "incidents": "asks for the incident history",
    "approvals": "asks for the fix plans waiting for a decision",
    "logs": "asks for a service's log tail",
    "restart": "asks to restart {t}",
    "start": "asks to start {t}",
    "stop": "asks to stop {t}",
    "approve": "asks to approve plan #{t}",
    "reject": "asks to reject plan #{t}",
    "grade": "grades plan #{t}",
    "rollback": "asks to roll back {t}",
    "why": "asks why {t} failed",
    "silence": "asks to silence {t}",
    "explain": "asks what the issue pattern {t} means",
    "help": "asks how to use the dispatcher",
}


def _command_why(cmd: Command, program: Program | None, hits: list[str]) -> str:
    target = cmd.target
    if target is None:
        target = "the fleet" if cmd.args.get("scope") == "all" else (cmd.args.get("unresolved") or "a service")
    if cmd.action == "status" and target == "a service":
        target = "the fleet"
    what = _COMMAND_WHY.get(cmd.action, "is a fleet command").format(t=_clip(str(target), 40))
    if cmd.action in ("status", "scan") and cmd.target:
        what += f" ({cmd.target})"
    if cmd.args.get("corrected_from"):
        what += f" ('{_clip(str(cmd.args['corrected_from']), 20)}' read as {cmd.action})"
    if program is None:
        return f"because the message {what}; the dispatcher answers that itself."
    if hits:
        return f"because the message {what} and mentions {_quote(hits)}."
    return f"because the message {what}."


def _did_you_mean_verb(text: str) -> list[str]:
    """A misspelt verb opening a message the parser could not read ("restrat", "stauts pls")."""
    words = re.findall(r"[a-z]+", _fold(text)[:80])
    if not words:
        return []
    first = words[0]
    if first in VERB_WORDS or len(first) < 4:
        return []
    verb = suggest_verb(first)
    return [verb] if verb and verb != first else []


def route(text: str, services: Sequence[str] = (), patterns: Sequence[str] = ()) -> Route:
    """Route one operator message.  Never raises for a string; never executes anything."""
    if not isinstance(text, str):
        text = ""
    text = text[: MAX_CHARS * 4]
    idx = _index()
    detection = ConversationDetector.default().detect(text)
    parsed = parse_command(text, services, tuple(patterns) or PATTERN_IDS)

    if isinstance(parsed, Refusal):
        return Route(
            type=detection.type, confidence=detection.confidence, refusal=parsed.reason,
            why=f"because {parsed.reason}; chat text is never executed, so no program runs it.",
            detected=detection.type,
        )

    words = _words(_strip_services(_fold(text), services))

    if isinstance(parsed, Command):
        action = parsed.action
        typ = TYPE_OF_ACTION.get(action, detection.type)
        floor = CORRECTED_CONFIDENCE if parsed.args.get("corrected_from") else COMMAND_CONFIDENCE
        confidence = max(detection.scores.get(typ, 0.0), floor)
        fixed = ACTION_PROGRAM.get(action)
        hits: list[str] = []
        program: Program | None = None
        if fixed is not None:
            program = idx.programs.get(fixed)
            if action == "explain" and parsed.target not in (tuple(patterns) or PATTERN_IDS):
                program = idx.programs.get(37)
        elif action != "help":
            pid, hits = _best_program(ANALYSIS_PROGRAMS, words, idx)
            program = idx.programs.get(pid or ANALYSIS_DEFAULT.get(action, ANALYSIS_FALLBACK))
        did_you_mean = [str(s) for s in parsed.args.get("did_you_mean", ())]
        if not did_you_mean and parsed.args.get("corrected_from"):
            did_you_mean = [action]
        return _finish(
            typ, confidence, program, _without_service_words(words, services), idx, action=action, target=parsed.target, args=dict(parsed.args),
            did_you_mean=did_you_mean, why=_command_why(parsed, program, hits), detected=detection.type,
            keywords=hits,
        )

    typ = detection.type
    candidates = idx.by_type.get(typ, ())
    pid, hits = _best_program(candidates, words, idx)
    label = typ.replace("_", " ")
    article = "an" if label[:1] in "aeiou" else "a"
    conf = f"{detection.confidence:.0%}"
    if pid is not None:
        program = idx.programs[pid]
        why = (f"because it reads as {article} {label} message ({conf}) and mentions {_quote(hits)}, "
               f"keyword{'s' if len(hits) > 1 else ''} of {program.name}.")
    else:
        default = DEFAULT_PROGRAM.get(typ, 37)
        named = None
        if typ in FLEET_DEFAULT_PROGRAM and services:
            named, _, _ = resolve_service(text[:MAX_CHARS], services)
            if named:
                default = FLEET_DEFAULT_PROGRAM[typ]
        program = idx.programs[default]
        if named:
            why = (f"because it reads as {article} {label} message ({conf}) about {named}, a fleet service, "
                   f"and no program keyword matched, so {program.name} answers from the live fleet.")
        else:
            why = (f"because it reads as {article} {label} message ({conf}) and no program keyword matched, "
                   f"so the default {label} program, {program.name}, answers.")
    return _finish(typ, detection.confidence, program, words, idx, why=why, detected=detection.type,
                   did_you_mean=_did_you_mean_verb(text), keywords=hits)


def _finish(typ: str, confidence: float, program: Program | None, words: Sequence[str], idx: _Index, *,
            action: str | None = None, target: str | None = None, args: dict | None = None,
            did_you_mean: list[str] | None = None, why: str = "", detected: str = "",
            keywords: list[str] | None = None) -> Route:
    tiers: list[dict[str, Any]] = []
    modules: list[str] = []
    ref = None
    if program is not None:
        ref = program.ref()
        tiers = [t.ref() for t in _tiers(program, words, idx)]
        modules = list(idx.catalogue.program_modules(program.id))
    return Route(
        type=typ, confidence=float(confidence), program=ref, tiers=tiers, modules=modules, action=action,
        target=target, args=args or {}, did_you_mean=did_you_mean or [], why=why, detected=detected,
        keywords=keywords or [],
    )
