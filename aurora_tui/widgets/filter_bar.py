"""The `/` filter: a one-line input above a list. Typing filters as you go, enter keeps the filter and
returns to the list, escape clears it."""
from __future__ import annotations

from typing import cast

from textual import events
from textual.message import Message
from textual.widgets import Input

from ..console_state import ConsoleHost


class FilterBar(Input):
    DEFAULT_CSS = """
    FilterBar {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
        margin: 0;
    }
    FilterBar.-open {
        display: block;
    }
    /* Input's own :focus rule brings back its tall border, which hides a one-line input's text. */
    FilterBar:focus {
        border: none;
    }
    """

    class FilterChanged(Message):
        def __init__(self, value: str) -> None:
            super().__init__()
            self.value = value

    class Done(Message):
        """Enter: the operator is done typing; the filter stays."""

    def __init__(self, placeholder: str = "filter…", **kwargs) -> None:
        super().__init__(placeholder=placeholder, **kwargs)

    def on_mount(self) -> None:
        if not cast(ConsoleHost, self.app).blink:
            self.cursor_blink = False

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self) -> None:
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        self.remove_class("-open")
        if self.value:
            self.value = ""

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value:
            self.remove_class("-open")
        self.post_message(self.Done())

    def on_blur(self, event: events.Blur) -> None:
        if not self.value:
            self.remove_class("-open")
