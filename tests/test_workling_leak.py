"""The Workling return-store leak, end to end: workload -> server -> adapter ->
Watch -> Tracker verdicts, with short thresholds so it runs in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from qwatch.adapters.starling import StarlingAdapter

from qwatch.poller import Watch
from qwatch.settings import Thresholds
from qwatch.starling.workload import Workling, WorklingPlan, demo_target
from qwatch.tracker import Row, Tracker
from qwatch.verdicts import Verdict

FAMILY = "report_workers:generate:{hex}"
PLAN = WorklingPlan(reader_stops_at=3.0, reader_resumes_at=11.0)
TH = Thresholds(window=6.0, stall_after=3.0)


async def eventually(check: Callable[[], object], timeout: float) -> object:
    """Await until ``check()`` is truthy, polling with a bound."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.1)
    return value


def row(tracker: Tracker, name: str) -> Row | None:
    return next((r for r in tracker.rows() if r.name == name), None)


def verdict_is(tracker: Tracker, name: str, verdict: Verdict) -> bool:
    found = row(tracker, name)
    return found is not None and found.verdict is verdict


async def test_workling_leak_stall_and_recovery() -> None:
    """Family LEAK with members rising, job queue OK, mail queue STALL once its
    reader stops and OK again after it resumes."""
    async with demo_target(PLAN) as (url, workload):
        tracker = Tracker("demo", TH)
        watch = Watch("demo", StarlingAdapter(url), tracker, interval=0.5)
        members: list[int] = []
        watch.listeners.append(lambda w: _count_members(w.tracker, members))
        stop = asyncio.Event()
        polling = asyncio.create_task(watch.run(stop))
        try:
            await _check_story(tracker, workload, members)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(polling, 10)
        assert watch.status.failures == 0 and watch.status.polls > 10


async def _check_story(
    tracker: Tracker, workload: Workling, members: list[int]
) -> None:
    await eventually(lambda: verdict_is(tracker, FAMILY, Verdict.LEAK), 15)
    leak = row(tracker, FAMILY)
    assert leak is not None and leak.members is not None and leak.members >= 60
    assert "0 read" in leak.reason
    assert members == sorted(members) and members[-1] > members[0]
    job = row(tracker, PLAN.job_queue)
    assert job is not None and job.verdict is Verdict.OK and job.depth <= 1
    assert job.rate_out is not None and job.rate_out > 10
    await eventually(lambda: verdict_is(tracker, PLAN.mail_queue, Verdict.STALL), 15)
    assert not workload.counts.reader_running
    await eventually(lambda: workload.counts.reader_running, 15)
    await eventually(lambda: verdict_is(tracker, PLAN.mail_queue, Verdict.OK), 10)
    assert verdict_is(tracker, FAMILY, Verdict.LEAK)
    assert verdict_is(tracker, PLAN.job_queue, Verdict.OK)


def _count_members(tracker: Tracker, members: list[int]) -> None:
    found = row(tracker, FAMILY)
    if found is not None and found.members is not None:
        members.append(found.members)
