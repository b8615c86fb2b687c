"""The chat's input line, with the operator's earlier messages on up and down."""
from __future__ import annotations

from typing import Any, cast

from textual.binding import Binding
from textual.widgets import Input

from ..console_state import ConsoleHost


class ChatInput(Input):
    BINDINGS = [
        Binding("up", "history(-1)", "Earlier", id="chat.history.earlier"),
        Binding("down", "history(1)", "Later", id="chat.history.later"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(placeholder="ask the dispatcher…  (enter sends)", **kwargs)
        self._index: int | None = None
        self._draft = ""

    def on_mount(self) -> None:
        if not cast(ConsoleHost, self.app).blink:
            self.cursor_blink = False

    def _history(self) -> list[str]:
        return list(cast(ConsoleHost, self.app).chat_inputs)

    def action_history(self, step: int) -> None:
        history = self._history()
        if not history:
            return
        if self._index is None:
            if step > 0:
                return
            self._draft = self.value
            index = len(history) - 1
        else:
            index = self._index + step
        if index >= len(history):
            self._index = None
            self.value = self._draft
        else:
            self._index = max(0, index)
            self.value = history[self._index]
        self.cursor_position = len(self.value)

    def reset_history(self) -> None:
        self._index = None
        self._draft = ""
