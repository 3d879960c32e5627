"""Verdicts: pure functions from a history to LEAK, BACKLOG, STALL or OK.

Nothing here keeps state or reads a clock: the same points always give the
same verdict, which is what lets the tables in tests pin every rule down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from qwatch.history import Point
from qwatch.settings import Thresholds


class Verdict(StrEnum):
    """What a queue or family is doing, worst first."""

    LEAK = "LEAK"
    STALL = "STALL"
    BACKLOG = "BACKLOG"
    OK = "OK"

    @property
    def rank(self) -> int:
        """Sort key: leaks first."""
        return list(Verdict).index(self)

    @property
    def exit_code(self) -> int:
        """The monitoring-plugin exit code this verdict calls for."""
        return {"LEAK": 2, "STALL": 1, "BACKLOG": 1}.get(self.value, 0)


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict and the numbers behind it."""

    verdict: Verdict
    reason: str
    began: float | None = None
    """When the condition behind the verdict started (the last read before a
    STALL, the low point a growth rose from); None for OK."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What the caller knows beyond the points themselves."""

    consumed_before: bool = False
    """The server counted consumption from before qwatch watched."""
    bounded: bool = False
    """The server removes items itself (TTL, x-expires, schedule)."""
    unit: str = "items"
    gone_word: str = "read"
    expiring: int = 0
    """Members carrying a TTL, for family reasons."""
    leaking: bool = False
    """The last verdict was LEAK: a leak that stops growing (a server at its
    queue ceiling, a producer gone quiet) still holds what nobody read."""


def judge(points: Sequence[Point], th: Thresholds, facts: Facts = Facts()) -> Judgement:
    """Judge one history against the thresholds."""
    if len(points) < 2:
        return Judgement(Verdict.OK, "first look")
    now = points[-1]
    start = _point_at(points, now.t - th.window)
    stalled = _stall(points, th, facts)
    if stalled is not None:
        return stalled
    grown = now.depth - start.depth
    went = now.flow_out - start.flow_out
    span = now.t - start.t
    rising = grown >= th.min_growth and _sustained(points, start, now)
    ever_out = facts.consumed_before or now.flow_out > 0
    covered = span >= th.window * th.min_span_share
    if rising and not ever_out and not facts.bounded and covered:
        text = _growth_text(grown, span, went, facts)
        return Judgement(Verdict.LEAK, text, _low_point(points).t)
    held = now.depth > 0 and now.depth >= start.depth
    if facts.leaking and held and not ever_out and not facts.bounded:
        return Judgement(Verdict.LEAK, _held_text(points, facts), None)
    # A server-bounded queue (TTL, x-expires) levels off by itself: growing
    # while items expire is its ramp-up, not consumers falling behind.
    if rising and went > 0 and not facts.bounded:
        text = _flow_text(start, now, facts)
        return Judgement(Verdict.BACKLOG, text, _low_point(points).t)
    return Judgement(Verdict.OK, _ok_text(points, start, now, facts))


def _point_at(points: Sequence[Point], t: float) -> Point:
    """The newest point at or before ``t``, else the oldest."""
    for point in reversed(points):
        if point.t <= t:
            return point
    return points[0]


def _low_point(points: Sequence[Point]) -> Point:
    """The newest point at the lowest depth held: where the growth began."""
    low = points[0]
    for point in points:
        if point.depth <= low.depth:
            low = point
    return low


def _sustained(points: Sequence[Point], start: Point, now: Point) -> bool:
    """Growth in both halves of the window: a single burst is not a trend."""
    middle = _point_at(points, (start.t + now.t) / 2)
    return middle.depth > start.depth and now.depth > middle.depth


def _stall(points: Sequence[Point], th: Thresholds, facts: Facts) -> Judgement | None:
    """Items wait, consuming was seen, and nothing has gone out for a while."""
    now = points[-1]
    if now.depth <= 0:
        return None
    last_out = _last_out(points)
    if last_out is None and not facts.consumed_before:
        return None
    since = points[0].t if last_out is None else last_out.t
    quiet = now.t - since
    if quiet < th.stall_after:
        return None
    change = _consumer_text(points)
    was = f" (consumers {change})" if change else ""
    text = (
        f"{now.depth:,} {facts.unit} waiting; nothing {facts.gone_word} "
        f"for {quiet:.0f} s{was}"
    )
    return Judgement(Verdict.STALL, text, since)


def _last_out(points: Sequence[Point]) -> Point | None:
    """The newest point at which outflow was still rising."""
    for before, after in zip(reversed(points[:-1]), reversed(points), strict=False):
        if after.flow_out > before.flow_out:
            return after
    return None


def _consumer_text(points: Sequence[Point]) -> str:
    most = max(p.consumers for p in points)
    now = points[-1].consumers
    return f"{most} -> {now}" if most != now else ""


def _per_min(amount: float, span: float) -> str:
    return f"{amount * 60 / span:,.0f}/min" if span > 0 else "?"


def _growth_text(grown: int, span: float, went: float, facts: Facts) -> str:
    text = f"+{grown:,} {facts.unit} in {span:.0f} s, {went:,.0f} {facts.gone_word}"
    if facts.unit == "members":
        text += f", {facts.expiring:,} expiring"
    return text


def _held_text(points: Sequence[Point], facts: Facts) -> str:
    now = points[-1]
    rises = [b for a, b in pairwise(points) if b.depth > a.depth]
    flat = now.t - (rises[-1].t if rises else points[0].t)
    return (
        f"{now.depth:,} {facts.unit}, 0 {facts.gone_word} ever; "
        f"not growing for {flat:.0f} s"
    )


def _flow_text(start: Point, now: Point, facts: Facts) -> str:
    span = now.t - start.t
    came = _per_min(now.flow_in - start.flow_in, span)
    went = _per_min(now.flow_out - start.flow_out, span)
    grown = now.depth - start.depth
    return f"in {came}, out {went}: +{grown:,} {facts.unit} in {span:.0f} s"


def _ok_text(points: Sequence[Point], start: Point, now: Point, facts: Facts) -> str:
    span = now.t - start.t
    if facts.bounded and now.depth > start.depth:
        return f"{now.depth:,} {facts.unit}, bounded by the server (TTL or schedule)"
    if now.flow_in == start.flow_in and now.flow_out == start.flow_out:
        return f"{now.depth:,} {facts.unit}, unchanged for {span:.0f} s"
    return _flow_text(start, now, facts).split(":")[0] + f"; {now.depth:,} held"
