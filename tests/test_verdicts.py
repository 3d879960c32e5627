"""Verdict tables: each row is a history and the verdict it must get."""

from __future__ import annotations

import pytest

from qwatch.history import History, Point
from qwatch.model import Kind, Sample, Snapshot
from qwatch.settings import Thresholds
from qwatch.tracker import Tracker
from qwatch.verdicts import Facts, Verdict, judge

TH = Thresholds(window=60, stall_after=30, min_growth=5)


def series(depths: list[int], step: float = 5.0, **extra: object) -> list[Point]:
    """Points from depths alone: flows inferred from depth changes."""
    history = History(500)
    for i, depth in enumerate(depths):
        history.add(Sample("q", Kind.LIST, depth, **extra), i * step)  # type: ignore[arg-type]
    return history.points


def counted(pairs: list[tuple[int, int]], step: float = 5.0) -> History:
    """A history fed by server counters: (depth, total_out) per poll."""
    history = History(500)
    total_in = 0
    prev_depth, prev_out = 0, 0
    for i, (depth, out) in enumerate(pairs):
        total_in += max(0, depth - prev_depth + out - prev_out)
        history.add(Sample("q", Kind.QUEUE, depth, total_in, out), i * step)
        prev_depth, prev_out = depth, out
    return history


CASES = [
    ("steady growth never read", list(range(0, 130, 10)), Verdict.LEAK),
    ("growth for only 20 s is too early", [0, 10, 20, 30, 40], Verdict.OK),
    ("one burst, then flat", [0, 500] + [500] * 12, Verdict.OK),
    (
        "burst that drains",
        [0, 500, 400, 300, 200, 100, 0, 0, 0, 0, 0, 0, 0],
        Verdict.OK,
    ),
    ("empty all along", [0] * 13, Verdict.OK),
    (
        "grows while read, slower than filled",
        [0, 10, 8, 18, 16, 26, 24, 34, 32, 42, 40, 50, 48],
        Verdict.BACKLOG,
    ),
    (
        "read, then reading stops with items waiting",
        [0, 10, 0, 10, 0, 10, 20, 30, 40, 50, 60, 70, 80],
        Verdict.STALL,
    ),
    ("read, then idle and empty", [0, 10, 0, 10, 0] + [0] * 8, Verdict.OK),
    (
        "tiny growth below threshold",
        [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4],
        Verdict.OK,
    ),
]


@pytest.mark.parametrize(
    ("label", "depths", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_verdict_table(label: str, depths: list[int], expected: Verdict) -> None:
    assert judge(series(depths), TH).verdict is expected


def test_ttl_bounded_growth_is_not_leak() -> None:
    points = series(list(range(0, 130, 10)))
    result = judge(points, TH, Facts(bounded=True))
    assert result.verdict is Verdict.OK
    assert "bounded" in result.reason


def test_server_counter_of_past_reads_rules_out_leak() -> None:
    """A queue the server says was consumed before qwatch started is not LEAK."""
    history = counted([(d, 0) for d in range(0, 130, 10)])
    assert judge(history.points, TH).verdict is Verdict.LEAK
    history = counted([(d, 7) for d in range(0, 130, 10)])
    assert history.consumed_before
    verdict = judge(history.points, TH, Facts(consumed_before=True)).verdict
    assert verdict is Verdict.STALL


def test_counters_show_flow_that_depth_hides() -> None:
    """Depth flat at 3 while the server counts 50 in and 50 out: not a stall."""
    history = counted([(3, 50 * i) for i in range(13)])
    assert judge(history.points, TH, Facts(consumed_before=True)).verdict is Verdict.OK


def test_counter_reset_is_a_restart_not_a_drop() -> None:
    history = History(100)
    history.add(Sample("q", Kind.QUEUE, 5, 100, 95), 0)
    history.add(Sample("q", Kind.QUEUE, 2, 2, 0), 5)
    top = history.points[-1]
    assert top.flow_in == 2 and top.flow_out == 0


def test_leak_reason_has_numbers() -> None:
    result = judge(series(list(range(0, 130, 10))), TH)
    assert result.reason.startswith("+120 items in 60 s, 0 read")


def test_history_is_bounded_and_compresses_flat_runs() -> None:
    history = History(10)
    for i in range(1000):
        history.add(Sample("q", Kind.LIST, i), float(i))
    assert len(history.points) == 10
    flat = History(10)
    for i in range(1000):
        flat.add(Sample("q", Kind.LIST, 7), float(i))
    assert len(flat.points) == 2
    assert flat.points[-1].t == 999.0


def test_a_leak_that_stops_growing_stays_a_leak_until_read() -> None:
    """A family at the server's queue ceiling no longer grows, but nothing
    was ever read: it is still the leak. The first read ends it."""
    depths = list(range(0, 130, 10)) + [120] * 20
    flat = series(depths)
    assert judge(flat, TH).verdict is Verdict.OK
    held = judge(flat, TH, Facts(leaking=True))
    assert held.verdict is Verdict.LEAK
    assert held.reason == "120 items, 0 read ever; not growing for 100 s"
    read = series([*depths, 110])
    assert judge(read, TH, Facts(leaking=True)).verdict is not Verdict.LEAK


def test_tracker_keeps_a_levelled_leak_as_leak() -> None:
    """Through the tracker: the previous LEAK carries over while unread."""
    tracker = Tracker("t", TH)
    depths = list(range(0, 130, 10)) + [120] * 20
    for i, depth in enumerate(depths):
        tracker.update(Snapshot(i * 5.0, [Sample("q", Kind.LIST, depth)]))
    row = next(r for r in tracker.rows() if r.name == "q")
    assert row.verdict is Verdict.LEAK
    assert "not growing" in row.reason
