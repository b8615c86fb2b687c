"""Keyword-scoring conversation detector — the seed system's method, kept only as a benchmark baseline.

This reproduces how the original ("seed") Aurora-X dispatcher picked a conversation type: every type has
a keyword list; each keyword found in the lower-cased message scores 5 points; the per-type total is
multiplied by a fixed per-type weight; fixed bonuses are added (+20 to ``question_answering`` when the
message contains a question mark, +15 to ``code_generation`` for a code fence or the words
"function"/"class"); the confidence is ``min(100, score)``, so it saturates at 100 and says nothing about
how likely the answer is to be right.  The highest score wins; ties and messages without any hit fall
back to ``general_chat``.

Nothing in Aurora routes with this.  It exists so the benchmark and the tests can show, on the frozen
test split, how much the learned :class:`~aurora_tui.core.dispatch.detector.ConversationDetector` improves
on it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .detector import CONVERSATION_TYPES

__all__ = ["KEYWORDS", "TYPE_WEIGHTS", "KeywordDetection", "KeywordBaseline"]

KEYWORDS: dict[str, tuple[str, ...]] = {
    "code_generation": ("write", "create", "generate", "code", "script", "implement", "function", "build",
                        "snippet", "program", "make a", "class"),
    "debugging": ("error", "bug", "fix", "broken", "crash", "exception", "traceback", "fail", "failing",
                  "debug", "issue", "not working", "problem", "wrong", "restart", "down"),
    "explanation": ("explain", "what is", "how does", "why", "understand", "meaning", "concept",
                    "describe", "tell me about"),
    "architecture": ("architecture", "design", "system", "scalable", "microservice", "structure",
                     "component", "pattern", "infrastructure", "layer"),
    "optimization": ("optimize", "optimise", "performance", "faster", "speed", "slow", "efficient",
                     "memory", "cache", "improve", "reduce"),
    "testing": ("test", "tests", "testing", "unit test", "pytest", "coverage", "mock", "qa", "assert",
                "integration"),
    "general_chat": ("hello", "hi", "hey", "thanks", "thank you", "how are you", "good morning", "bye"),
    "question_answering": ("what", "when", "where", "who", "which", "how many", "how much", "is there",
                           "can i", "does"),
    "analysis": ("analyze", "analyse", "analysis", "review", "compare", "evaluate", "assess", "report",
                 "status", "metrics", "logs", "incidents", "health", "scan"),
    "refactoring": ("refactor", "restructure", "clean up", "cleanup", "rename", "extract", "simplify",
                    "reorganize", "reorganise", "modularize"),
}

TYPE_WEIGHTS: dict[str, float] = {
    "code_generation": 1.2, "debugging": 1.3, "explanation": 1.0, "architecture": 1.1, "optimization": 1.1,
    "testing": 1.2, "general_chat": 0.8, "question_answering": 0.9, "analysis": 1.0, "refactoring": 1.2,
}

_PATTERNS = {t: [re.compile(r"\b" + re.escape(k) + r"\b") for k in kws] for t, kws in KEYWORDS.items()}


@dataclass(frozen=True)
class KeywordDetection:
    """``confidence`` is the seed's 0–100 number (``min(100, score)``), not a probability."""

    type: str
    confidence: int
    scores: dict[str, float] = field(default_factory=dict, hash=False)


class KeywordBaseline:
    """The seed system's keyword scorer (benchmark baseline only)."""

    def detect(self, text: str) -> KeywordDetection:
        msg = text.lower() if isinstance(text, str) else ""
        scores: dict[str, float] = {}
        for typ in CONVERSATION_TYPES:
            hits = sum(1 for rx in _PATTERNS[typ] if rx.search(msg))
            scores[typ] = hits * 5 * TYPE_WEIGHTS[typ]
        if "?" in msg:
            scores["question_answering"] += 20
        if "```" in msg or re.search(r"\b(?:function|class)\b", msg):
            scores["code_generation"] += 15
        best = max(scores.values())
        winners = [t for t, v in scores.items() if v == best]
        if best <= 0 or len(winners) > 1:
            return KeywordDetection("general_chat", int(min(100, best)), scores)
        return KeywordDetection(winners[0], int(min(100, best)), scores)
