"""The alert history panel: time, target, name, verdict and reason."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from qwatch.alerts import HISTORY, Alert
from qwatch.app.cells import VERDICT_STYLE

COLUMNS = (("time", 8), ("target", 14), ("name", 36), ("verdict", 8), ("reason", 60))


class AlertLog(DataTable[Text]):
    """Newest alert at the bottom; at most :data:`HISTORY` kept."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.border_title = "alerts"

    def on_mount(self) -> None:
        """Fixed widths, so adding an alert never re-measures the rest."""
        for label, width in COLUMNS:
            self.add_column(label, width=width, key=label)

    def add(self, alert: Alert) -> None:
        """Append one alert and keep the newest in view."""
        if self.row_count >= HISTORY:
            first = self.coordinate_to_cell_key((0, 0)).row_key  # type: ignore[arg-type]
            self.remove_row(first)
        style = "green" if alert.cleared else VERDICT_STYLE[alert.verdict]
        label = "CLEARED" if alert.cleared else alert.verdict.value
        self.add_row(
            Text(time.strftime("%H:%M:%S", time.localtime(alert.at))),
            Text(alert.target, no_wrap=True, overflow="ellipsis"),
            Text(alert.name, no_wrap=True, overflow="ellipsis"),
            Text(label, style),
            Text(alert.reason, no_wrap=True, overflow="ellipsis"),
        )
        self.move_cursor(row=self.row_count - 1, animate=False)
