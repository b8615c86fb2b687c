"""A question that needs a typed answer (a reason to reject, a grade from 1 to 10). Enter answers,
escape cancels; nothing happens until the answer is valid."""
from __future__ import annotations

from typing import Callable, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ..console_state import ConsoleHost


class PromptScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel"),
    ]

    def __init__(self, question: str, detail: str = "", *, placeholder: str = "", check: Callable[[str], str | None] | None = None, integer: bool = False) -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.placeholder = placeholder
        self.check = check
        self.integer = integer

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-dialog"):
            yield Label(self.question, id="prompt-question")
            if self.detail:
                yield Label(self.detail, id="prompt-detail")
            yield Input(placeholder=self.placeholder, type="integer" if self.integer else "text", id="prompt-input")
            yield Label("", id="prompt-problem")
            yield Label("enter answers · escape cancels", id="prompt-help")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        if not cast(ConsoleHost, self.app).blink:
            field.cursor_blink = False
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        problem = self.check(value) if self.check else None
        if problem:
            self.query_one("#prompt-problem", Label).update(problem)
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def reason_check(value: str) -> str | None:
    return None if value else "Say why: the reason is kept with the plan."


def grade_check(value: str) -> str | None:
    try:
        grade = int(value)
    except ValueError:
        return "A whole number from 1 to 10."
    return None if 1 <= grade <= 10 else "A whole number from 1 to 10."
