"""The conversation with the dispatcher: a transcript and an input line. The same widget is the chat
screen and the pane that `c` docks beside any other screen; the conversation itself belongs to the
app, so every view shows the same one."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Markdown, Static

from .chat_input import ChatInput

if TYPE_CHECKING:
    from ..app import ChatTurn

# Turns kept on screen; older ones scroll away for good.
MAX_TURNS = 100

UNAVAILABLE = (
    "The dispatcher is not available in this build: the engine has no `ask`, so there is nobody to "
    "answer. Nothing you type here would be read."
)


def score_of(reply: dict[str, Any]) -> int | None:
    """The 1-10 score: the reply's own, or derived from its 0-1 confidence the way the dispatcher does."""
    score = reply.get("score")
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return int(score)
    confidence = reply.get("confidence")
    if isinstance(confidence, (int, float)) and not isinstance(confidence, bool) and 0 <= confidence <= 1:
        return int(round(1 + 9 * confidence))
    return None


def caption(reply: dict[str, Any]) -> Text:
    """type · confidence 9/10 (95%) · program #62 Automatic Repair"""
    kind = reply.get("type") or "?"
    confidence = reply.get("confidence")
    program = reply.get("program")
    text = Text(no_wrap=False)
    text.append(f"{kind}".replace("_", " "), style="bold cyan")
    score = score_of(reply)
    if score is not None or isinstance(confidence, (int, float)):
        text.append(" · confidence ", style="dim")
        if score is not None:
            text.append(f"{score}/10", style="bold")
        if isinstance(confidence, (int, float)) and 0 <= confidence <= 1:
            text.append(f" ({confidence:.0%})" if score is not None else f"{confidence:.0%}", style="dim")
    if isinstance(program, dict):
        text.append(f" · program #{program.get('id')} {program.get('name')}", style="magenta")
    else:
        text.append(" · no program", style="dim")
    return text


def confirmation(turn: "ChatTurn") -> Text | None:
    """The line under a reply that asked for a yes: waiting, or what the operator answered."""
    confirm = (turn.reply or {}).get("confirm")
    if not isinstance(confirm, dict):
        return None
    question = str(confirm.get("question") or "Go ahead?")
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

    def __init__(self, turn: "ChatTurn") -> None:
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
            yield Markdown(str(turn.reply.get("reply") or "*(empty reply)*"))
            asked = confirmation(turn)
            if asked is not None:
                yield Static(asked, classes="chat-confirm")

    def update_turn(self, turn: "ChatTurn") -> None:
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
        app: Any = self.app
        transcript = self.query_one("#chat-transcript", VerticalScroll)
        transcript.mount_all([ChatTurnView(t) for t in app.chat_turns[-MAX_TURNS:]])
        transcript.scroll_end(animate=False)
        app.chat_signal.subscribe(self, self.turn_changed)
        app.state_signal.subscribe(self, lambda _state: self.sync_availability())
        self.sync_availability()

    def sync_availability(self) -> None:
        available = bool(getattr(self.app, "chat_available")())
        self.query_one("#chat-unavailable").display = not available
        field = self.query_one(ChatInput)
        field.disabled = not available

    def focus_input(self) -> None:
        field = self.query_one(ChatInput)
        if not field.disabled:
            field.focus()

    def turn_changed(self, turn: "ChatTurn") -> None:
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
        getattr(self.app, "ask")(text)
