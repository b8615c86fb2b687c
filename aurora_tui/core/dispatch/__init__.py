"""The dispatcher's brains: conversation-type detection and fleet-command parsing (no Textual here).

* :mod:`.detector` — :class:`ConversationDetector` (naive Bayes, stdlib only) and the 10 types;
* :mod:`.commands` — :func:`parse_command` for plain-words fleet commands (parses, never executes), built on
  :mod:`.text`, :mod:`.danger`, :mod:`.names`, :mod:`.numbers` and :mod:`.grammar`;
* :mod:`.router` — which program, tiers and modules answer a message;
* :mod:`.dispatcher` — :class:`~.dispatcher.Dispatcher`, answering from the engine (:mod:`.replies`) or the
  catalogue's guidance by conversation type (:mod:`.guidance`);
* :mod:`.baseline` — the seed system's keyword scorer, kept only as the benchmark's baseline.
"""
from __future__ import annotations

from .commands import (
    ACTIONS,
    FLEET_CHANGING,
    PATTERN_IDS,
    Command,
    Refusal,
    parse_command,
    resolve_service,
    suggest_verb,
)
from .detector import CONVERSATION_TYPES, ConversationDetector, Detection

__all__ = [
    "ACTIONS",
    "CONVERSATION_TYPES",
    "FLEET_CHANGING",
    "PATTERN_IDS",
    "Command",
    "ConversationDetector",
    "Detection",
    "Refusal",
    "parse_command",
    "resolve_service",
    "suggest_verb",
]
