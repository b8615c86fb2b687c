"""The dispatcher's brains: conversation-type detection and fleet-command parsing (no Textual here)."""
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

__all__ = [
    "ACTIONS",
    "FLEET_CHANGING",
    "PATTERN_IDS",
    "Command",
    "Refusal",
    "parse_command",
    "resolve_service",
    "suggest_verb",
]
