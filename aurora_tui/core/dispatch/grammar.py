"""The words a command opens with: verbs (and their typos), and the clause-level rules that read a
clause's opening phrase as an action."""
from __future__ import annotations

import re

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from .text import clean, words_of

__all__ = ["NOT_TYPOS", "STATE_WORDS", "VERB_WORDS", "match_verbs", "split_clauses", "suggest_verb"]


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
NOT_TYPOS = frozenset({
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
    w = "".join(words_of(clean(word)))
    if not w or len(w) > 20:
        return None
    if w in VERB_WORDS:
        return VERB_WORDS[w]
    if w in NOT_TYPOS or len(w) < 2:
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
STATE_WORDS = r"(?:up|down|ok|okay|healthy|unhealthy|running|alive|dead|green|red|fine|happy|working|broken)"


_TRY_GERUND = re.compile(
    r"^(?:please\s+)?try(?:\s+to)?\s+(restart|start|stopp?|bounc|reboot|scann?|silenc|mut|rolling back|revert)"
    r"(?:ing|e)?\b"
)
_GERUND_BASE = {"restart": "restart", "start": "start", "stop": "stop", "stopp": "stop", "bounc": "bounce",
                "reboot": "reboot", "scan": "scan", "scann": "scan", "silenc": "silence", "mut": "mute",
                "rolling back": "roll back", "revert": "revert"}


def split_clauses(t: str) -> list[str]:
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
    (r"^any\s+(?:services?|thing|one|service)\s+" + STATE_WORDS + r"\b", "status"),
    (r"^check\s+on\b", "status"),
    (r"^(?:the\s+)?(?:fleet|overall|system|global|whole|service|services)\s+(?:status|health|state|overview)$",
     "status"),
    (r"^(?:quick\s+)?(?:health|status)(?:\s+check)?\b", "status!"),
    (r"^(?:is\s+|are\s+)?(?:everything|all(?:\s+(?:the\s+)?services)?|the\s+fleet|every\s+service)\s+(?:is\s+|are\s+)?"
     + STATE_WORDS + r"$", "status"),
]
_RULES = [(re.compile(p), a) for p, a in _RULE_TABLE]


def match_verbs(c: str):
    """Every (action, rest of clause) whose verb phrase opens the clause, in priority order."""
    for pattern, action in _RULES:
        m = pattern.match(c)
        if m:
            yield action, c[m.end():].strip()
