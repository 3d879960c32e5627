"""Leak, stall and burst scenarios replayed live on the real broker.

The management plugin refreshes counts every 5 s, so windows here are a few
stats intervals long; polls run every second to see each refresh promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from fixtures_rabbit import AMQP, API, RabbitVhost, Watcher, eventually
from qwatch.adapters import adapter_for
from qwatch.adapters.rabbitmq import RabbitAdapter

from qwatch.settings import Thresholds
from qwatch.verdicts import Verdict

pytestmark = pytest.mark.slow

QWATCH = str(Path(sys.executable).with_name("qwatch"))
"""The console script installed next to the interpreter running the tests."""
SHORT = Thresholds(window=12.0, stall_after=12.0, min_growth=5, min_members=3)


@contextlib.asynccontextmanager
async def watching(vhost: RabbitVhost, th: Thresholds) -> AsyncIterator[Watcher]:
    adapter = adapter_for(vhost.url, vhost.options)
    assert isinstance(adapter, RabbitAdapter)
    await adapter.connect()
    try:
        yield Watcher(adapter, th)
    finally:
        await adapter.close()


@contextlib.asynccontextmanager
async def running(*coros: object) -> AsyncIterator[None]:
    """Background work for the length of a block, cancelled afterwards."""
    tasks = [asyncio.ensure_future(c) for c in coros]  # type: ignore[arg-type]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def publish_forever(vhost: RabbitVhost, queue: str, every: float) -> None:
    channel = await vhost.channel()
    n = 0
    while True:
        n += 1
        await channel.default_exchange.publish(
            aio_pika.Message(f"job {n}".encode()), routing_key=queue
        )
        await asyncio.sleep(every)


async def consumer(
    vhost: RabbitVhost, queue: str, work: float = 0.0
) -> aio_pika.abc.AbstractConnection:
    """A consumer on its own connection, so closing it is a killed worker."""
    conn = await aio_pika.connect(f"{AMQP}/{vhost.name}")
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=10)
    q = await channel.get_queue(queue)

    async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if work:
            await asyncio.sleep(work)  # simulated work time, not synchronisation
        await message.ack()

    await q.consume(handle)
    return conn


async def one_offs(vhost: RabbitVhost, prefix: str, every: float, **kw: object) -> None:
    """Declare ``prefix.<32 hex>`` queues forever, each with ``message`` if given."""
    channel = await vhost.channel()
    body = kw.pop("message", None)
    while True:
        name = f"{prefix}.{uuid.uuid4().hex}"
        await channel.declare_queue(name, **kw)  # type: ignore[arg-type]
        if body is not None:
            await channel.default_exchange.publish(
                aio_pika.Message(body),
                routing_key=name,  # type: ignore[arg-type]
            )
        await asyncio.sleep(every)


async def test_consumer_killed_is_stall_and_ok_after_it_returns(
    rabbit_vhost: RabbitVhost,
) -> None:
    """A work queue whose consumer dies: STALL; once a consumer is back: OK."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("work", durable=True)
    worker = await consumer(rabbit_vhost, "work")
    async with (
        watching(rabbit_vhost, SHORT) as w,
        running(publish_forever(rabbit_vhost, "work", 0.1)),
    ):
        await w.until(lambda r: "work" in r and r["work"].rate_out)
        await worker.close()
        rows = await w.until(lambda r: r["work"].verdict == Verdict.STALL, 60)
        assert "nothing read" in rows["work"].reason
        assert "consumers 1 -> 0" in rows["work"].reason
        worker = await consumer(rabbit_vhost, "work")
        try:
            await w.until(lambda r: r["work"].verdict == Verdict.OK, 45)
        finally:
            await worker.close()
    assert Verdict.LEAK not in w.verdicts_of("work")


async def test_polling_faster_than_the_stats_refresh_reads_no_change_as_noise(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Polled every second, a steady work queue repeats the same numbers for
    a stats interval, then jumps: that is never read as STALL or growth."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("steady")
    worker = await consumer(rabbit_vhost, "steady")
    totals: list[tuple[int | None, int | None]] = []
    try:
        async with (
            watching(rabbit_vhost, SHORT) as w,
            running(publish_forever(rabbit_vhost, "steady", 0.05)),
        ):

            def recorded(rows: dict[str, Any]) -> bool:
                if "steady" in rows:
                    sample = rows["steady"].sample
                    totals.append((sample.total_in, sample.total_out))
                return len(totals) >= 25

            await w.until(recorded, timeout=60)
    finally:
        await worker.close()
    repeats = sum(1 for a, b in itertools.pairwise(totals) if a == b)
    jumps = len(totals) - 1 - repeats
    assert repeats >= 10 and jumps >= 3  # stale reads did happen, and moves
    assert set(w.verdicts_of("steady")) == {"OK"}


async def test_per_task_result_queues_leak_unless_they_expire(
    rabbit_vhost: RabbitVhost,
) -> None:
    """One-message 32-hex queues piling up are a LEAK family; the twin with
    x-expires, whose members go away, is not."""
    async with (
        watching(rabbit_vhost, SHORT) as w,
        running(
            one_offs(rabbit_vhost, "result", 0.3, message=b"{}"),
            one_offs(
                rabbit_vhost,
                "expiring",
                0.3,
                message=b"{}",
                arguments={"x-expires": 2000},
            ),
        ),
    ):
        rows = await w.until(lambda r: _verdict(r, "result.{hex}") == Verdict.LEAK, 60)
        assert rows["result.{hex}"].members >= 10
        assert "0 read or gone" in rows["result.{hex}"].reason
        # the twin's members really do go away: its count stays far lower
        assert rows["expiring.{hex}"].members * 2 < rows["result.{hex}"].members
    assert "LEAK" not in w.verdicts_of("expiring.{hex}")
    assert w.verdicts_of("expiring.{hex}")[-1] == "OK"


async def test_empty_reply_queues_accumulating_are_a_leak_by_count(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Empty uuid-named reply queues left by dead RPC clients: LEAK by count."""
    channel = await rabbit_vhost.channel()

    async def replies() -> None:
        while True:
            await channel.declare_queue(f"rpc.reply-{uuid.uuid4()}")
            await asyncio.sleep(0.3)

    async with watching(rabbit_vhost, SHORT) as w, running(replies()):
        family = "rpc.reply-{uuid}"
        rows = await w.until(lambda r: _verdict(r, family) == Verdict.LEAK, 60)
    assert rows[family].depth == 0
    assert rows[family].members >= 10


async def test_a_burst_that_drains_is_ok(rabbit_vhost: RabbitVhost) -> None:
    """2,000 messages at once to a working consumer: never LEAK or STALL."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("burst")
    worker = await consumer(rabbit_vhost, "burst", work=0.001)
    try:
        async with watching(rabbit_vhost, SHORT) as w:
            await w.step()
            for n in range(2000):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"%d" % n), routing_key="burst"
                )
            await w.until(lambda r: r["burst"].sample.total_out >= 2000, 60)
            await w.until(lambda r: r["burst"].depth == 0, 30)
            for _ in range(3):
                rows = await w.step()
    finally:
        await worker.close()
    assert rows["burst"].verdict == Verdict.OK
    assert set(w.verdicts_of("burst")) <= {"OK", "BACKLOG"}


def _verdict(rows: dict[str, object], name: str) -> Verdict | None:
    row = rows.get(name)
    return getattr(row, "verdict", None)


async def test_qwatch_check_json_gives_the_verdicts_on_a_live_broker(
    rabbit_vhost: RabbitVhost,
) -> None:
    """The command an operator runs: result family LEAK, its x-expires twin
    not, a work queue whose consumer died STALL, a served one OK; exit 2."""
    channel = await rabbit_vhost.channel()
    for queue in ("served", "orphaned"):
        await channel.declare_queue(queue)
    served = await consumer(rabbit_vhost, "served")
    orphaned = await consumer(rabbit_vhost, "orphaned")
    workload = running(
        publish_forever(rabbit_vhost, "served", 0.1),
        publish_forever(rabbit_vhost, "orphaned", 0.1),
        one_offs(rabbit_vhost, "result", 0.3, message=b"{}"),
        one_offs(
            rabbit_vhost, "expiring", 0.3, message=b"{}", arguments={"x-expires": 2000}
        ),
    )
    # the override as a URL query key, so the check needs no config file
    url = f"{rabbit_vhost.url}?management_url={API}"
    command = [QWATCH, "check", "--json", "--for", "45s", "--window", "15s"]
    command += ["--stall-after", "15s", "--interval", "5s", url]
    try:
        async with workload:

            async def orphaned_consumed() -> bool:
                info = await rabbit_vhost.queue_info("orphaned")
                return bool(info.get("message_stats", {}).get("ack"))

            await eventually(orphaned_consumed, timeout=30)
            await orphaned.close()  # its worker dies as the check starts
            proc = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await proc.communicate()
    finally:
        await served.close()
    report = json.loads(out)
    families = {f["name"]: f for f in report["families"]}
    queues = {q["name"]: q for q in report["queues"]}
    assert report["targets"][0]["status"] == "ok"
    assert families["result.{hex}"]["verdict"] == "LEAK"
    assert families["expiring.{hex}"]["verdict"] != "LEAK"
    assert queues["orphaned"]["verdict"] == "STALL"
    assert queues["served"]["verdict"] == "OK"
    assert report["targets"][0]["server"]["memory_limit"] > 0
    assert proc.returncode == 2
