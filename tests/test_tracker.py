"""The tracker: families fold, their verdicts follow members added and gone."""

from __future__ import annotations

import uuid

from qwatch.model import Kind, Sample, Snapshot
from qwatch.settings import Thresholds
from qwatch.tracker import Tracker
from qwatch.verdicts import Verdict

TH = Thresholds(window=20, stall_after=10, min_growth=5)


def feed(tracker: Tracker, polls: int, make) -> None:  # type: ignore[no-untyped-def]
    for i in range(polls):
        tracker.update(Snapshot(at=1000.0 + i * 2, queues=make(i)))


def test_result_family_leaks_and_work_list_does_not() -> None:
    keys: list[str] = []
    tracker = Tracker("t", TH)

    def make(i: int) -> list[Sample]:
        keys.extend(f"celery-task-meta-{uuid.uuid4()}" for _ in range(10))
        work = Sample("celery", Kind.LIST, i % 2)
        return [work] + [Sample(k, Kind.STRING, 1) for k in keys]

    feed(tracker, 15, make)
    rows = {r.name: r for r in tracker.rows()}
    fam = rows["celery-task-meta-{uuid}"]
    assert fam.verdict is Verdict.LEAK
    assert fam.members == 150 and fam.depth == 150
    assert fam.reason == "+100 members in 20 s, 0 read or gone, 0 expiring"
    assert rows["celery"].verdict is Verdict.OK
    assert len(rows) == 2, "members are folded into the family row"
    assert len(tracker.member_rows("celery-task-meta-{uuid}")) == 150


def test_ttl_family_that_expires_is_not_leak() -> None:
    live: list[tuple[str, int]] = []
    tracker = Tracker("t", TH)

    def make(i: int) -> list[Sample]:
        live.extend((f"celery-task-meta-{uuid.uuid4()}", i) for _ in range(10))
        live[:] = [(k, born) for k, born in live if i - born < 5]
        return [Sample(k, Kind.STRING, 1, ttl=10.0) for k, _ in live]

    feed(tracker, 15, make)
    (fam,) = tracker.rows()
    assert fam.verdict is Verdict.OK, fam.reason


def test_family_growth_during_discovery_is_not_counted() -> None:
    """While SCAN is still walking, newly found keys are not 'added' members."""
    keys = [f"k:{uuid.uuid4().hex}" for _ in range(300)]
    tracker = Tracker("t", TH)
    for i in range(10):
        found = keys[: 30 * (i + 1)]
        snap = Snapshot(
            at=float(i * 3),
            queues=[Sample(k, Kind.STRING, 1) for k in found],
            complete=i == 9,
        )
        tracker.update(snap)
    (fam,) = tracker.rows()
    assert fam.members == 300
    assert fam.verdict is Verdict.OK


def test_vanished_queue_is_forgotten_after_two_windows() -> None:
    tracker = Tracker("t", TH)
    tracker.update(Snapshot(at=0.0, queues=[Sample("gone", Kind.LIST, 3)]))
    tracker.update(Snapshot(at=10.0, queues=[]))
    assert "gone" in tracker.queues
    tracker.update(Snapshot(at=100.0, queues=[]))
    assert "gone" not in tracker.queues


def test_own_purge_is_not_a_reader_and_the_leak_comes_back() -> None:
    """After qwatch purges a leaking family it forgets its history: the
    producer goes on, so it is LEAK again, never STALL; without forget the
    purge would read as a consumer that stopped."""

    def run(forget: bool) -> list[Verdict]:
        keys: list[str] = []
        tracker = Tracker("t", TH)
        verdicts = []
        for i in range(40):
            if i == 15:
                keys.clear()  # the operator's purge
                if forget:
                    tracker.forget("celery-task-meta-{uuid}")
            keys.extend(f"celery-task-meta-{uuid.uuid4()}" for _ in range(10))
            samples = [Sample(k, Kind.STRING, 1) for k in keys]
            tracker.update(Snapshot(at=1000.0 + i * 2, queues=samples))
            row = next(r for r in tracker.rows() if r.is_family)
            verdicts.append(row.verdict)
        return verdicts

    after = run(forget=True)
    assert after[14] is Verdict.LEAK
    assert Verdict.STALL not in after
    assert after[-1] is Verdict.LEAK
    assert Verdict.STALL in run(forget=False)


def test_forgotten_queue_is_met_again_as_new() -> None:
    tracker = Tracker("t", TH)
    tracker.update(Snapshot(at=1000.0, queues=[Sample("jobs", Kind.LIST, 50)]))
    tracker.forget("jobs")
    tracker.forget("nothing-by-that-name")
    assert [r.name for r in tracker.rows()] == []
    tracker.update(Snapshot(at=1002.0, queues=[Sample("jobs", Kind.LIST, 0)]))
    assert [r.verdict for r in tracker.rows()] == [Verdict.OK]
    assert tracker.points_of("jobs")[0].flow_out == 0


def test_expiring_old_members_by_hand_does_not_hide_a_leak_that_goes_on() -> None:
    """The operator gives the 300 leaked keys a TTL; new ones still come
    without one, so the family stays LEAK. A producer that writes with a TTL
    is bounded however many old keys lack one."""

    def run(new_ttl: int | None) -> Verdict:
        keys: list[tuple[str, int | None]] = []
        tracker = Tracker("t", TH)
        for i in range(45):
            if i == 30:
                keys = [(k, 3600) for k, _ in keys]  # purge --expire 1h
            ttl = new_ttl if i >= 30 else None
            keys += [(f"celery-task-meta-{uuid.uuid4()}", ttl) for _ in range(10)]
            samples = [Sample(k, Kind.STRING, 1, ttl=t) for k, t in keys]
            tracker.update(Snapshot(at=1000.0 + i * 2, queues=samples))
        return next(r for r in tracker.rows() if r.is_family).verdict

    assert run(new_ttl=None) is Verdict.LEAK
    assert run(new_ttl=60) is not Verdict.LEAK
