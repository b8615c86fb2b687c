"""A DataTable whose columns give way by priority when the terminal is narrow.

Rows are keyed by entity id and updated cell by cell; only cells whose value changed are touched, so the
cursor and the operator's place never move when fresh data arrives. When the width changes enough that
a different set of columns fits, the columns are rebuilt from the values kept here, and the cursor is
put back on the same row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from rich.text import Text
from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    width: int
    # 0 is always shown; higher numbers give way first when the width runs out.
    priority: int = 0
    # A flexible column takes what is left over, up to ``max_width``.
    max_width: int | None = None
    justify: str = "left"


def fit_columns(columns: Iterable[Col], width: int, padding: int = 1) -> tuple[tuple[Col, int], ...]:
    """The columns that fit in ``width`` cells (each also takes ``2 * padding``), in their own order,
    with their widths. Columns are admitted by priority; leftover width goes to flexible columns."""
    columns = tuple(columns)
    chosen: set[str] = set()
    used = 0
    for col in sorted(columns, key=lambda c: c.priority):
        need = col.width + 2 * padding
        if col.priority == 0 or used + need <= width:
            chosen.add(col.key)
            used += need
    widths = {c.key: c.width for c in columns if c.key in chosen}
    spare = max(0, width - used)
    flexible = [c for c in columns if c.key in chosen and c.max_width and c.max_width > c.width]
    while spare > 0 and flexible:
        share = max(1, spare // len(flexible))
        for col in list(flexible):
            grow = min(share, col.max_width - widths[col.key], spare)  # type: ignore[operator]
            widths[col.key] += grow
            spare -= grow
            if widths[col.key] >= col.max_width:  # type: ignore[operator]
                flexible.remove(col)
            if spare <= 0:
                break
    return tuple((c, widths[c.key]) for c in columns if c.key in chosen)


class ResponsiveTable(DataTable):
    COLUMNS: tuple[Col, ...] = ()
    # Tables that can grow taller than the screen keep room for the scrollbar so columns never jump.
    RESERVE_SCROLLBAR = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._values: dict[str, dict[str, Any]] = {}
        self._layout: tuple[tuple[Col, int], ...] = ()

    # --- layout --------------------------------------------------------------------------------------

    def columns_for(self, width: int) -> tuple[tuple[Col, int], ...]:
        return fit_columns(self.COLUMNS, width, self.cell_padding)

    def _available(self) -> int:
        width = self.size.width
        if self.RESERVE_SCROLLBAR:
            width -= self.styles.scrollbar_size_vertical
        return max(width, 20)

    def on_resize(self, event: events.Resize) -> None:
        self.relayout()

    def on_mount(self) -> None:
        self.relayout()

    def relayout(self) -> None:
        if not self.size.width:
            return
        layout = self.columns_for(self._available())
        if layout == self._layout:
            return
        selected = self.selected_key
        self._layout = layout
        self.clear(columns=True)
        for col, width in layout:
            label = Text(col.label, justify=col.justify)  # type: ignore[arg-type]
            self.add_column(label, key=col.key, width=width)
        for key, values in self._values.items():
            self.add_row(*(values.get(col.key, "") for col, _ in layout), key=key)
        self.after_relayout()
        if selected is not None:
            self.select(selected)

    def after_relayout(self) -> None:
        """Restore any row order the table keeps (rows are re-added in insertion order)."""

    def sort_newest_first(self) -> None:
        """For tables of things with numeric ids in an "id" column: highest (newest) first, keeping the
        operator's selection where it was."""
        if self.row_count > 1:
            selected = self.selected_key
            self.sort("id", key=lambda cell: -int(str(cell)))
            if selected:
                self.select(selected)

    @property
    def shown(self) -> tuple[str, ...]:
        return tuple(col.key for col, _ in self._layout)

    def width_of(self, key: str) -> int:
        return next((w for col, w in self._layout if col.key == key), 0)

    # --- rows ----------------------------------------------------------------------------------------

    def _justified(self, values: dict[str, Any]) -> dict[str, Any]:
        for col in self.COLUMNS:
            value = values.get(col.key)
            if col.justify == "left":
                continue
            if isinstance(value, str):
                values[col.key] = Text(value, justify=col.justify)  # type: ignore[arg-type]
            elif isinstance(value, Text) and value.justify is None:
                value.justify = col.justify  # type: ignore[assignment]
        return values

    def set_row(self, key: str, values: dict[str, Any]) -> bool:
        """Add the row, or update the cells that changed. True when the row is new."""
        values = self._justified(values)
        old = self._values.get(key)
        self._values[key] = values
        if not self._layout:
            return old is None
        if old is None or key not in self.rows:
            self.add_row(*(values.get(col.key, "") for col, _ in self._layout), key=key)
            return True
        for col, _ in self._layout:
            value = values.get(col.key, "")
            if old.get(col.key) != value:
                self.update_cell(key, col.key, value)
        return False

    def drop_row(self, key: str) -> None:
        self._values.pop(key, None)
        if key in self.rows:
            self.remove_row(key)

    def clear_rows(self) -> None:
        self._values.clear()
        self.clear()

    def has_row(self, key: str) -> bool:
        return key in self._values

    def row_keys(self) -> list[str]:
        return list(self._values)

    def values(self, key: str) -> dict[str, Any] | None:
        return self._values.get(key)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:
            return None
        return key.value

    def select(self, key: str) -> None:
        if key in self.rows:
            self.move_cursor(row=self.get_row_index(key), animate=False)

    def visible_keys(self) -> list[str]:
        """Keys of the rows on screen now (row height is one line)."""
        if not self.row_count:
            return []
        first = int(self.scroll_y)
        last = min(self.row_count, first + max(1, self.size.height))
        keys = []
        for index in range(first, last):
            try:
                keys.append(self.coordinate_to_cell_key(Coordinate(index, 0)).row_key.value)  # type: ignore[arg-type]
            except Exception:
                break
        return [k for k in keys if k is not None]
