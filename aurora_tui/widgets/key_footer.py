"""The footer of key bindings, rebuilt only when the keys it shows actually change.

Textual's Footer recomposes every time anything asks for a bindings refresh (a focus change, a screen
switch, a stack change), often several times for one key press. Rebuilding a dozen key widgets costs
more than the rest of a frame, so this one compares what it would show with what it shows and
recomposes at most once per refresh, and only when something differs."""
from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


def signature(screen: Screen) -> tuple[Any, ...]:
    return tuple(
        (key, active.binding.action, active.binding.description, active.enabled)
        for key, active in screen.active_bindings.items()
        if active.binding.show or key == screen.app.COMMAND_PALETTE_BINDING
    )


class KeyFooter(Footer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(compact=True, **kwargs)
        self._shown: tuple[Any, ...] | None = None
        self._scheduled = False

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._scheduled:
            self._scheduled = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._scheduled = False
        if not self.is_attached:
            return
        wanted = signature(self.screen)
        if wanted == self._shown:
            return
        self._shown = wanted
        await self.recompose()
