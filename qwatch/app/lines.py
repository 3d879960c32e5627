"""Which lines a target's view becomes, given grouping, filter and sort.

Pure: the same view and choices always give the same entries, in the order
the table should show them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from qwatch.app.cells import SPARK, cells
from qwatch.app.runner import View
from qwatch.app.table import Entry
from qwatch.tracker import Row
from qwatch.verdicts import Verdict

SORTS = ("verdict", "depth", "change", "name", "target")
"""Sort orders that ``s`` cycles through."""

RANK = {verdict: index for index, verdict in enumerate(Verdict)}
"""Worst first; a dict, since ``Verdict.rank`` walks the enum each call."""

SEP = "\x1f"
"""Joins the parts of a line key; never appears in a queue name we show."""


@dataclass(slots=True)
class Choices:
    """What the operator chose to see."""

    grouped: bool = True
    """Families folded into one line each (``g`` toggles)."""
    expanded: set[tuple[str, str]] = field(default_factory=set)
    """(target, pattern) of families listed member by member."""
    filter: str = ""
    """Name substring; empty shows everything."""
    sort: str = SORTS[0]


Muted = Callable[[str, str], bool]
"""Tells whether alerts for (target, name) are silenced."""


def row_key(target: str, kind: str, name: str, family: str = "") -> str:
    """The table key of a queue (q), family (f) or member (m) line."""
    return SEP.join((target, kind, family, name))


def key_parts(key: str) -> tuple[str, str, str, str]:
    """``(target, kind, family, name)`` back from a line key."""
    target, kind, family, name = key.split(SEP, 3)
    return target, kind, family, name


def entries(view: View, choices: Choices, muted: Muted) -> list[Entry]:
    """Every line of one target's view that passes the filter."""
    out: list[Entry] = []
    needle = choices.filter.lower()
    for row in view.rows:
        if not row.is_family:
            if needle in row.name.lower():
                out.append(_top(view.target, "q", row, choices, muted))
        elif choices.grouped:
            out += _family(view, row, choices, muted)
        else:
            for member in view.members.get(row.name, []):
                if needle in member.name.lower():
                    out.append(_top(view.target, "q", member, choices, muted))
    return out


def _family(view: View, row: Row, choices: Choices, muted: Muted) -> list[Entry]:
    needle = choices.filter.lower()
    members = view.members.get(row.name, [])
    shown = [m for m in members if needle in m.name.lower()]
    if needle not in row.name.lower() and not shown:
        return []
    open_ = (view.target, row.name) in choices.expanded
    top = _top(view.target, "f", row, choices, muted, expanded=open_)
    top.family = row.name
    if not open_:
        return [top]
    lines = [top]
    listed = members if needle in row.name.lower() else shown
    for index, member in enumerate(listed):
        key = row_key(view.target, "m", member.name, row.name)
        lines.append(
            Entry(
                key,
                view.target,
                member,
                (*top.order[:-2], 1, index),
                signature_of(member, 1, False, False),
                partial(cells, member, key, level=1),
                family=row.name,
                level=1,
            )
        )
    return lines


def _top(
    target: str,
    kind: str,
    row: Row,
    choices: Choices,
    muted: Muted,
    expanded: bool = False,
) -> Entry:
    key = row_key(target, kind, row.name)
    order = (*primary(row, choices.sort), row.name, target, 0, 0)
    quiet = row.verdict is not Verdict.OK and muted(target, row.name)
    sig = signature_of(row, 0, expanded, quiet)
    build = partial(cells, row, key, expanded=expanded, muted=quiet)
    return Entry(key, target, row, order, sig, build)


def signature_of(row: Row, level: int, expanded: bool, muted: bool) -> tuple[Any, ...]:
    """Everything a line's cells are made of, cheap to compare."""
    return (
        row.verdict,
        row.depth,
        row.members,
        row.change_per_min,
        row.rate_in,
        row.rate_out,
        row.consumers,
        tuple(row.trend[-SPARK:]),
        row.kind,
        level,
        expanded,
        muted,
    )


def primary(row: Row, sort: str) -> tuple[Any, ...]:
    """The leading sort fields of ``row`` under sort order ``sort``."""
    size = row.members if row.members is not None else row.depth
    if sort == "depth":
        return (-row.depth, -size)
    if sort == "change":
        return (-(row.change_per_min or 0.0), RANK[row.verdict])
    if sort == "name":
        return ("", 0)
    if sort == "target":
        return (row.target, RANK[row.verdict])
    return (RANK[row.verdict], -size)
