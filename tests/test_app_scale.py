"""A thousand lines: a poll patches cells in place, never rebuilds the table."""

from __future__ import annotations

import logging
import time

from test_app_fakes import ManyAdapter, until, watch

from qwatch.app.main import QwatchApp
from qwatch.app.table import QueueTable

log = logging.getLogger(__name__)

COUNT = 1000


async def test_thousand_rows_update_cells_in_place() -> None:
    """Later polls change cells only: no line added, removed or refilled."""
    app = QwatchApp([watch("many", ManyAdapter(COUNT), interval=0.2)])
    async with app.run_test(size=(170, 50)) as pilot:
        table = app.query_one(QueueTable)
        await until(pilot, lambda: table.row_count == COUNT)
        keys = [row.key for row in table.ordered_rows]
        widths = [column.width for column in table.ordered_columns]
        seen = app.views["many"].seq
        before = dict(table.stats)
        await until(pilot, lambda: app.views["many"].seq >= seen + 3)
        assert table.stats["added"] == before["added"] == COUNT
        assert table.stats["removed"] == 0
        assert table.stats["refills"] == 0
        assert table.stats["cells"] > before.get("cells", 0)
        assert [row.key for row in table.ordered_rows] == keys
        assert [column.width for column in table.ordered_columns] == widths


async def test_keys_answer_while_a_thousand_lines_update() -> None:
    """Typing goes through while polls of a thousand queues keep arriving."""
    app = QwatchApp([watch("many", ManyAdapter(COUNT), interval=0.2)])
    async with app.run_test(size=(170, 50)) as pilot:
        table = app.query_one(QueueTable)
        await until(pilot, lambda: table.row_count == COUNT)
        start = app.views["many"].seq
        started = time.monotonic()
        await pilot.press("s", "s", "s")
        took = time.monotonic() - started
        log.info("three sorts of %d lines under polling took %.3f s", COUNT, took)
        assert "sort: name" in str(table.border_title)
        # A sort keeps the selected queue selected, wherever it moved to.
        row = table.cursor_row
        await pilot.press("down", "down")
        assert table.cursor_row == row + 2
        await until(pilot, lambda: app.views["many"].seq >= start + 3)
        assert table.stats["refills"] == 0
