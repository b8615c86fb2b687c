"""Pilot tests of the chat: the real console on a real engine supervising the real demo fleet.

A reply that wants a yes is asked in a ConfirmScreen ("No" focused): yes carries it out through the
engine (engine.confirm with the reply's token), no tells the dispatcher, which drops it."""
from __future__ import annotations

import os
import signal
import pytest
from textual.widget import Widget

from aurora_tui.app import AuroraApp, confirm_detail
from aurora_tui.console_state import ChatTurn
from aurora_tui.core.api import Reply
from aurora_tui.core.engine import Engine
from aurora_tui.screens.chat import ChatScreen
from aurora_tui.screens.confirm import ConfirmScreen
from aurora_tui.widgets.chat_input import ChatInput
from aurora_tui.widgets.chat_view import ChatTurnView, ChatView, caption

from .fleet import demo_fleet
from .helpers import async_wait_until
from .live import running


@pytest.fixture
async def engine(tmp_path):
    async with running(demo_fleet(tmp_path, interval=0.5), healthy=False) as engine:
        yield engine


async def fleet_healthy(engine: Engine) -> None:
    async def healthy() -> bool:
        snap = await engine.snapshot()
        return snap.scans >= 1 and all(s.healthy for s in snap.services)

    await async_wait_until(healthy, timeout=30, what="the demo fleet healthy")


def rendered(widget: Widget) -> str:
    """The text a widget shows, from its own and its descendants' content (Markdown blocks included)."""
    parts = []
    for node in [widget, *widget.query("*")]:
        content = getattr(node, "_content", None)
        if content is None:
            content = getattr(node, "content", None) if hasattr(node, "content") else None
        if content is not None:
            parts.append(getattr(content, "plain", str(content)))
    return "\n".join(parts)


def answered(app: AuroraApp, question: str) -> ChatTurn | None:
    turn = next((t for t in reversed(app.chat_turns) if t.question == question), None)
    return turn if turn is not None and not turn.pending else None


def find_view(app: AuroraApp, turn: ChatTurn) -> ChatTurnView | None:
    """The turn's view on the topmost screen that has it (a question may be asked over it)."""
    for screen in reversed(app.screen_stack):
        views = screen.query(f"#turn-{turn.n}")
        if views:
            return views.first(ChatTurnView)
    return None


def turn_view(app: AuroraApp, turn: ChatTurn) -> ChatTurnView:
    view = find_view(app, turn)
    assert view is not None, f"turn {turn.n} is not on screen"
    return view


async def shown(app: AuroraApp, turn: ChatTurn, *needles: str) -> str:
    """Wait until the turn's rendered reply contains every needle; return the rendered text."""
    def text() -> str | None:
        view = find_view(app, turn)
        if view is None:
            return None
        got = rendered(view)
        return got if all(n in got for n in needles) else None

    return await async_wait_until(text, timeout=60, what=f"{needles} rendered in the reply")


async def send(pilot, text: str) -> None:
    field = pilot.app.screen.focused
    assert isinstance(field, ChatInput), field
    await pilot.press(*text, "enter")


async def restarts(engine: Engine, service: str) -> int:
    status = (await engine.snapshot()).service(service)
    assert status is not None
    return status.restarts


async def test_restart_in_the_chat_pane_asks_first_and_then_restarts_for_real(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await fleet_healthy(engine)
        await pilot.press("c")
        await async_wait_until(lambda: isinstance(app.screen.focused, ChatInput), what="the pane's input focused")
        pane = app.screen.query_one("#chat-pane", ChatView)

        # No: the dispatcher is told, drops the request, and nothing happens.
        before_pid = engine.fleet.runners["learning_api"].pid
        await send(pilot, "stop learning_api")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        assert "Stop learning_api?" in str(app.screen.query_one("#confirm-question").content)
        assert "SIGTERM" in str(app.screen.query_one("#confirm-detail").content)
        await pilot.press("escape")
        turn = await async_wait_until(lambda: answered(app, "no: Stop learning_api?"), what="the dispatcher's answer to no")
        assert turn.reply is not None and turn.reply.reply.startswith("Cancelled: Stop learning_api?")
        await shown(app, turn, "Cancelled", "Nothing was changed")
        asked = answered(app, "stop learning_api")
        assert asked is not None and asked.answer == "no"
        assert "you said no" in rendered(turn_view(app, asked))
        assert engine.fleet.runners["learning_api"].pid == before_pid

        # Yes: a real restart, done by the engine through the reply's token.
        old_pid = engine.fleet.runners["bridge_api"].pid
        old_restarts = await restarts(engine, "bridge_api")
        await send(pilot, "restart brige api")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        assert "Restart bridge_api?" in str(app.screen.query_one("#confirm-question").content)
        asked = answered(app, "restart brige api")
        assert asked is not None and asked.reply is not None and asked.reply.confirm is not None and asked.reply.confirm.token and asked.answer is None
        await shown(app, asked, "Reply yes", "waiting for your answer")
        assert engine.fleet.runners["bridge_api"].pid == old_pid  # nothing happens before the yes
        await pilot.press("y")
        done = await async_wait_until(lambda: answered(app, "yes: Restart bridge_api?"), timeout=30, what="the restart's reply")
        assert done.error is None and done.reply is not None and "restarted" in done.reply.reply, done
        new_pid = engine.fleet.runners["bridge_api"].pid
        assert new_pid not in (None, old_pid)
        assert await restarts(engine, "bridge_api") == old_restarts + 1
        text = await shown(app, done, "restarted", str(new_pid))
        assert "program #62 Automatic Repair" in text  # the caption: type, confidence, program
        assert asked.answer == "yes" and "you said yes" in rendered(turn_view(app, asked))
        assert pane.has_focus_within  # back where the operator was typing
        assert isinstance(app.screen.focused, ChatInput)


async def test_why_after_a_real_crash_names_the_crash_and_its_evidence(engine: Engine):
    app = AuroraApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await fleet_healthy(engine)
        old = engine.fleet.runners["bridge_api"].pid
        os.kill(old, signal.SIGKILL)

        async def resolved() -> bool:
            rows = await engine.list_incidents(service="bridge_api", pattern="crashed", limit=1)
            return bool(rows and rows[0].resolved_at)

        await async_wait_until(resolved, timeout=30, what="the crash incident resolved")
        await pilot.press("4")
        await async_wait_until(lambda: isinstance(app.screen, ChatScreen))
        await pilot.press("enter")  # into the input
        await send(pilot, "why bridge_api")
        turn = await async_wait_until(lambda: answered(app, "why bridge_api"), timeout=60, what="the answer")
        assert turn.reply is not None and turn.reply.action == "why" and turn.reply.confirm is None
        text = await shown(app, turn, "Process crashed", "SIGKILL", "Evidence")
        assert "killed by SIGKILL" in text and f"pid {old}" in text
        assert "debugging · confidence" in text and "program #61 Error Detection" in text
        assert f"{turn.reply.score}/10 ({turn.reply.confidence:.0%})" in text
        assert not isinstance(app.screen, ConfirmScreen)  # nothing to confirm


def test_caption_shows_type_score_percentage_and_program():
    reply = Reply(reply="", type="debugging", confidence=0.95, score=10, program={"id": 62, "name": "Automatic Repair"})
    assert caption(reply).plain == "debugging · confidence 10/10 (95%) · program #62 Automatic Repair"
    assert caption(Reply(reply="", type="general_chat", confidence=0.5, score=6)).plain == \
        "general chat · confidence 6/10 (50%) · no program"


def test_confirm_detail_is_the_plain_rest_of_the_question_line():
    reply = ("I read `restrat` as **restart**.\n**Restart bridge\\_api?** It is stopped (SIGTERM, then SIGKILL).\n\n"
             "Reply **yes** to go ahead or **no** to cancel (this expires in 120s).")
    assert confirm_detail(reply, "Restart bridge_api?") == "It is stopped (SIGTERM, then SIGKILL)."
    assert confirm_detail("nothing to see", "Stop x?") == "The dispatcher asks before it changes anything."


async def test_an_attached_console_confirms_through_the_control_socket(engine: Engine):
    from aurora_tui.core.remote import RemoteEngine

    await fleet_healthy(engine)
    remote = RemoteEngine(engine.db_path)
    await remote.open()
    try:
        assert remote.supports("confirm")
        asked = await remote.ask("restart the file server")
        assert asked.confirm is not None and asked.confirm.question == "Restart file_server?"
        old = engine.fleet.runners["file_server"].pid
        done = await remote.confirm(asked.confirm.token)
        assert "restarted" in done.reply and engine.fleet.runners["file_server"].pid not in (None, old)
        assert done.usage["program:62"] == 1 and "aurora.restart" in done.active_modules
    finally:
        await remote.close()
