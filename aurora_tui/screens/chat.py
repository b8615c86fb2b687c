"""Screen 4: the conversation with the dispatcher, full screen. The same conversation is in the pane
that `c` docks beside any other screen."""
from __future__ import annotations

from typing import Iterable

from textual.binding import Binding
from textual.widget import Widget

from ..widgets.chat_input import ChatInput
from ..widgets.chat_view import ChatView
from .base import AuroraScreen


class ChatScreen(AuroraScreen):
    LABEL = "CHAT"
    # The input is not focused on arrival, so 1-5 still switch screens; enter starts typing.
    AUTO_FOCUS = "#chat-transcript"
    CHAT_PANE = False
    BINDINGS = [
        Binding("enter", "type", "Type", id="chat.type"),
    ]

    def compose_main(self) -> Iterable[Widget]:
        yield ChatView(docked=False, id="chat-main")

    def main_focus(self) -> Widget:
        return self.query_one("#chat-main", ChatView).query_one(ChatInput)

    def action_type(self) -> None:
        self.query_one("#chat-main", ChatView).focus_input()

    def action_back(self) -> None:
        # First escape leaves the input (so 1-5, q and ? work again), the second goes back.
        if isinstance(self.focused, ChatInput):
            self.set_focus(None)
            return
        self.aurora.action_previous_mode()
