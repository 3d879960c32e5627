"""How one tracker row becomes the cells of one table line.

Pure functions of a row: the table compares their output with what it shows
and updates only the cells that differ.
"""

from __future__ import annotations

from rich.text import Text

from qwatch.tracker import Row
from qwatch.verdicts import Verdict

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("target", "target", 14),
    ("name", "name", 42),
    ("kind", "kind", 6),
    ("depth", "depth", 15),
    ("change", "chg/min", 8),
    ("in", "in/s", 7),
    ("out", "out/s", 7),
    ("consumers", "cons", 4),
    ("trend", "trend", 16),
    ("verdict", "verdict", 10),
)
"""Column key, heading and fixed width: fixed widths mean no cell is ever
measured again when values change."""

BLOCKS = "▁▂▃▄▅▆▇█"
SPARK = 16
"""Points in a trend sparkline (the trend column's width)."""

VERDICT_STYLE = {
    Verdict.LEAK: "bold red",
    Verdict.STALL: "bold dark_orange",
    Verdict.BACKLOG: "dark_orange",
    Verdict.OK: "",
}
ROW_STYLE = {
    Verdict.LEAK: "red",
    Verdict.STALL: "dark_orange",
    Verdict.BACKLOG: "dark_orange",
    Verdict.OK: "",
}


class NameText(Text):
    """The name cell, carrying its row key so the table can sort by it."""

    def __init__(self, text: str, row_key: str, style: str = "") -> None:
        super().__init__(text, style=style, no_wrap=True, overflow="ellipsis")
        self.row_key = row_key


def sparkline(values: list[int], width: int = SPARK) -> str:
    """Unicode blocks for the newest ``width`` values, scaled min to max."""
    values = values[-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BLOCKS[0] * len(values)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - low) * top / (high - low))] for v in values)


def count(value: float | None) -> str:
    """A whole number with thousands separators, or a dash when unknown."""
    return "-" if value is None else f"{value:,.0f}"


def signed(value: float | None) -> str:
    """A signed change, ``+12`` or ``-3``, or a dash when unknown."""
    if value is None:
        return "-"
    return "0" if round(value) == 0 else f"{value:+,.0f}"


def rate(value: float | None) -> str:
    """Items per second, with a decimal only where it matters."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def cells(
    row: Row,
    row_key: str,
    *,
    level: int = 0,
    expanded: bool = False,
    muted: bool = False,
) -> tuple[Text, ...]:
    """The line for ``row``: level 1 is a family member listed under it."""
    style = ROW_STYLE[row.verdict]
    depth = Text(count(row.depth if row.members is None else row.members), style)
    if row.members is not None:
        # A family's size is its member count; say so, it is not an item count.
        depth.append(" members", "dim")
    values = (
        Text(row.target, style, no_wrap=True, overflow="ellipsis"),
        NameText(_name(row, level, expanded), row_key, style),
        Text(row.kind, style),
        depth,
        Text(signed(row.change_per_min), style, justify="right"),
        Text(rate(row.rate_in), style, justify="right"),
        Text(rate(row.rate_out), style, justify="right"),
        Text(count(row.consumers), style, justify="right"),
        Text(sparkline(row.trend), style),
        _verdict(row.verdict, muted),
    )
    values[3].justify = "right"
    return values


def _name(row: Row, level: int, expanded: bool) -> str:
    if level:
        return f"  └ {row.name}"
    if row.members is None:
        return row.name
    return f"{'▾' if expanded else '▸'} {row.name}"


def _verdict(verdict: Verdict, muted: bool) -> Text:
    text = Text(verdict.value, VERDICT_STYLE[verdict])
    if muted and verdict is not Verdict.OK:
        text.append(" muted", "dim")
    return text


def signature(values: tuple[Text, ...]) -> tuple[tuple[str, str], ...]:
    """What a line looks like, cheap to compare with the last one shown."""
    return tuple((v.plain, str(v.style)) for v in values)
