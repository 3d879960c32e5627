"""Operator actions over AMQP: drain, peek, purge and restore.

Each works on one raw aiormq channel owned by the caller; closing that
channel requeues whatever was delivered and not acked, which is what makes a
drain killed at any moment lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiormq
from aiormq import spec
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage
from qwatch.adapters.base import ActionError, Item, ItemSink, Progress
from qwatch.adapters.rabbitmq_amqp import Counts
from qwatch.adapters.rabbitmq_props import item_from, properties_from_json

from qwatch.model import Sample

log = logging.getLogger(__name__)

PREFETCH = 200
"""Messages in flight to a drain; they go back to the queue if it stops."""
DRAIN_IDLE = 3.0
"""Seconds without a delivery after which a drain ends (another consumer
took what was left)."""


async def drain(
    raw: RawChannel,
    queue: str,
    sink: ItemSink,
    limit: int | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> int:
    """Consume with manual ack; ack each message only after ``sink.write``.

    Drains what the queue held when it started (up to ``limit``), so a busy
    queue does not keep the drain going forever.
    """
    ok = await raw.queue_declare(queue, passive=True)
    target = int(ok.message_count or 0)
    if limit is not None:
        target = min(target, limit)
    if target <= 0:
        return 0
    inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

    async def deliver(message: DeliveredMessage) -> None:
        inbox.put_nowait(message)

    await raw.basic_qos(prefetch_count=min(PREFETCH, target))
    consume = await raw.basic_consume(queue, deliver, no_ack=False)
    moved = 0
    try:
        while moved < target and not (cancel and cancel.is_set()):
            try:
                message = await asyncio.wait_for(inbox.get(), DRAIN_IDLE)
            except TimeoutError:
                break
            await sink.write(item_from(message))
            await raw.basic_ack(_tag(message))
            moved += 1
            if progress is not None:
                progress(moved)
    finally:
        # Prefetched messages not yet written return to the queue when the
        # caller closes the channel; cancelling first stops new deliveries.
        with contextlib.suppress(Exception):
            await raw.basic_cancel(str(consume.consumer_tag))
    return moved


async def peek(raw: RawChannel, queue: str, count: int) -> list[Item]:
    """Get up to ``count`` messages without ack, then requeue them all.

    The broker puts them back in their places but marks them redelivered.
    """
    items: list[Item] = []
    last_tag: int | None = None
    for _ in range(max(0, count)):
        message = await raw.basic_get(queue, no_ack=False)
        if not isinstance(message.delivery, spec.Basic.GetOk):
            break
        items.append(item_from(message))
        last_tag = _tag(message)
    if last_tag is not None:
        await raw.basic_nack(last_tag, multiple=True, requeue=True)
    return items


async def restore(raw: RawChannel, queue: str, items: AsyncIterator[Item]) -> int:
    """Publish items in order to the default exchange with their properties.

    Every publish waits for the broker's confirm, so the count returned is
    what the broker holds; ``mandatory`` turns a missing queue into an error.
    """
    await raw.queue_declare(queue, passive=True)
    written = 0
    async for item in items:
        props = properties_from_json(item.meta.get("properties"))
        result = await raw.basic_publish(
            item.body, exchange="", routing_key=queue, properties=props, mandatory=True
        )
        if isinstance(result, DeliveredMessage):
            raise ActionError(f"{queue}: broker returned message {written + 1}")
        if isinstance(result, spec.Basic.Nack):
            raise ActionError(f"{queue}: broker refused message {written + 1}")
        written += 1
    return written


def changed_since(expected: Sample | None, now: Counts) -> str | None:
    """Why a queue no longer matches the preview, or None when it does."""
    if expected is None:
        return None
    ready, consumers = now
    was_ready = expected.depth - (expected.unacked or 0)
    if ready != was_ready:
        return f"changed since the preview: {ready} ready, preview showed {was_ready}"
    if consumers > (expected.consumers or 0):
        return f"gained a consumer since the preview ({consumers} now)"
    return None


async def empty_queue(raw: RawChannel, queue: str, delete: bool) -> int:
    """Purge ``queue`` (or delete it when ``delete``); returns messages removed.

    Deleting uses ``if_unused`` so a queue that got a consumer stays.
    """
    if delete:
        done = await raw.queue_delete(queue, if_unused=True)
        return int(getattr(done, "message_count", 0) or 0)
    purged = await raw.queue_purge(queue)
    return int(getattr(purged, "message_count", 0) or 0)


CHANNEL_ERRORS = (
    aiormq.exceptions.ChannelNotFoundEntity,
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ChannelLockedResource,
)
"""Broker refusals that close the channel but leave the connection usable."""


def _tag(message: DeliveredMessage) -> int:
    tag = getattr(message.delivery, "delivery_tag", None)
    if not isinstance(tag, int):
        raise ActionError("broker sent a delivery without a tag")
    return tag
