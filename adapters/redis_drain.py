"""Drains per kind of key, each losing nothing if killed at any moment.

The rule everywhere: an item is removed from Redis only after the sink said
it is on disk. So a kill leaves each item in the queue, in the holding key,
or in the file, and only the one item between "written" and "removed" can
end up in both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

import redis.asyncio as aioredis
from qwatch.adapters.base import Item, ItemSink, Progress
from qwatch.adapters.redis_items import (
    command,
    hash_item,
    key_type,
    list_range,
    stream_item,
    stream_range,
    string_item,
    zset_range,
)
from redis.exceptions import RedisError, WatchError

log = logging.getLogger(__name__)

BATCH = 100
"""Items moved to the holding key per round trip."""

Drainer = Callable[
    [
        aioredis.Redis,
        bytes,
        ItemSink,
        int | None,
        Progress | None,
        asyncio.Event | None,
    ],
    Awaitable[int],
]


def holding(key: bytes) -> bytes:
    """The qwatch-owned key a drain of ``key`` parks items in."""
    return b"qwatch:drain:" + key


class _Count:
    """Running count of items written, with limit, progress and cancel."""

    def __init__(
        self, limit: int | None, progress: Progress | None, cancel: asyncio.Event | None
    ) -> None:
        self.done, self.limit, self.progress, self.cancel = 0, limit, progress, cancel

    def want(self) -> int:
        """How many to take next; 0 when the limit is reached or cancelled."""
        if self.cancel is not None and self.cancel.is_set():
            return 0
        if self.limit is None:
            return BATCH
        return max(0, min(BATCH, self.limit - self.done))

    def one(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done)


async def drain_list(
    r: aioredis.Redis,
    key: bytes,
    sink: ItemSink,
    limit: int | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> int:
    """LMOVE into the holding list, write, then LREM from the holding list."""
    count, hold = _Count(limit, progress, cancel), holding(key)
    await _left_over(r, hold, "llen")
    try:
        await _flush_list(r, hold, sink, count)  # what a killed drain left
        while want := count.want():
            pipe = r.pipeline(transaction=False)
            for _ in range(want):
                pipe.execute_command("LMOVE", key, hold, "LEFT", "RIGHT")
            if not any(x is not None for x in await pipe.execute()):
                break
            await _flush_list(r, hold, sink, count)
    except Exception:
        await _put_back(r, hold, key, _unhold_list)
        raise
    return count.done


async def _flush_list(
    r: aioredis.Redis, hold: bytes, sink: ItemSink, c: _Count
) -> None:
    for body in await list_range(r, hold):
        await sink.write(Item(body, {"kind": "list"}))
        # LREM of the saved value, not LPOP: a second drain of the same queue
        # flushing the same holding list then doubles items, never drops one.
        await command(r, "LREM", hold, 1, body)
        c.one()


async def _unhold_list(r: aioredis.Redis, hold: bytes, key: bytes) -> None:
    """Back to the head of the queue, in order, one atomic LMOVE each."""
    while await command(r, "LMOVE", hold, key, "RIGHT", "LEFT") is not None:
        pass


async def return_held(r: aioredis.Redis, key: bytes) -> int:
    """Put back what a killed drain of ``key`` parked; returns how many.

    The items go to the head of the queue, where they were taken from; the
    one the killed drain was saving may also be in its file.
    """
    hold = holding(key)
    kind = await key_type(r, hold)
    if kind == "list":
        held = int(await r.llen(hold))
        await _unhold_list(r, hold, key)
    elif kind == "zset":
        held = int(await r.zcard(hold))
        await _unhold_zset(r, hold, key)
    else:
        return 0
    log.warning("returned %d items a stopped drain left in %r", held, hold)
    return held


async def _left_over(r: aioredis.Redis, hold: bytes, size: str) -> None:
    held = await getattr(r, size)(hold)
    if held:
        log.warning("%d items a stopped drain left in %r are saved first", held, hold)


async def _put_back(
    r: aioredis.Redis,
    hold: bytes,
    key: bytes,
    unhold: Callable[[aioredis.Redis, bytes, bytes], Awaitable[None]],
) -> None:
    """After a failed write, return what the holding key has to the queue, so
    consumers see it again; if Redis fails too, the next drain saves it."""
    try:
        await unhold(r, hold, key)
    except RedisError as exc:
        log.error("items stay in %r until the next drain: %s", hold, exc)


async def drain_zset(
    r: aioredis.Redis,
    key: bytes,
    sink: ItemSink,
    limit: int | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> int:
    """Move lowest-scored members with their scores to a holding zset in
    MULTI/EXEC (ZPOPMIN would hold them only in memory), write, then ZREM."""
    count, hold = _Count(limit, progress, cancel), holding(key)
    await _left_over(r, hold, "zcard")
    try:
        await _flush_zset(r, hold, sink, count)
        while want := count.want():
            if not await _move_zset(r, key, hold, want):
                break
            await _flush_zset(r, hold, sink, count)
    except Exception:
        await _put_back(r, hold, key, _unhold_zset)
        raise
    return count.done


async def _move_zset(r: aioredis.Redis, key: bytes, hold: bytes, want: int) -> bool:
    """Move the ``want`` lowest members with their scores, atomically."""
    async with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                pairs = await zset_range(pipe, key, want - 1)
                if not pairs:
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.zrem(key, *(m for m, _ in pairs))
                pipe.zadd(hold, dict(pairs))
                await pipe.execute()
                return True
            except WatchError:
                continue  # someone changed it between read and move: again


async def _unhold_zset(r: aioredis.Redis, hold: bytes, key: bytes) -> None:
    """Back into the queue with their scores, in one MULTI/EXEC."""
    async with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(hold)
                pairs = await zset_range(pipe, hold)
                if not pairs:
                    return
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.zadd(key, dict(pairs))
                pipe.delete(hold)
                await pipe.execute()
                return
            except WatchError:
                continue


async def _flush_zset(
    r: aioredis.Redis, hold: bytes, sink: ItemSink, c: _Count
) -> None:
    for member, score in await zset_range(r, hold):
        await sink.write(Item(member, {"kind": "zset", "score": score}))
        await r.zrem(hold, member)
        c.one()


async def drain_stream(
    r: aioredis.Redis,
    key: bytes,
    sink: ItemSink,
    limit: int | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> int:
    """XRANGE, write, then XDEL: the entry stays in the stream until saved."""
    count = _Count(limit, progress, cancel)
    while want := count.want():
        entries = await stream_range(r, key, want)
        if not entries:
            break
        for entry_id, fields in entries:
            await sink.write(stream_item(entry_id, fields))
            await r.xdel(key, entry_id)
            count.one()
    return count.done


async def drain_hash(
    r: aioredis.Redis,
    key: bytes,
    sink: ItemSink,
    limit: int | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> int:
    """Write each field, then HDEL it unless it changed meanwhile."""
    count = _Count(limit, progress, cancel)
    while want := count.want():
        _, found = await r.hscan(key, 0, count=want)
        fields = cast(dict[bytes, bytes], found)
        if not fields:
            break
        for field, value in list(fields.items())[:want]:
            await sink.write(hash_item(field, value))
            await _remove_if(r, key, value, field)
            count.one()
    return count.done


async def drain_set(
    r: aioredis.Redis,
    key: bytes,
    sink: ItemSink,
    limit: int | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> int:
    """Write each member, then SREM it."""
    count = _Count(limit, progress, cancel)
    while want := count.want():
        members = cast(list[bytes], await r.srandmember(key, want))
        if not members:
            break
        for member in members:
            await sink.write(Item(member, {"kind": "set"}))
            await r.srem(key, member)
            count.one()
    return count.done


async def drain_string(
    r: aioredis.Redis,
    key: bytes,
    sink: ItemSink,
    limit: int | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> int:
    """Write the value (with its TTL), then DEL unless it changed meanwhile."""
    count = _Count(limit, progress, cancel)
    if not count.want():
        return 0
    item = await string_item(r, key)
    await sink.write(item)
    await _remove_if(r, key, item.body)
    count.one()
    return count.done


async def _remove_if(
    r: aioredis.Redis, key: bytes, value: bytes, field: bytes | None = None
) -> None:
    """Delete the saved value only if it is still the same (WATCH/MULTI)."""
    async with r.pipeline(transaction=True) as pipe:
        while True:
            await pipe.watch(key)
            got = pipe.hget(key, field) if field is not None else pipe.get(key)
            if await got != value:
                return  # changed after it was saved: the new value stays
            pipe.multi()  # type: ignore[no-untyped-call]
            if field is not None:
                pipe.hdel(key, field)
            else:
                pipe.delete(key)
            try:
                await pipe.execute()
                return
            except WatchError:
                # Another field of the hash (or the key) changed: look again,
                # rather than leave a saved field behind to be saved twice.
                continue


DRAINS: dict[str, Drainer] = {
    "list": drain_list,
    "zset": drain_zset,
    "stream": drain_stream,
    "hash": drain_hash,
    "set": drain_set,
    "string": drain_string,
}
