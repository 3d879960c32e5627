"""Issue 2's Celery outage replayed live, scaled to an 8-second window.

Result keys ``celery-task-meta-<uuid4>`` pile up with no expiry and no reader;
their TTL twin levels off; the ``celery`` work list is pushed and popped 20
times a second. Through Watch and Tracker the result family must be LEAK
within two windows, and the other two must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
import redis.asyncio as aioredis
from qwatch.adapters.redis import RedisAdapter

from qwatch.poller import Watch
from qwatch.settings import Thresholds
from qwatch.tracker import Row, Tracker
from qwatch.verdicts import Verdict

WINDOW = 8.0
LEAKING = "celery-task-meta-{uuid}"
TWIN = "expiring-task-meta-{uuid}"
TICK = 0.1
"""Load generator step: 5 results, 5 twins and 2 jobs per tick."""


async def write_results(r: aioredis.Redis, stop: asyncio.Event) -> None:
    """50 result keys a second with no expiry, and 50 twins with a 3 s TTL."""
    while not stop.is_set():
        pipe = r.pipeline(transaction=False)
        for _ in range(5):
            pipe.set(f"celery-task-meta-{uuid.uuid4()}", '{"status": "SUCCESS"}')
            pipe.set(f"expiring-task-meta-{uuid.uuid4()}", '{"status": "OK"}', ex=3)
        pipe.lpush("celery", "job", "job")
        await pipe.execute()
        await asyncio.sleep(TICK)


async def work_list(r: aioredis.Redis, stop: asyncio.Event) -> None:
    """A worker that pops the ``celery`` list as fast as jobs come."""
    while not stop.is_set():
        await r.brpop(["celery"], timeout=0.2)


def verdicts(rows: list[Row]) -> dict[str, Verdict]:
    """Verdict by row name."""
    return {row.name: row.verdict for row in rows}


@pytest.mark.slow
async def test_celery_result_leak_is_found(
    redis_db: tuple[str, aioredis.Redis],
) -> None:
    """LEAK for the result family within two windows; twin and work list OK."""
    url, r = redis_db
    worker = aioredis.Redis.from_url(url)
    th = Thresholds(window=WINDOW, stall_after=WINDOW, min_members=3)
    tracker = Tracker("scenario", th)
    watch = Watch("scenario", RedisAdapter(url), tracker, interval=0.5)
    seen: list[dict[str, Verdict]] = []
    watch.listeners.append(lambda w: seen.append(verdicts(w.tracker.rows())))
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(write_results(r, stop)),
        asyncio.create_task(work_list(worker, stop)),
        asyncio.create_task(watch.run(stop)),
    ]
    started = time.monotonic()
    try:
        while time.monotonic() - started < 2 * WINDOW:
            if seen and seen[-1].get(LEAKING) is Verdict.LEAK:
                break
            await asyncio.sleep(0.1)
        leak_after = time.monotonic() - started
        # Keep watching one more window so the healthy ones are judged on a
        # full window of history too.
        while time.monotonic() - started < leak_after + WINDOW:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        with contextlib.suppress(Exception):
            await worker.aclose()
    assert watch.status.error is None, watch.status.error
    assert seen[-1].get(LEAKING) is Verdict.LEAK, seen[-1]
    assert leak_after <= 2 * WINDOW
    assert seen[-1].get(TWIN) is Verdict.OK, seen[-1]
    # The work list empties and comes back: it is a queue row, and never bad.
    assert all(v.get("celery", Verdict.OK) is Verdict.OK for v in seen), seen
    # While the twin ramps up to its TTL it grows and loses members at once,
    # which reads as BACKLOG for a moment; it must never be LEAK.
    assert all(v.get(TWIN) is not Verdict.LEAK for v in seen)
    rows = {row.name: row for row in tracker.rows()}
    assert rows[LEAKING].members is not None and rows[LEAKING].members > 400
    assert "0 read or gone" in rows[LEAKING].reason
