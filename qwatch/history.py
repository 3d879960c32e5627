"""Bounded history of one queue or family, with flows made cumulative.

A point holds the depth and qwatch's running totals of items in and out. The
totals come from the server's own counters where it keeps them, from its rates
otherwise, and from depth changes as a last resort; a counter that goes down
is a server restart, so the totals carry on from where they were.
"""

from __future__ import annotations

from typing import NamedTuple

from qwatch.model import Sample


class Point(NamedTuple):
    """One moment of a queue's life."""

    t: float
    depth: int
    flow_in: float
    """Items in since qwatch began watching."""
    flow_out: float
    """Items out since qwatch began watching."""
    consumers: int


def counter_step(now: int | None, before: int | None) -> int | None:
    """Growth of a cumulative counter; after a reset the new value is the step."""
    if now is None or before is None:
        return None
    return now - before if now >= before else now


class History:
    """At most ``limit`` points; runs of unchanged points keep two ends only."""

    __slots__ = ("_last", "consumed_before", "counted", "limit", "points")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.points: list[Point] = []
        self._last: Sample | None = None
        self.consumed_before = False
        """The server's counters say items were consumed before we watched."""
        self.counted = False
        """Outflow comes from server counters or rates, not depth drops."""

    @property
    def last(self) -> Sample | None:
        """The newest sample."""
        return self._last

    def add(self, sample: Sample, t: float) -> None:
        """Append a sample taken at time ``t``."""
        prev = self._last
        self._last = sample
        if prev is None or not self.points:
            self._start(sample, t)
            return
        top = self.points[-1]
        if _quiet(prev, sample) and top.consumers == (sample.consumers or 0):
            # Fast path: most of 100,000 keys do not change between polls.
            self._append_same(top, t)
            return
        step_in, step_out = self._steps(prev, sample, t - top.t)
        point = Point(
            t,
            sample.depth,
            top.flow_in + step_in,
            top.flow_out + step_out,
            sample.consumers or 0,
        )
        self._append(point)

    def _start(self, sample: Sample, t: float) -> None:
        self.consumed_before = bool(sample.total_out)
        self.counted = sample.total_out is not None or sample.rate_out is not None
        self.points.append(Point(t, sample.depth, 0.0, 0.0, sample.consumers or 0))

    @staticmethod
    def _steps(prev: Sample, now: Sample, dt: float) -> tuple[float, float]:
        change = now.depth - prev.depth
        step_in: float | None = counter_step(now.total_in, prev.total_in)
        step_out: float | None = counter_step(now.total_out, prev.total_out)
        if step_in is None and now.rate_in is not None:
            step_in = now.rate_in * dt
        if step_out is None and now.rate_out is not None:
            step_out = now.rate_out * dt
        if step_in is None and step_out is not None:
            step_in = max(0.0, change + step_out)
        if step_out is None and step_in is not None:
            step_out = max(0.0, step_in - change)
        if step_in is None or step_out is None:
            step_in, step_out = max(0, change), max(0, -change)
        return step_in, step_out

    def _append_same(self, top: Point, t: float) -> None:
        """Append a copy of ``top`` at time ``t``, stretching a flat run."""
        pts = self.points
        point = Point(t, top.depth, top.flow_in, top.flow_out, top.consumers)
        if len(pts) >= 2 and _same(pts[-2], top):
            pts[-1] = point
            return
        pts.append(point)
        if len(pts) > self.limit:
            del pts[0]

    def _append(self, point: Point) -> None:
        pts = self.points
        if len(pts) >= 2 and _same(pts[-1], point) and _same(pts[-2], point):
            pts[-1] = point
            return
        pts.append(point)
        if len(pts) > self.limit:
            del pts[0]


def _quiet(prev: Sample, now: Sample) -> bool:
    """Nothing moved: same depth, same counters, no rates."""
    return (
        now.depth == prev.depth
        and now.total_in == prev.total_in
        and now.total_out == prev.total_out
        and not now.rate_in
        and not now.rate_out
    )


def _same(a: Point, b: Point) -> bool:
    return (
        a.depth == b.depth
        and a.flow_in == b.flow_in
        and a.flow_out == b.flow_out
        and a.consumers == b.consumers
    )
