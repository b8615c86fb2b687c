"""One line at the top of every screen: where you are, fleet health, open incidents, pending approvals,
the auto-heal rate, the age of the last scan, and which engine the console is talking to.

It fits what it can: long labels when the line has room, short ones at 80 columns, and the least
urgent facts are dropped last of all when even those do not fit."""
from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual import events
from textual.widgets import Static

from ..console_state import ConsoleHost, ConsoleState
from ..core.format import duration_h
from ..core.model import StorageProblem

SEP = " · "


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def segments(state: ConsoleState, now: float) -> list[tuple[str, str, str, int]]:
    """(long, short, style, priority) for each fact; lower priority numbers are dropped last."""
    out: list[tuple[str, str, str, int]] = []
    snap = state.snapshot
    if snap is None:
        out.append(("connecting to the engine…", "connecting…", "dim", 0))
    else:
        total, healthy = len(snap.services), snap.healthy_count
        style = "bold green" if healthy == total else ("bold yellow" if healthy else "bold red")
        out.append((f"● {healthy}/{total} healthy", f"● {healthy}/{total} ok", style, 0))
        if snap.storage:
            out.append(storage_segment(snap.storage))
    if state.open_incidents is None:
        out.append(("incidents –", "inc –", "", 1))
    else:
        n = state.open_incidents
        out.append((_plural(n, "open incident"), f"{n} inc", "bold yellow" if n else "", 1))
    if state.pending_plans is None:
        out.append(("approvals –", "appr –", "", 2))
    else:
        n = state.pending_plans
        out.append((f"{n} pending approval{'s' if n != 1 else ''}", f"{n} appr", "bold magenta" if n else "", 2))
    rate = state.heal_rate
    out.append((f"auto-heal {'–' if rate is None else f'{rate:.0%}'}", f"heal {'–' if rate is None else f'{rate:.0%}'}", "", 4))
    if snap is not None:
        if snap.last_scan_at is None:
            out.append(("no scan yet", "no scan", "dim", 3))
        else:
            age = duration_h(max(0.0, now - snap.last_scan_at))
            late = now - snap.last_scan_at > 3 * snap.interval + 5
            out.append((f"scan {age} ago (every {snap.interval:g}s)", f"scan {age}", "bold red" if late else "", 3))
    pid = snap.engine_pid if snap else None
    if not state.connected:
        out.append(("engine unreachable, retrying", "DISCONNECTED", "bold red", 0))
    elif state.engine_mode == "attached":
        out.append((f"attached to engine pid {pid}", "attached", "cyan", 1))
    else:
        out.append((f"own engine pid {pid}", "own", "", 1))
    return out


def storage_segment(problems: list[StorageProblem]) -> tuple[str, str, str, int]:
    """The red badge for what Aurora cannot write (shown only while something fails)."""
    first = problems[0]
    more = f" (+{len(problems) - 1})" if len(problems) > 1 else ""
    if first.cause in ("deleted", "replaced"):
        return (f"database {first.path} {first.cause}{more}", f"DB {first.cause}", "bold red", 0)
    return (f"storage: {first.path} unwritable{more}", "storage!", "bold red", 0)


MODES = (("services", "1", "Services"), ("incidents", "2", "Incidents"), ("approvals", "3", "Approvals"), ("chat", "4", "Chat"), ("explorer", "5", "Explorer"))


def tabs(label: str, mode: str | None, names: bool) -> Text:
    """The five screens, the current one (with what this screen shows) highlighted."""
    text = Text(no_wrap=True)
    for index, (key, number, name) in enumerate(MODES):
        if key == mode:
            text.append(f" {number} {label} ", style="bold reverse")
        else:
            if index == 0:
                text.append(" ")
            text.append(f"{number} {name}" if names else number, style="dim")
        if index < len(MODES) - 1 and MODES[index + 1][0] != mode:
            text.append(" ")
    if mode is None:
        text.append(f" {label} ", style="bold reverse")
    return text


def status_line(state: ConsoleState, now: float, room: int) -> Text:
    parts = segments(state, now)
    # Long labels where there is room; the least urgent facts go short first, then go altogether.
    forms = [0] * len(parts)
    kept = list(range(len(parts)))

    def length() -> int:
        return len(SEP.join(parts[i][forms[i]] for i in kept))

    for i in sorted(range(len(parts)), key=lambda i: (-parts[i][3], -i)):
        if length() <= room:
            break
        forms[i] = 1
    while length() > room and any(parts[i][3] for i in kept):
        kept.remove(max(kept, key=lambda i: (parts[i][3], i)))
    line = Text(no_wrap=True, overflow="ellipsis")
    for n, i in enumerate(kept):
        if n:
            line.append(SEP, style="dim")
        line.append(parts[i][forms[i]], style=parts[i][2])
    return line


def header_line(label: str, state: ConsoleState, now: float, width: int, mode: str | None = None) -> Text:
    short = tabs(label, mode, names=False)
    status = status_line(state, now, width - len(short) - 1)
    long = tabs(label, mode, names=True)
    full = status_line(state, now, 10_000)
    if mode is not None and len(long) + 2 + len(full) <= width:
        chosen, status = long, full
    else:
        chosen = short
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append_text(chosen)
    line.append(" ")
    line.append_text(status)
    return line


class FleetHeader(Static):
    DEFAULT_CSS = """
    FleetHeader {
        height: 1;
        width: 100%;
        background: $boost;
    }
    """

    def __init__(self, label: str, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.label = label
        self.mode = mode
        self._line: Text | None = None

    def on_mount(self) -> None:
        self.redraw()

    def on_resize(self, event: events.Resize) -> None:
        self.redraw()

    def set_label(self, label: str) -> None:
        self.label = label
        self.redraw()

    def redraw(self) -> None:
        app = cast(ConsoleHost, self.app)
        line = header_line(self.label, app.state, app.clock(), self.size.width or 80, self.mode)
        if line != self._line:
            self._line = line
            self.update(line)
