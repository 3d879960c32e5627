"""The dashboard against a real redis-server: the Celery result-key leak."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import redis.asyncio as aioredis
from test_app_fakes import until

from qwatch.app.lines import key_parts
from qwatch.app.main import QwatchApp
from qwatch.app.table import QueueTable
from qwatch.settings import Thresholds
from qwatch.targets import TargetSpec, build_watch

FAMILY = "celery-task-meta-{uuid}"
TH = Thresholds(window=3.0, stall_after=60.0, min_growth=3, min_members=3)


async def _celery(client: aioredis.Redis) -> None:
    """Result keys nobody reads, beside a work list pushed and popped."""
    while True:
        for _ in range(5):
            await client.set(f"celery-task-meta-{uuid.uuid4()}", b'{"status": "OK"}')
        await client.lpush("celery", b"job", b"job")
        await client.rpop("celery")
        await client.rpop("celery")
        # Pacing the scenario's traffic, not waiting for the app.
        await asyncio.sleep(0.1)


async def test_leaking_result_family_is_first_and_red_on_real_redis(
    redis_db: tuple[str, aioredis.Redis],
) -> None:
    """The growing result-key family becomes the first line, red, with a bell."""
    url, client = redis_db
    await client.lpush("celery", b"job")
    writer = asyncio.create_task(_celery(client))
    spec = TargetSpec(url=url, name="redis", interval=0.5, thresholds=TH)
    app = QwatchApp([build_watch(spec)])
    try:
        async with app.run_test(size=(170, 50)) as pilot:
            table = app.query_one(QueueTable)

            def leak_first() -> bool:
                if not table.row_count:
                    return False
                row = table.get_row_at(0)
                return row[-1].plain == "LEAK"

            await until(pilot, leak_first, timeout=40)
            first = table.get_row_at(0)
            assert first[1].plain == f"▸ {FAMILY}"
            assert "red" in str(first[-1].style)
            assert app.bells == 1
            names = [key_parts(r.key.value)[3] for r in table.ordered_rows]
            assert "celery" in names
            celery = table.get_row(
                next(
                    r.key
                    for r in table.ordered_rows
                    if key_parts(r.key.value)[3] == "celery"
                )
            )
            assert celery[-1].plain != "LEAK"
            status = app.lines["redis"].status
            assert status is not None and status.error is None
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
