"""The conversation with the dispatcher: a transcript and an input line. The same widget is the chat
screen and the pane that `c` docks beside any other screen; the conversation itself belongs to the
app, so every view shows the same one."""
from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Markdown, Static

from ..console_state import ChatTurn, ConsoleHost
from ..core.api import Reply
from .chat_input import ChatInput

# Turns kept on screen; older ones scroll away for good.
MAX_TURNS = 100

UNAVAILABLE = (
    "The dispatcher is not available in this build: the engine has no `ask`, so there is nobody to "
    "answer. Nothing you type here would be read."
)


def caption(reply: Reply) -> Text:
    """type · confidence 9/10 (95%) · program #62 Automatic Repair"""
    confidence = reply.confidence
    program = reply.program
    text = Text(no_wrap=False)
    text.append((reply.type or "?").replace("_", " "), style="bold cyan")
    text.append(" · confidence ", style="dim")
    text.append(f"{reply.score}/10", style="bold")
    if 0 <= confidence <= 1:
        text.append(f" ({confidence:.0%})", style="dim")
    if program is not None:
        text.append(f" · program #{program.get('id')} {program.get('name')}", style="magenta")
    else:
        text.append(" · no program", style="dim")
    return text


def confirmation(turn: ChatTurn) -> Text | None:
    """The line under a reply that asked for a yes: waiting, or what the operator answered."""
    confirm = turn.reply.confirm if turn.reply is not None else None
    if confirm is None:
        return None
    question = confirm.question or "Go ahead?"
    text = Text(no_wrap=False)
    if turn.answer is None:
        text.append("⚠ ", style="bold")
        text.append(question, style="bold")
        text.append(" waiting for your answer (y / n)", style="italic")
    elif turn.answer == "yes":
        text.append("✓ ", style="bold")
        text.append(f"{question} you said yes", style="dim")
    else:
        text.append("✗ ", style="bold")
        text.append(f"{question} you said no", style="dim")
    return text


class ChatTurnView(Vertical):
    DEFAULT_CSS = """
    ChatTurnView { height: auto; margin: 0 0 1 0; }
    ChatTurnView > .chat-question { color: $accent; text-style: bold; }
    ChatTurnView > .chat-caption { color: $text-muted; }
    ChatTurnView > .chat-error { color: $error; }
    ChatTurnView > .chat-confirm { color: $text-warning; }
    ChatTurnView > Markdown { margin: 0; padding: 0; }
    """

    def __init__(self, turn: ChatTurn) -> None:
        super().__init__(id=f"turn-{turn.n}")
        self.turn = turn

    def compose(self) -> ComposeResult:
        turn = self.turn
        yield Static(Text(f"› {turn.question}"), classes="chat-question")
        if turn.pending:
            yield Static(Text("… waiting for the dispatcher", style="italic"), classes="chat-caption")
        elif turn.error:
            yield Static(Text(turn.error), classes="chat-error")
        elif turn.reply is not None:
            yield Static(caption(turn.reply), classes="chat-caption")
            yield Markdown(turn.reply.reply or "*(empty reply)*")
            asked = confirmation(turn)
            if asked is not None:
                yield Static(asked, classes="chat-confirm")

    def update_turn(self, turn: ChatTurn) -> None:
        self.turn = turn
        self.refresh(recompose=True)


class ChatView(Vertical):
    def __init__(self, docked: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.docked = docked

    def compose(self) -> ComposeResult:
        title = "Chat · c hides · esc leaves" if self.docked else "Chat with the dispatcher"
        yield Static(Text(title, style="bold"), classes="chat-title")
        yield VerticalScroll(id="chat-transcript")
        yield Static(Text(UNAVAILABLE), id="chat-unavailable")
        yield ChatInput(id="chat-input")

    def on_mount(self) -> None:
        app = cast(ConsoleHost, self.app)
        transcript = self.query_one("#chat-transcript", VerticalScroll)
        transcript.mount_all([ChatTurnView(t) for t in app.chat_turns[-MAX_TURNS:]])
        transcript.scroll_end(animate=False)
        app.chat_signal.subscribe(self, self.turn_changed)
        app.state_signal.subscribe(self, lambda _state: self.sync_availability())
        self.sync_availability()

    def sync_availability(self) -> None:
        available = cast(ConsoleHost, self.app).chat_available()
        self.query_one("#chat-unavailable").display = not available
        field = self.query_one(ChatInput)
        field.disabled = not available

    def focus_input(self) -> None:
        field = self.query_one(ChatInput)
        if not field.disabled:
            field.focus()

    def turn_changed(self, turn: ChatTurn) -> None:
        transcript = self.query_one("#chat-transcript", VerticalScroll)
        existing = transcript.query(f"#turn-{turn.n}")
        if existing:
            existing.first(ChatTurnView).update_turn(turn)
        else:
            transcript.mount(ChatTurnView(turn))
            views = list(transcript.query(ChatTurnView))
            for old in views[:-MAX_TURNS]:
                old.remove()
        transcript.scroll_end(animate=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        field = self.query_one(ChatInput)
        field.value = ""
        field.reset_history()
        cast(ConsoleHost, self.app).ask(text)
