"""Operator actions on Redis: peek, drain, purge and restore.

Drain never holds an item only in memory: lists move items with LMOVE into a
qwatch-owned holding list, sorted sets move them with their scores into a
holding sorted set inside MULTI/EXEC, and an item leaves the holding key only
once the sink has it on disk. A drain killed at any moment leaves every item
either on the server (queue or holding key) or in the file; the next drain of
the same queue writes out what the holding key still holds first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import redis.asyncio as aioredis
from qwatch.adapters.base import ActionError, Item, ItemSink, Progress, PurgeResult
from qwatch.adapters.redis_drain import DRAINS, holding, return_held
from qwatch.adapters.redis_items import from_item, keeps_ids, key_type, peek_items
from qwatch.adapters.redis_purge import purge_names
from redis.exceptions import RedisError

from qwatch.model import Sample

log = logging.getLogger(__name__)

RESTORE_BATCH = 500
"""Items written per pipeline on restore."""


class RedisActions:
    """Peek, drain, purge and restore, mixed into the Redis adapter."""

    url: str
    label: str
    can_drain = True
    can_purge = True
    can_peek = True
    can_expire = True
    peek_side_effect: ClassVar[str | None] = (
        "peeking resets the key's idle time, so it no longer looks unread"
    )
    _client: aioredis.Redis | None = None

    def client(self) -> aioredis.Redis:
        """The redis-py client actions use, made on first need."""
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.url)
        return self._client

    async def close_actions(self) -> None:
        """Close the actions' connection pool, if one was opened."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _kind(self, queue: str) -> str:
        kind = await key_type(self.client(), _key(queue))
        if kind == "none":
            raise ActionError(f"{self.label}: no key named {queue!r}")
        return kind

    async def peek(self, queue: str, count: int) -> list[Item]:
        """Up to ``count`` items from the head of ``queue``, left in place."""
        try:
            kind = await self._kind(queue)
            return await peek_items(self.client(), _key(queue), kind, count)
        except RedisError as exc:
            raise ActionError(f"{self.label}: peek {queue!r} failed: {exc}") from None

    async def drain(
        self,
        queue: str,
        sink: ItemSink,
        limit: int | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
    ) -> int:
        """Move items out to ``sink``, each leaving Redis only once it is saved."""
        client, key = self.client(), _key(queue)
        try:
            kind = await self._held_kind(queue)
            drainer = DRAINS.get(kind)
            if drainer is None:
                raise ActionError(f"{self.label}: cannot drain a {kind} key")
            moved = await drainer(client, key, sink, limit, progress, cancel)
        except RedisError as exc:
            raise ActionError(f"{self.label}: drain {queue!r} failed: {exc}") from None
        log.info("drained %d items from %s %r", moved, self.label, queue)
        return moved

    async def _held_kind(self, queue: str) -> str:
        """The queue's kind; a queue already emptied may still have a holding key."""
        client = self.client()
        kind = await key_type(client, _key(queue))
        if kind == "none":
            kind = await key_type(client, holding(_key(queue)))
        if kind == "none":
            raise ActionError(f"{self.label}: no key named {queue!r}")
        return kind

    async def purge(
        self,
        names: Sequence[str],
        expected: dict[str, Sample] | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
        expire: float | None = None,
    ) -> PurgeResult:
        """Delete exactly ``names`` (or expire them), skipping changed ones."""
        try:
            result = await purge_names(
                self.client(), names, expected, progress, cancel, expire
            )
        except RedisError as exc:
            raise ActionError(f"{self.label}: purge failed: {exc}") from None
        verb = "expired" if expire is not None else "deleted"
        log.info(
            "purge on %s: %s %d keys (%d items), skipped %d",
            self.label,
            verb,
            len(result.deleted),
            result.items,
            len(result.skipped),
        )
        return result

    async def return_held(self, queue: str) -> int:
        """Put back into ``queue`` what a killed drain of it left in its
        holding key; returns how many items."""
        try:
            return await return_held(self.client(), _key(queue))
        except RedisError as exc:
            raise ActionError(f"{self.label}: {queue!r}: {exc}") from None

    async def restore(self, queue: str, items: AsyncIterator[Item]) -> int:
        """Put items back in order (RPUSH, ZADD, XADD, HSET, SADD or SET);
        stream entries keep their ids where the stream allows it."""
        client, key, written = self.client(), _key(queue), 0
        batch: list[Item] = []
        keep: bool | None = None
        try:
            async for item in items:
                if keep is None:
                    keep = await keeps_ids(client, key, item)
                batch.append(item)
                if len(batch) >= RESTORE_BATCH:
                    written += await _write(client, key, batch, keep)
                    batch = []
            written += await _write(client, key, batch, bool(keep))
        except (RedisError, _Stopped) as exc:
            written += exc.done if isinstance(exc, _Stopped) else 0
            raise ActionError(
                f"{self.label}: restore into {queue!r} stopped after {written} "
                f"items: {exc}"
            ) from None
        log.info("restored %d items into %s %r", written, self.label, queue)
        return written


async def _write(
    client: aioredis.Redis, key: bytes, batch: list[Item], keep_ids: bool
) -> int:
    if not batch:
        return 0
    pipe = client.pipeline(transaction=False)
    for item in batch:
        from_item(pipe, key, item, keep_ids)
    replies = await pipe.execute(raise_on_error=False)
    for done, reply in enumerate(replies):
        if isinstance(reply, Exception):
            raise _Stopped(done, reply)
    return len(batch)


class _Stopped(Exception):
    """A restore batch failed part way; ``done`` of its items were written."""

    def __init__(self, done: int, cause: Exception) -> None:
        super().__init__(str(cause))
        self.done = done


def _key(name: str) -> bytes:
    """Key names travel as str; surrogates stand for bytes that were not UTF-8."""
    return name.encode("utf-8", "surrogateescape")
