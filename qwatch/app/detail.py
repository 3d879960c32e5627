"""The detail pane: the selected line's history chart, verdict and facts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static
from textual_plotext import PlotextPlot

from qwatch.app.cells import VERDICT_STYLE, count, rate, signed
from qwatch.history import Point
from qwatch.tracker import Row

FACT_LIMIT = 12
"""Most server-specific facts listed, so the pane never scrolls off."""


class HistoryChart(PlotextPlot):
    """Depth over time, with labelled axes; x is seconds before the last poll."""

    def show(self, title: str, points: Sequence[Point], unit: str) -> None:
        """Plot ``points`` (oldest first); an empty list clears the chart."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("seconds before last poll")
        plt.ylabel(unit)
        if points:
            end = points[-1].t
            xs = [p.t - end for p in points]
            ys = [p.depth for p in points]
            plt.plot(xs, ys, marker="braille")
            low, high = min(ys), max(ys)
            if low == high:
                # plotext draws no y ticks for a flat line; give it a band.
                low, high = max(0, low - 1), high + 1
                plt.ylim(low, high)
            # Depths are whole numbers: plotext's own ticks read "1475.0".
            ticks = sorted({float(round(low + (high - low) * i / 4)) for i in range(5)})
            plt.yticks(ticks, [f"{t:,.0f}" for t in ticks])
        self.refresh()


class Facts(Static):
    """Verdict, reason, rates and what the server said about the line."""

    plain = ""
    """The facts as plain text, one per line (for tests and copying)."""

    def show(self, row: Row, server: dict[str, Any], notes: list[str]) -> None:
        """Describe ``row``; ``server`` and ``notes`` come from its target."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        lines = _lines(row, server, notes)
        for label, value in lines:
            grid.add_row(label, value)
        self.plain = "\n".join(
            f"{label}: {Text(value).plain if isinstance(value, str) else value.plain}"
            for label, value in lines
        )
        self.update(grid)


def _lines(
    row: Row, server: dict[str, Any], notes: list[str]
) -> list[tuple[str, str | Text]]:
    verdict = Text(row.verdict.value, VERDICT_STYLE[row.verdict])
    verdict.append(f"  since {_since(row.since)}", "default")
    lines: list[tuple[str, str | Text]] = [
        ("name", Text(row.name, no_wrap=True, overflow="ellipsis")),
        ("verdict", verdict),
        ("reason", row.reason),
        ("size", _size(row)),
        ("flow", _flow(row)),
    ]
    if row.sample is not None:
        lines += _sample_lines(row)
    facts = [(k, v) for k, v in server.items() if _scalar(v)][:FACT_LIMIT]
    if facts:
        lines.append(("server", "  ".join(f"{k}={_fmt(v)}" for k, v in facts)))
    if notes:
        lines.append(("notes", Text("; ".join(notes), "dim")))
    return lines


def _size(row: Row) -> str:
    if row.members is not None:
        return f"{row.members:,} members holding {row.depth:,} items ({row.kind})"
    return f"{row.depth:,} items ({row.kind})"


def _flow(row: Row) -> str:
    return (
        f"{signed(row.change_per_min)}/min  in {rate(row.rate_in)}/s  "
        f"out {rate(row.rate_out)}/s  consumers {count(row.consumers)}"
    )


def _sample_lines(row: Row) -> list[tuple[str, str | Text]]:
    sample = row.sample
    assert sample is not None
    said = {
        "bytes": sample.bytes,
        "ttl": None if sample.ttl is None else f"{sample.ttl:,.0f} s",
        "idle": None if sample.idle is None else f"{sample.idle:,.0f} s",
        "unacked": sample.unacked,
        "in total": sample.total_in,
        "out total": sample.total_out,
    }
    shown = [f"{k} {_fmt(v)}" for k, v in said.items() if v is not None]
    if sample.bounded:
        shown.append("bounded by the server")
    if not sample.present:
        shown.append("gone from the server")
    lines: list[tuple[str, str | Text]] = []
    if shown:
        lines.append(("queue", "  ".join(shown)))
    info = [(k, v) for k, v in (sample.info or {}).items() if _scalar(v)]
    if info:
        text = "  ".join(f"{k}={_fmt(v)}" for k, v in info[:FACT_LIMIT])
        lines.append(("info", text))
    return lines


def _since(at: float) -> str:
    if at <= 0:
        return "-"
    ago = max(0.0, time.time() - at)
    clock = time.strftime("%H:%M:%S", time.localtime(at))
    return f"{clock} ({_ago(ago)} ago)"


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


class DetailPane(Horizontal):
    """Chart on the left, facts on the right."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chart = HistoryChart(id="chart")
        self.facts = Facts(id="facts")

    def compose(self) -> ComposeResult:
        """The two halves."""
        yield self.chart
        yield self.facts

    def show(
        self,
        row: Row | None,
        points: Sequence[Point],
        server: dict[str, Any],
        notes: list[str],
    ) -> None:
        """Describe ``row`` (None: nothing selected) with its history."""
        chart, facts = self.chart, self.facts
        if row is None:
            chart.show("nothing selected", [], "")
            facts.update("No queue selected. Move the cursor onto a line.")
            return
        unit = "members" if row.is_family else "items"
        chart.show(f"{row.name} ({unit})", points, unit)
        facts.show(row, server, notes)
