"""Screen 5: the explorer. The dispatcher's whole catalogue in one place: the 27 issue patterns, the 66
execution programs, the 188 intelligence tiers and the module registry, one tab each (`k` moves to the
next), plus a tab of the modules the dispatcher has made active.

`/` searches all of them at once (fuzzy, :meth:`~aurora_tui.core.catalogue.Catalogue.search`): typing is
debounced and the search runs in a thread worker, so the keys never wait for it. The highlighted entry is
shown in full on the right, with how often the dispatcher used it; `enter` asks the dispatcher about it
and the answer appears in the chat pane (docked if it was hidden).

The catalogue is packaged, read-only data (read once, in a thread, by the app). What the dispatcher did
with it (usage counts, active modules) comes from the engine with each answer (:class:`ConsoleState`).
"""
from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from ..console_state import ConsoleState
from ..core.catalogue import Catalogue
from ..messages import ExplorerSearched
from ..widgets.filter_bar import FilterBar
from .base import AuroraScreen
from .explorer_sections import KINDS, DispatchStats, Entry, Section, sections

#: Seconds of quiet typing before a search starts.
DEBOUNCE = 0.12
#: Hits a search shows at most.
SEARCH_LIMIT = 50
#: The tabs, in order: one per kind, then the active modules.
TABS = (*KINDS, "active")
TAB_NAMES = {  # full, medium, short
    "pattern": ("Patterns", "Patterns", "Pat"),
    "program": ("Programs", "Progs", "Prog"),
    "tier": ("Tiers", "Tiers", "Tier"),
    "module": ("Modules", "Mods", "Mod"),
    "active": ("Active", "Active", "Act"),
}
COUNT_NOUNS = {"pattern": "issue patterns", "program": "programs", "tier": "tiers", "module": "modules"}
#: How a search hit says what it is.
KIND_TAGS = {"pattern": "pat", "program": "prog", "tier": "tier", "module": "mod"}
KIND_STYLES = {"pattern": "yellow", "program": "magenta", "tier": "blue", "module": "cyan"}
#: Lines the active-modules panel uses for the list itself (below its title).
ACTIVE_LINES = 3


class ExplorerList(OptionList):
    """The entries. `enter` asks the dispatcher about the highlighted one."""

    BINDINGS = [
        Binding("enter", "select", "Ask", id="explorer.list.ask"),
    ]


class KindTabs(Static):
    """One line: the tabs, the current one highlighted; names shorten to fit the column."""

    DEFAULT_CSS = """
    KindTabs { height: 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.current: str | None = "pattern"

    def show(self, current: str | None) -> None:
        self.current = current
        self.refresh()

    def render(self) -> Text:
        width = max(self.size.width, 1)
        for form in range(3):
            names = [TAB_NAMES[t][form] for t in TABS]
            if 1 + sum(len(n) + 1 for n in names) <= width:
                break
        text = Text(" ", no_wrap=True, overflow="ellipsis")
        for i, (tab, name) in enumerate(zip(TABS, names)):
            if i:
                text.append(" ")
            text.append(name, style="bold reverse" if tab == self.current else "dim")
        return text


class ActiveModules(Static):
    """A few lines: how many modules the dispatcher has active, and which (the Active tab lists them all)."""

    DEFAULT_CSS = """
    ActiveModules { height: auto; padding: 0 1; border-top: hkey $primary; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.active: tuple[str, ...] | None = None

    def show(self, active: tuple[str, ...] | None) -> None:
        if active != self.active:
            self.active = active
            self.refresh(layout=True)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        active = self.active
        if active is None:
            text.append("Active modules", style="bold")
            text.append("\nnone known yet", style="dim")
            return text
        text.append(f"Active modules ({len(active)})", style="bold")
        if not active:
            text.append("\nnone yet", style="dim")
            return text
        for line in fit_ids(list(active), max(self.content_size.width, 10), ACTIVE_LINES):
            text.append("\n")
            text.append(line, style="green")
        return text


def fit_ids(ids: list[str], width: int, max_lines: int) -> list[str]:
    """``ids`` comma-separated in at most ``max_lines`` lines of ``width``; "… +n more" says what did not fit."""
    lines: list[str] = []
    current = ""
    i = 0
    while i < len(ids) and len(lines) < max_lines:
        piece = ids[i] if not current else ", " + ids[i]
        if len(current) + len(piece) + 1 <= width:
            current += piece
            i += 1
        elif not current:
            current = ids[i][:width]
            i += 1
        else:
            lines.append(current + ",")
            current = ""
    if current and len(lines) < max_lines:
        lines.append(current)
    left = len(ids) - i
    if left and lines:
        last = lines[-1].rstrip(",")
        while len(last) + len(f" … +{left} more") > width and ", " in last:
            last = last.rsplit(", ", 1)[0]
            left += 1
        if len(last) + len(f" … +{left} more") > width:
            last, left = "", left + 1
        lines[-1] = (f"{last} … +{left} more" if last else f"… +{left} more")[:width]
    return lines


class ExplorerScreen(AuroraScreen):
    DEFAULT_CSS = """
    ExplorerScreen #explorer-status { height: 1; padding: 0 1; }
    """
    LABEL = "EXPLORER"
    AUTO_FOCUS = "#explorer-list"
    BINDINGS = [
        Binding("slash", "filter", "Search", id="explorer.filter"),
        Binding("k", "kind", "Kind", id="explorer.kind"),
        Binding("enter", "ask", "Ask", id="explorer.ask"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.catalogue: Catalogue | None = None
        self.sections: dict[str, Section] = {}
        self.by_kind: dict[str, list[Entry]] = {}
        self.index: dict[tuple[str, str], Entry] = {}
        self.tab = "pattern"
        self.query_text = ""  # the search whose hits are shown ("" when browsing a tab)
        self.wanted = ""  # the search asked for (its hits may still be on their way)
        self.shown: list[Entry] = []
        self.current: Entry | None = None
        self.stats = DispatchStats()
        self._seen: tuple[dict[str, int] | None, list[str] | None] = (None, None)
        self._debounce: Timer | None = None
        catalogue = self.aurora.catalogue  # read by the app in a thread; None until then
        if catalogue is not None:
            self._use(catalogue)

    # --- building ------------------------------------------------------------------------------------

    def compose_main(self) -> Iterable[Widget]:
        with Horizontal(id="explorer-body"):
            with Vertical(id="explorer-left"):
                yield KindTabs(id="explorer-kinds")
                yield Static(id="explorer-status")
                yield FilterBar("search everything…", id="explorer-filter")
                yield ExplorerList(id="explorer-list")
                yield ActiveModules(id="explorer-active")
            with VerticalScroll(id="explorer-detail"):
                yield Static(id="explorer-view")

    def main_focus(self) -> Widget:
        return self.query_one("#explorer-list")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("ask", "kind"):
            # Not while typing in the chat pane: its keys are its own.
            pane = self.query("#chat-pane")
            focused = self.focused
            if pane and focused is not None and pane.first() in focused.ancestors_with_self:
                return False
        return super().check_action(action, parameters)

    def _use(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.sections = sections(catalogue)
        self.by_kind = {kind: section.entries() for kind, section in self.sections.items()}
        self.index = {(e.section, e.id): e for entries in self.by_kind.values() for e in entries}
        self.shown = self._tab_entries()

    def on_mount(self) -> None:
        super().on_mount()
        if self.catalogue is None:
            self.query_one("#explorer-view", Static).update(Text("Reading the catalogue…", style="dim"))
            self.aurora.load_catalogue()
        else:
            self._fill()
        self.query_one("#explorer-list").focus()

    def state_changed(self, state: ConsoleState) -> None:
        if self.catalogue is None:
            catalogue = self.aurora.catalogue
            if catalogue is None:
                return
            self._use(catalogue)
            self._fill()
            if self.wanted:  # typed while the catalogue was on its way
                self._start_search()
        seen = (state.usage, state.active_modules)
        if seen[0] is self._seen[0] and seen[1] is self._seen[1]:
            return
        self._seen = seen
        self.stats = DispatchStats.of(state.usage, state.active_modules)
        if self.tab == "active" and not self.query_text:
            self.shown = self._tab_entries()
            self._fill(keep=self.current)
        else:
            self._show(self.current, home=False)
            self.query_one(ActiveModules).show(self.stats.active)

    # --- what is listed ------------------------------------------------------------------------------

    def _tab_entries(self) -> list[Entry]:
        if self.tab == "active":
            found = (self.index.get(("module", m)) for m in (self.stats.active or ()))
            return [e for e in found if e is not None]
        return list(self.by_kind.get(self.tab, []))

    def _status(self) -> Text:
        if self.query_text:
            text = Text(f"“{self.query_text}”", style="bold", no_wrap=True, overflow="ellipsis")
            hits = len(self.shown)
            text.append(f" · {hits} hit{'s' if hits != 1 else ''}" if hits else " · nothing matches", style="dim")
            return text
        if self.tab == "active":
            if self.stats.active is None:
                return Text("active modules: not known yet", style="dim")
            return Text(f"{len(self.shown)} active module{'s' if len(self.shown) != 1 else ''}", style="dim")
        return Text(f"{len(self.shown)} {COUNT_NOUNS[self.tab]}", style="dim")

    def _fill(self, keep: Entry | None = None) -> None:
        options = self.query_one("#explorer-list", ExplorerList)
        tagged = bool(self.query_text)  # search hits mix the kinds: each says what it is
        items: list[Option] = []
        at = 0
        for i, entry in enumerate(self.shown):
            label = self.sections[entry.section].label(entry, pad=not tagged)
            if tagged:
                label = Text.assemble((f"{KIND_TAGS[entry.section]:<4} ", KIND_STYLES[entry.section]), label,
                                      no_wrap=True, overflow="ellipsis")
            items.append(Option(label, id=f"{entry.section}:{entry.id}"))
            if keep is not None and entry == keep:
                at = i
        options.set_options(items)
        self.query_one(KindTabs).show(None if self.query_text else self.tab)
        self.query_one("#explorer-status", Static).update(self._status())
        self.query_one(ActiveModules).show(self.stats.active)
        if items:
            options.highlighted = at
            self._show(self.shown[at], home=self.shown[at] != keep)
        else:
            self._show(None)

    def _show(self, entry: Entry | None, home: bool = True) -> None:
        self.current = entry
        view = self.query_one("#explorer-view", Static)
        if self.catalogue is None:
            return
        if entry is None:
            if self.query_text:
                view.update(Text("Nothing matches the search. Esc clears it.", style="dim"))
            elif self.tab == "active":
                view.update(Text("No module is active yet. Each message the dispatcher routes activates the "
                                 "modules of the program that answers it (see a program's Modules).", style="dim"))
            else:
                view.update(Text("Nothing here.", style="dim"))
            return
        try:
            view.update(self.sections[entry.section].render(entry.id, self.stats))
        except Exception as exc:  # a broken catalogue entry is shown, never raised into the UI
            view.update(Text(f"Cannot show {entry.section} {entry.id}: {exc}", style="red"))
        if home:
            self.query_one("#explorer-detail").scroll_home(animate=False)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option.id:
            section, _, entry_id = event.option.id.partition(":")
            entry = self.index.get((section, entry_id))
            if entry is not None and entry != self.current:
                self._show(entry)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_ask()

    # --- tabs ----------------------------------------------------------------------------------------

    def action_kind(self) -> None:
        """The next tab. A search in progress ends: the tab's own list comes back."""
        if self.catalogue is None:
            return
        searching = bool(self.query_text or self.wanted)
        self._cancel_search()
        if not searching:
            self.tab = TABS[(TABS.index(self.tab) + 1) % len(TABS)]
        self.shown = self._tab_entries()
        self._fill()
        bar = self.query_one(FilterBar)
        if bar.value or bar.is_open:
            bar.close()

    # --- search --------------------------------------------------------------------------------------

    def _cancel_search(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        self.wanted = ""
        self.query_text = ""

    def filter_changed(self, text: str) -> None:
        text = " ".join(text.split())
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        self.wanted = text
        if not text:
            if self.query_text:
                self.query_text = ""
                self.shown = self._tab_entries()
                self._fill()
            return
        if self.catalogue is None:
            return
        self._debounce = self.set_timer(DEBOUNCE, self._start_search)

    def _start_search(self) -> None:
        self._debounce = None
        text = self.wanted
        if not text or self.catalogue is None:
            return
        catalogue = self.catalogue
        self.run_worker(lambda: self._search(catalogue, text), thread=True, group="explorer-search",
                        exclusive=True, exit_on_error=False)

    def _search(self, catalogue: Catalogue, text: str) -> None:
        """Thread worker: the fuzzy search itself (a few ms over ~1,000 entries)."""
        try:
            hits = [(h.kind, h.id) for h in catalogue.search(text, limit=SEARCH_LIMIT)]
        except Exception as exc:
            self.post_message(ExplorerSearched(text, [], f"{type(exc).__name__}: {exc}"))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(ExplorerSearched(text, hits))

    def on_explorer_searched(self, message: ExplorerSearched) -> None:
        message.stop()
        if message.query != self.wanted:
            return  # typing went on: a newer search is coming
        if message.error:
            self.notify(f"The search failed: {message.error}", severity="error")
        self.query_text = message.query
        self.shown = [self.index[h] for h in message.hits if h in self.index]  # best first
        self._fill()

    # --- asking the dispatcher -----------------------------------------------------------------------

    def action_ask(self) -> None:
        """Ask the dispatcher about the highlighted entry; the answer shows in the chat pane."""
        entry = self.current
        if entry is None or self.catalogue is None:
            return
        app = self.aurora
        if not app.chat_available():
            self.notify("The dispatcher is not available: this engine has no ask().", severity="warning")
            return
        question = self.sections[entry.section].question(entry.id)
        if not app.chat_docked:
            app.chat_docked = True
            self.sync_chat(focus=False)
        app.ask(question, remember=False)
