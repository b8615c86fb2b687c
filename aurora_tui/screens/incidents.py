"""Screen 2: the incident feed, newest first, read from SQLite a page at a time (paged by id, so the
hundredth page is as quick as the first and 100,000 incidents open as fast as 10)."""
from __future__ import annotations

import dataclasses
from typing import Iterable

from rapidfuzz import fuzz, process
from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Static

from ..console_state import ConsoleState
from ..core.api import IncidentRow
from ..core.model import Event
from ..core.patterns import load_patterns
from ..messages import IncidentAcknowledged, IncidentsLoaded
from ..widgets.filter_bar import FilterBar
from ..widgets.incidents_table import IncidentsTable
from .base import AuroraScreen, Coalesced

PAGE = 200
# A burst of changes to more loaded incidents than this reloads the first page instead.
MAX_SINGLE_FETCHES = 40
AGE_REFRESH = 5.0


def resolve_filter(text: str, services: Iterable[str], patterns: Iterable[str]) -> tuple[str | None, str | None, str | None]:
    """``text`` → (service, pattern, problem). Words may be ``service:x`` / ``s:x``, ``pattern:y`` /
    ``p:y``, or bare: an exact name, else the one name that contains the word (or starts with it), else
    the closest fuzzy match for a typo. A word that fits several names is a problem that names them."""
    services, patterns = sorted(set(services)), sorted(set(patterns))
    service = pattern = None
    for word in text.split():
        key, sep, value = word.partition(":")
        if sep and key.lower() in ("s", "svc", "service", "p", "pattern"):
            pool, kind = (services, "service") if key.lower() in ("s", "svc", "service") else (patterns, "pattern")
            match, problem = _pick(value, pool, kind)
            if problem:
                return None, None, problem
            if kind == "service":
                service = match
            else:
                pattern = match
            continue
        svc, svc_problem = _pick(word, services, "service", fuzzy=False)
        pat, pat_problem = _pick(word, patterns, "pattern", fuzzy=False)
        if svc and not pat:
            service = svc
        elif pat and not svc:
            pattern = pat
        elif svc_problem or pat_problem:
            return None, None, svc_problem or pat_problem
        else:
            best, problem = _pick(word, services + patterns, "service or pattern")
            if problem:
                return None, None, problem
            if best in services:
                service = best
            else:
                pattern = best
    return service, pattern, None


def _pick(word: str, names: list[str], kind: str, fuzzy: bool = True) -> tuple[str | None, str | None]:
    """(the name ``word`` means, or None; a problem when it fits several or, with ``fuzzy``, none)."""
    word = word.lower()
    if not word:
        return None, None
    exact = [n for n in names if n.lower() == word]
    if exact:
        return exact[0], None
    contains = [n for n in names if word in n.lower()]
    starts = [n for n in contains if n.lower().startswith(word)]
    for found in (contains, starts):
        if len(found) == 1:
            return found[0], None
    if contains:
        shown = ", ".join((starts or contains)[:4]) + ("…" if len(starts or contains) > 4 else "")
        return None, f"{word!r} fits several: {shown}; type more"
    if not fuzzy:
        return None, None
    best = process.extractOne(word, names, scorer=fuzz.WRatio, score_cutoff=70)
    if best is None:
        return None, f"no {kind} matches {word!r}"
    return best[0], None


class IncidentsScreen(AuroraScreen):
    LABEL = "INCIDENTS"
    AUTO_FOCUS = "IncidentsTable"
    BINDINGS = [
        Binding("a", "acknowledge", "Ack", id="incidents.acknowledge"),
        Binding("o", "toggle_open", "Open/all", id="incidents.open_all"),
        Binding("slash", "filter", "Filter", id="incidents.filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.open_only = False
        self.service: str | None = None
        self.pattern: str | None = None
        self.problem: str | None = None
        self.exhausted = False
        self.error: str | None = None
        self._loading_more = False
        self._ages_at = 0.0
        self._pending: set[int] = set()
        self._new = False
        self._first = Coalesced(self, "incidents-page", self._load_first)
        self._changes = Coalesced(self, "incidents-changes", self._load_changes)

    @property
    def current_query(self) -> tuple[bool, str | None, str | None]:
        return (self.open_only, self.service, self.pattern)

    def compose_main(self) -> Iterable[Widget]:
        yield FilterBar("filter: a service or pattern (fuzzy), or service:x pattern:y", id="incidents-filter")
        yield Static(id="incidents-status")
        yield IncidentsTable(id="incidents-table")

    def main_focus(self) -> Widget:
        return self.query_one(IncidentsTable)

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(AGE_REFRESH, self._tick)
        self._reload()

    def _tick(self) -> None:
        if self.is_current:
            self._refresh_ages()

    def _refresh_ages(self) -> None:
        # Every cell update redraws the whole visible table, so ages move at most every few seconds.
        now = self.aurora.clock()
        if now - self._ages_at >= AGE_REFRESH - 0.5:
            self._ages_at = now
            self.query_one(IncidentsTable).refresh_ages()

    def resumed(self) -> None:
        if self._pending or self._new:
            self._changes.poke()
        self._refresh_ages()

    # --- loading -------------------------------------------------------------------------------------

    def _reload(self) -> None:
        self.exhausted = False
        self._pending.clear()
        self._new = False
        self._status()
        if self.problem is None:
            self._first.poke()
        else:
            self.query_one(IncidentsTable).replace([])
            self._status()

    async def _load_first(self) -> None:
        query = self.current_query
        try:
            rows = await self.engine.list_incidents(open_only=query[0], service=query[1], pattern=query[2], limit=PAGE)
        except Exception as exc:
            self.post_message(IncidentsLoaded(query, [], replace=True, append=False, error=str(exc)))
        else:
            self.post_message(IncidentsLoaded(query, rows, replace=True, append=False))

    async def _load_more(self, query: tuple, before_id: int) -> None:
        try:
            rows = await self.engine.list_incidents(open_only=query[0], service=query[1], pattern=query[2], limit=PAGE, before_id=before_id)
        except Exception as exc:
            self.post_message(IncidentsLoaded(query, [], replace=False, append=True, error=str(exc)))
        else:
            self.post_message(IncidentsLoaded(query, rows, replace=False, append=True))

    async def _load_changes(self) -> None:
        query = self.current_query
        pending, self._pending = self._pending, set()
        new, self._new = self._new, False
        rows: list[IncidentRow] = []
        try:
            if new or len(pending) > MAX_SINGLE_FETCHES:
                rows += await self.engine.list_incidents(open_only=query[0], service=query[1], pattern=query[2], limit=50)
            seen = {r.id for r in rows}
            for incident_id in sorted(pending)[:MAX_SINGLE_FETCHES]:
                if incident_id in seen:
                    continue
                one = await self.engine.list_incidents(limit=1, before_id=incident_id + 1)
                rows += [r for r in one if r.id == incident_id]
        except Exception as exc:
            self.post_message(IncidentsLoaded(query, [], replace=False, append=False, error=str(exc)))
        else:
            self.post_message(IncidentsLoaded(query, rows, replace=False, append=False))

    def on_incidents_loaded(self, message: IncidentsLoaded) -> None:
        message.stop()
        if message.append:
            self._loading_more = False
        if message.query != self.current_query:
            return  # the filter changed while this was on its way
        self.error = message.error
        table = self.query_one(IncidentsTable)
        if message.error is None:
            if message.replace:
                table.replace(message.rows)
                self.exhausted = len(message.rows) < PAGE
            elif message.append:
                table.merge(message.rows, append=True)
                self.exhausted = len(message.rows) < PAGE
            else:
                top = max((int(k) for k in table.incidents), default=0)
                fresh = []
                for row in message.rows:
                    key = str(row.id)
                    if self.open_only and not row.is_open:
                        if table.has_row(key):
                            table.drop(key)
                        continue
                    # Loaded rows update in place and newer ones go on top; older ones come with their page.
                    if table.has_row(key) or row.id > top:
                        fresh.append(row)
                table.merge(fresh)
        self._status()

    def on_incidents_table_near_end(self, message: IncidentsTable.NearEnd) -> None:
        message.stop()
        table = self.query_one(IncidentsTable)
        # Asked while rows were still being added? Only a table that is really near its end pages in more.
        if self.exhausted or self._loading_more or self.problem or not table.near_end():
            return
        oldest = table.oldest_id()
        if oldest is None:
            return
        self._loading_more = True
        self.run_worker(self._load_more(self.current_query, oldest), group="incidents-more", exit_on_error=False)

    def _status(self) -> None:
        table = self.query_one(IncidentsTable)
        text = Text(" ")
        text.append("open only" if self.open_only else "all incidents", style="bold")
        text.append(" · newest first", style="dim")
        if self.service:
            text.append(f" · service={self.service}", style="cyan")
        if self.pattern:
            text.append(f" · pattern={self.pattern}", style="cyan")
        if self.problem:
            text.append(f" · {self.problem}", style="bold red")
        elif self.error:
            text.append(f" · cannot read incidents: {self.error}", style="bold red")
        else:
            count = len(table.incidents)
            text.append(f" · {count} loaded" + ("" if self.exhausted else ", more below"), style="dim")
            if not count and self.exhausted:
                text.append(" · nothing here: the fleet is quiet" if not (self.service or self.pattern or self.open_only) else " · nothing matches", style="green")
        self.query_one("#incidents-status", Static).update(text)

    # --- live updates --------------------------------------------------------------------------------

    def engine_event(self, event: Event) -> None:
        if not event.kind.startswith("incident_"):
            return
        incident_id = event.data.get("incident")
        if event.kind == "incident_opened":
            self._new = True
        elif isinstance(incident_id, int) and self.query_one(IncidentsTable).has_row(str(incident_id)):
            self._pending.add(incident_id)
        else:
            return
        if self.is_current:
            self._changes.poke()

    def state_changed(self, state: ConsoleState) -> None:
        pass

    # --- the operator --------------------------------------------------------------------------------

    def filter_changed(self, text: str) -> None:
        services = [s.name for s in self.aurora.snapshot.services] if self.aurora.snapshot else []
        services += ["(host)"]
        service, pattern, problem = resolve_filter(text, services, load_patterns())
        if (service, pattern, problem) == (self.service, self.pattern, self.problem):
            return
        self.service, self.pattern, self.problem = service, pattern, problem
        self._reload()

    def action_toggle_open(self) -> None:
        self.open_only = not self.open_only
        self._reload()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            from .incident_detail import IncidentDetailScreen

            self.app.push_screen(IncidentDetailScreen(int(event.row_key.value)))

    def action_acknowledge(self) -> None:
        row = self.query_one(IncidentsTable).selected_incident()
        if row is None:
            return
        if not row.is_open:
            self.notify(f"Incident #{row.id} is resolved already.", severity="warning")
            return
        if row.status == "acknowledged":
            self.notify(f"Incident #{row.id} is acknowledged already.")
            return
        self.run_worker(acknowledge(self, row.id), group=f"ack-{row.id}", exit_on_error=False)

    def on_incident_acknowledged(self, message: IncidentAcknowledged) -> None:
        message.stop()
        if message.error:
            self.notify(f"Could not acknowledge #{message.incident_id}: {message.error}", severity="error")
            return
        if message.incident is not None:
            # The table keeps list rows: the timeline that came with the incident is not its business.
            self.query_one(IncidentsTable).merge([dataclasses.replace(message.incident, timeline=[])])
        self.notify(f"Incident #{message.incident_id} acknowledged.")


async def acknowledge(node: AuroraScreen, incident_id: int) -> None:
    """Worker: acknowledge and post the answer to ``node``."""
    try:
        incident = await node.engine.acknowledge(incident_id)
    except Exception as exc:
        node.post_message(IncidentAcknowledged(incident_id, None, str(exc)))
    else:
        node.post_message(IncidentAcknowledged(incident_id, incident, None))
