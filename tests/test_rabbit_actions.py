"""Drain, peek, purge and restore on the real broker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from fixtures_rabbit import RabbitVhost
from qwatch.adapters import adapter_for
from qwatch.adapters.base import ActionError, Item
from qwatch.adapters.rabbitmq import RabbitAdapter

from qwatch.model import Kind, Sample

HEX = "6f1c0a9e8b7d6c5f4e3d2c1b0a9988"


class ListSink:
    """Keeps items in memory; optionally fails on the n-th write, like a full disk."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.items: list[Item] = []
        self.fail_at = fail_at

    async def write(self, item: Item) -> None:
        if self.fail_at is not None and len(self.items) + 1 == self.fail_at:
            raise OSError("disk full")
        # JSON round trip: what a drain file would hold
        meta = json.loads(json.dumps(item.meta))
        self.items.append(Item(body=item.body, meta=meta))


async def adapter(vhost: RabbitVhost) -> RabbitAdapter:
    found = adapter_for(vhost.url, vhost.options)
    assert isinstance(found, RabbitAdapter)
    await found.connect()
    return found


async def fill(vhost: RabbitVhost, queue: str, count: int, **kw: object) -> None:
    channel = await vhost.channel()
    await channel.declare_queue(queue, **kw)  # type: ignore[arg-type]
    for n in range(count):
        await channel.default_exchange.publish(
            aio_pika.Message(b"m%d" % n, message_id=f"id{n}"), routing_key=queue
        )


async def ready(vhost: RabbitVhost, queue: str) -> int:
    channel = await vhost.channel()
    declared = await channel.declare_queue(queue, passive=True)
    await channel.close()
    assert declared.declaration_result.message_count is not None
    return declared.declaration_result.message_count


async def test_peek_leaves_messages_in_place_marked_redelivered(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Three from the head come back; the queue keeps all five in order."""
    await fill(rabbit_vhost, "jobs", 5)
    rabbit = await adapter(rabbit_vhost)
    try:
        items = await rabbit.peek("jobs", 3)
        assert [i.body for i in items] == [b"m0", b"m1", b"m2"]
        assert await ready(rabbit_vhost, "jobs") == 5
        again = await rabbit.peek("jobs", 10)
    finally:
        await rabbit.close()
    assert [i.body for i in again] == [b"m%d" % n for n in range(5)]
    assert [i.meta["redelivered"] for i in again] == [True] * 3 + [False] * 2
    assert "redelivered" in (RabbitAdapter.peek_side_effect or "")


async def test_drain_moves_every_message_in_order_and_empties_the_queue(
    rabbit_vhost: RabbitVhost,
) -> None:
    """All 500 reach the sink in order, with properties; none stay behind."""
    await fill(rabbit_vhost, "jobs", 500)
    rabbit, sink, counts = await adapter(rabbit_vhost), ListSink(), []
    try:
        moved = await rabbit.drain("jobs", sink, progress=counts.append)
    finally:
        await rabbit.close()
    assert moved == 500 and counts[-1] == 500
    assert [i.body for i in sink.items] == [b"m%d" % n for n in range(500)]
    assert sink.items[7].meta["properties"]["message_id"] == "id7"
    assert sink.items[7].meta["routing_key"] == "jobs"
    assert await ready(rabbit_vhost, "jobs") == 0


async def test_drain_acks_only_what_the_sink_holds(rabbit_vhost: RabbitVhost) -> None:
    """The sink fails on item 41: 40 are saved, the other 60 are still queued."""
    await fill(rabbit_vhost, "jobs", 100)
    rabbit, sink = await adapter(rabbit_vhost), ListSink(fail_at=41)
    try:
        with pytest.raises(OSError):
            await rabbit.drain("jobs", sink)
        assert len(sink.items) == 40
        assert await ready(rabbit_vhost, "jobs") == 60
        rest = ListSink()
        await rabbit.drain("jobs", rest)
    finally:
        await rabbit.close()
    bodies = [i.body for i in sink.items + rest.items]
    assert bodies == [b"m%d" % n for n in range(100)]


async def test_drain_stops_at_the_limit(rabbit_vhost: RabbitVhost) -> None:
    """``limit`` 10 of 30: ten saved, twenty left in the queue."""
    await fill(rabbit_vhost, "jobs", 30)
    rabbit, sink = await adapter(rabbit_vhost), ListSink()
    try:
        assert await rabbit.drain("jobs", sink, limit=10) == 10
    finally:
        await rabbit.close()
    assert await ready(rabbit_vhost, "jobs") == 20


async def test_restore_round_trips_bodies_and_properties(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Drain, JSON, restore elsewhere, drain again: byte-equal, same properties."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("src")
    await channel.declare_queue("dst")
    originals = [
        aio_pika.Message(
            bytes(range(256)),
            headers={"raw": bytearray(b"\x00\x01"), "n": 3, "s": "t", "l": [1, "a"]},
            content_type="application/octet-stream",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=5,
            correlation_id="c1",
            reply_to="replies",
            expiration=60,
            message_id="m-1",
            timestamp=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
            type="task",
            app_id="qwatch-test",
        ),
        aio_pika.Message("héllo".encode(), content_encoding="utf-8", message_id="m-2"),
    ]
    for message in originals:
        await channel.default_exchange.publish(message, routing_key="src")
    rabbit, first, second = await adapter(rabbit_vhost), ListSink(), ListSink()
    try:
        await rabbit.drain("src", first)
        assert await rabbit.restore("dst", _items(first.items)) == 2
        await rabbit.drain("dst", second)
    finally:
        await rabbit.close()
    assert [i.body for i in second.items] == [m.body for m in originals]
    assert [i.meta["properties"] for i in second.items] == [
        i.meta["properties"] for i in first.items
    ]
    props = second.items[0].meta["properties"]
    assert props["headers"]["raw"] == {"$bytes": "AAE="}
    assert (props["priority"], props["expiration"]) == (5, "60000")


async def test_restore_into_a_missing_queue_is_refused(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Nothing is published into the void: one clear ActionError."""
    rabbit = await adapter(rabbit_vhost)
    try:
        with pytest.raises(ActionError, match="no-such-queue"):
            await rabbit.restore("no-such-queue", _items([Item(b"x")]))
    finally:
        await rabbit.close()


async def test_purge_empties_named_queues_and_deletes_family_members_only(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Members go, look-alikes stay, a changed member is skipped and reported."""
    await fill(rabbit_vhost, "work", 4)
    members = [f"result.{HEX}{n:02x}" for n in range(3)]
    for name in members:
        await fill(rabbit_vhost, name, 1)
    await fill(rabbit_vhost, "result.", 1)
    await fill(rabbit_vhost, f"other.{HEX}00", 1)
    expected = {name: _sample(name, 1) for name in members}
    expected[members[2]] = _sample(members[2], 0)  # grew since the preview
    rabbit = await adapter(rabbit_vhost)
    try:
        family = await rabbit.purge(members, expected)
        plain = await rabbit.purge(["work"], {"work": _sample("work", 4)})
    finally:
        await rabbit.close()
    assert family.deleted == members[:2] and family.items == 2
    assert "changed since the preview" in family.skipped[members[2]]
    assert (plain.deleted, plain.items) == (["work"], 4)
    assert await ready(rabbit_vhost, "work") == 0
    for left in (members[2], "result.", f"other.{HEX}00"):
        assert await ready(rabbit_vhost, left) == 1
    channel = await rabbit_vhost.channel()
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await channel.declare_queue(members[0], passive=True)


async def test_purge_skips_a_member_that_gained_a_consumer(
    rabbit_vhost: RabbitVhost,
) -> None:
    """A reply queue someone now reads is left alone, and said so."""
    name = f"reply.{HEX}ff"
    await fill(rabbit_vhost, name, 0)
    reader = await rabbit_vhost.channel()
    queue = await reader.get_queue(name)

    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()

    await queue.consume(ignore)
    rabbit = await adapter(rabbit_vhost)
    try:
        result = await rabbit.purge([name, "gone-already"], {name: _sample(name, 0)})
    finally:
        await rabbit.close()
    assert result.deleted == []
    assert "consumer" in result.skipped[name]
    assert result.skipped["gone-already"] == "gone"


async def test_purge_with_expire_is_refused(rabbit_vhost: RabbitVhost) -> None:
    """RabbitMQ cannot set a TTL on an existing queue; it says so."""
    rabbit = await adapter(rabbit_vhost)
    try:
        with pytest.raises(ActionError, match="TTL"):
            await rabbit.purge(["x"], expire=60)
    finally:
        await rabbit.close()


async def test_action_on_a_missing_queue_is_one_clear_error(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Peek or drain of an unknown queue: ActionError naming it."""
    rabbit = await adapter(rabbit_vhost)
    try:
        with pytest.raises(ActionError, match="nowhere") as caught:
            await rabbit.drain("nowhere", ListSink())
        assert "\n" not in str(caught.value)
        with pytest.raises(ActionError, match="nowhere"):
            await rabbit.peek("nowhere", 1)
    finally:
        await rabbit.close()


def _sample(name: str, depth: int) -> Sample:
    return Sample(name=name, kind=Kind.QUEUE, depth=depth, unacked=0, consumers=0)


async def _items(items: list[Item]) -> AsyncIterator[Item]:
    for item in items:
        yield item
