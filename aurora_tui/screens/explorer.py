"""Screen 5: the explorer. A list of catalogue entries on the left (today: the 25 issue patterns),
fuzzy-filtered with `/`, and the highlighted entry in full on the right."""
from __future__ import annotations

from typing import Iterable

from rapidfuzz import fuzz, process, utils
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from .base import AuroraScreen
from .explorer_sections import SECTIONS, Entry

FUZZY_CUTOFF = 55


def filter_entries(entries: list[Entry], text: str) -> list[Entry]:
    """Entries matching ``text``, best first; everything in catalogue order when ``text`` is empty."""
    text = text.strip()
    if not text:
        return entries
    by_label = process.extract(text, [e.label + " " + e.id for e in entries], scorer=fuzz.WRatio, processor=utils.default_process, limit=None, score_cutoff=FUZZY_CUTOFF)
    by_body = process.extract(text, [e.search for e in entries], scorer=fuzz.partial_ratio, processor=utils.default_process, limit=None, score_cutoff=80)
    scores: dict[int, float] = {}
    for _, score, index in by_label:
        scores[index] = max(scores.get(index, 0), score + 10)
    for _, score, index in by_body:
        scores[index] = max(scores.get(index, 0), score)
    return [entries[i] for i in sorted(scores, key=lambda i: (-scores[i], i))]


class ExplorerScreen(AuroraScreen):
    LABEL = "EXPLORER"
    AUTO_FOCUS = "#explorer-list"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="explorer.filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[Entry] = [e for section in SECTIONS for e in section.entries()]
        self.sections = {s.key: s for s in SECTIONS}
        self.shown: list[Entry] = list(self.entries)

    def compose_main(self) -> Iterable[Widget]:
        with Horizontal(id="explorer-body"):
            with Vertical(id="explorer-left"):
                from ..widgets.filter_bar import FilterBar

                yield FilterBar("fuzzy filter…", id="explorer-filter")
                yield OptionList(id="explorer-list")
            with VerticalScroll(id="explorer-detail"):
                yield Static(id="explorer-view")

    def main_focus(self) -> Widget:
        return self.query_one("#explorer-list")

    def on_mount(self) -> None:
        super().on_mount()
        self._fill()
        self.query_one("#explorer-list").focus()

    def _fill(self) -> None:
        options = self.query_one("#explorer-list", OptionList)
        items: list[Option | None] = []
        last_section = None
        for entry in self.shown:
            if entry.section != last_section and len(SECTIONS) > 1:
                items.append(Option(Text(self.sections[entry.section].title, style="bold underline"), disabled=True))
            last_section = entry.section
            items.append(Option(Text(entry.label, no_wrap=True, overflow="ellipsis"), id=f"{entry.section}:{entry.id}"))
        options.set_options(items)
        if self.shown:
            options.highlighted = next(i for i, o in enumerate(items) if o is not None and not o.disabled)
        self._show(self.shown[0] if self.shown else None)

    def _show(self, entry: Entry | None) -> None:
        view = self.query_one("#explorer-view", Static)
        if entry is None:
            view.update(Text("Nothing matches the filter.", style="dim"))
            return
        view.update(self.sections[entry.section].render(entry.id))
        self.query_one("#explorer-detail").scroll_home(animate=False)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option.id:
            section, _, entry_id = event.option.id.partition(":")
            self._show(next((e for e in self.shown if e.section == section and e.id == entry_id), None))

    def filter_changed(self, text: str) -> None:
        self.shown = filter_entries(self.entries, text)
        self._fill()
