"""The queue table: one line per queue or family, updated cell by cell.

A poll changes a few numbers on most lines; rebuilding the table, or asking
it to re-measure its columns, costs time that grows with the square of the
line count. So every column has a fixed width, lines are keyed, and a new
view only adds, removes or updates what differs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from qwatch.app.cells import COLUMNS, NameText, signature
from qwatch.tracker import Row

REBUILD_SHARE = 0.5
"""Removing more than this share of lines clears and refills instead: each
removal renumbers every line after it."""


@dataclass(slots=True)
class Entry:
    """One line as the table should show it."""

    key: str
    target: str
    row: Row
    order: tuple[Any, ...]
    sig: tuple[Any, ...]
    """The raw values the cells are made from: equal means nothing to draw."""
    build: Callable[[], tuple[Text, ...]]
    """Makes the cells; called only when :attr:`sig` changed."""
    family: str | None = None
    """The family pattern of a family line or of a member listed under it."""
    level: int = 0
    """0 for a queue or family, 1 for a member listed under its family."""


class QueueTable(DataTable[Text]):
    """The main table; :meth:`show` brings it to a list of entries."""

    def __init__(self, **kwargs: Any) -> None:
        self._batch = False
        self._dirty = False
        # The row's own colour shows through the cursor: the selected leak
        # stays red.
        super().__init__(
            cursor_type="row", cursor_foreground_priority="renderable", **kwargs
        )
        self.entries: dict[str, Entry] = {}
        self._shown: dict[str, tuple[Any, ...]] = {}
        """Line key to the :attr:`Entry.sig` drawn, then each cell's look."""
        self.stats: Counter[str] = Counter()
        """Lines added, removed and cells updated, for tests and the log."""

    def on_mount(self) -> None:
        """Add the fixed-width columns."""
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)

    @property
    def selected_key(self) -> str | None:
        """The key of the line under the cursor."""
        if not self.row_count:
            return None
        cell = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return cell.row_key.value

    def selected(self) -> Entry | None:
        """The entry under the cursor."""
        key = self.selected_key
        return self.entries.get(key) if key is not None else None

    def show(self, entries: list[Entry], target: str | None = None) -> None:
        """Show ``entries``: all lines, or only ``target``'s when given."""
        keep = (
            {}
            if target is None
            else {k: e for k, e in self.entries.items() if e.target != target}
        )
        wanted = {**keep, **{e.key: e for e in entries}}
        gone = [k for k in self.entries if k not in wanted]
        self._batch, self._dirty = True, False
        try:
            if gone and len(gone) > REBUILD_SHARE * max(1, len(self.entries)):
                self._refill(wanted)
            else:
                self._patch(wanted, gone)
        finally:
            self._batch = False
        if self._dirty:
            self.refresh()
        self._order()

    def refresh(self, *args: Any, **kwargs: Any) -> Self:
        """Repaint, once per :meth:`show` rather than once per changed cell.

        ``update_cell`` asks for a repaint each time, and marking the widget
        dirty costs tens of microseconds: 4,000 changed cells would spend
        over 0.1 s there alone.
        """
        if self._batch and not kwargs.get("layout") and not kwargs.get("recompose"):
            self._dirty = True
            return self
        return super().refresh(*args, **kwargs)

    def _refill(self, wanted: dict[str, Entry]) -> None:
        cursor = self.selected_key
        self.clear()
        self._shown.clear()
        self.entries = {}
        self.stats["refills"] += 1
        self._patch(wanted, [])
        if cursor in self.entries:
            self._put_cursor(cursor)

    def _patch(self, wanted: dict[str, Entry], gone: list[str]) -> None:
        for key in gone:
            self.remove_row(key)
            del self._shown[key]
            self.stats["removed"] += 1
        for key, entry in wanted.items():
            if key in self._shown:
                self._update(entry)
            else:
                values = entry.build()
                self.add_row(*values, key=key)
                self._shown[key] = (entry.sig, signature(values))
                self.stats["added"] += 1
        self.entries = wanted

    def _update(self, entry: Entry) -> None:
        sig, looks = self._shown[entry.key]
        if entry.sig == sig:
            return
        values = entry.build()
        new = signature(values)
        for index, (now, was) in enumerate(zip(new, looks, strict=True)):
            if now != was:
                column = COLUMNS[index][0]
                self.update_cell(entry.key, column, values[index])
                self.stats["cells"] += 1
        self._shown[entry.key] = (entry.sig, new)

    def _order(self) -> None:
        """Sort the lines when their order changed, keeping the cursor's line."""
        orders = {k: e.order for k, e in self.entries.items()}
        want = sorted(orders, key=orders.__getitem__)
        have = [row.key.value for row in self.ordered_rows]
        if want == have:
            return
        cursor = self.selected_key

        def by_order(cell: NameText) -> tuple[Any, ...]:
            return orders[cell.row_key]

        self.sort("name", key=by_order)
        self.stats["sorts"] += 1
        if cursor is not None:
            self._put_cursor(cursor)

    def _put_cursor(self, key: str) -> None:
        self.move_cursor(row=self.get_row_index(key), animate=False)
