"""Leak, stall and burst scenarios replayed live on the real broker.

The management plugin refreshes counts every 5 s, so windows here are a few
stats intervals long; polls run every second to see each refresh promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from fixtures_rabbit import AMQP, RabbitVhost, Watcher
from qwatch.adapters import adapter_for
from qwatch.adapters.rabbitmq import RabbitAdapter

from qwatch.settings import Thresholds
from qwatch.verdicts import Verdict

pytestmark = pytest.mark.slow

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
        assert "expiring.{hex}" in rows
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
