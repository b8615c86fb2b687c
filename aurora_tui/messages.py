"""Every message the console's workers post. Workers post these; only handlers touch widgets."""
from __future__ import annotations

from typing import Any

from textual.message import Message

from .core.model import Event, FleetSnapshot


class FleetUpdated(Message):
    def __init__(self, snapshot: FleetSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class EngineEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class ActionFinished(Message):
    """An operator action (restart, stop, start) came back from the engine."""

    def __init__(self, action: str, service: str, result: dict[str, Any] | None, error: str | None) -> None:
        super().__init__()
        self.action = action
        self.service = service
        self.result = result
        self.error = error
