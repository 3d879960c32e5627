"""Purge exactly the names given, skipping any that changed since the preview.

Each batch is WATCHed before its facts are read, so a key written between the
check and the DEL makes EXEC fail and the batch is checked again: nothing the
operator did not see is ever deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from qwatch.adapters.base import Progress, PurgeResult
from redis.exceptions import WatchError

from qwatch.model import Kind, Sample

BATCH = 100
"""Keys per WATCH/MULTI/EXEC round."""
TRIES = 5
"""Attempts at a batch whose keys keep changing under us."""
IDLE_SLACK = 1.5
"""OBJECT IDLETIME ticks in whole seconds."""
SIZE_CMD = {
    Kind.LIST: "LLEN",
    Kind.ZSET: "ZCARD",
    Kind.SET: "SCARD",
    Kind.HASH: "HLEN",
    Kind.STREAM: "XLEN",
}


async def purge_names(
    r: aioredis.Redis,
    names: Sequence[str],
    expected: dict[str, Sample] | None,
    progress: Progress | None,
    cancel: asyncio.Event | None,
    expire: float | None,
) -> PurgeResult:
    """Delete (or expire) ``names`` in batches, with progress and cancel."""
    result = PurgeResult()
    for start in range(0, len(names), BATCH):
        if cancel is not None and cancel.is_set():
            break
        await _batch(r, list(names[start : start + BATCH]), expected, expire, result)
        if progress is not None:
            progress(min(len(names), start + BATCH))
    return result


async def _batch(
    r: aioredis.Redis,
    names: list[str],
    expected: dict[str, Sample] | None,
    expire: float | None,
    result: PurgeResult,
) -> None:
    keys = [n.encode("utf-8", "surrogateescape") for n in names]
    async with r.pipeline(transaction=True) as pipe:
        for _ in range(TRIES):
            await pipe.watch(*keys)
            facts = await _facts(r, keys, expected, names)
            doomed = {}
            skipped = {}
            for name, key, fact in zip(names, keys, facts, strict=True):
                why = _changed(fact, expected.get(name) if expected else None, expected)
                if why:
                    skipped[name] = why
                else:
                    doomed[name] = (key, fact["size"])
            pipe.multi()  # type: ignore[no-untyped-call]
            for key, _ in doomed.values():
                if expire is None:
                    pipe.delete(key)
                else:
                    pipe.pexpire(key, max(1, round(expire * 1000)))
            try:
                await pipe.execute()
            except WatchError:
                continue  # one of them changed after the check: check again
            result.deleted += list(doomed)
            result.skipped.update(skipped)
            result.items += sum(size for _, size in doomed.values())
            return
    for name in names:
        result.skipped[name] = "kept changing while being purged"


async def _facts(
    r: aioredis.Redis,
    keys: list[bytes],
    expected: dict[str, Sample] | None,
    names: list[str],
) -> list[dict[str, Any]]:
    """Type, size, TTL and idle of each key, read on another connection.

    OBJECT IDLETIME goes first so the size read cannot reset it.
    """
    pipe = r.pipeline(transaction=False)
    for name, key in zip(names, keys, strict=True):
        sample = expected.get(name) if expected else None
        pipe.object("IDLETIME", key)
        pipe.type(key)
        pipe.pttl(key)
        size = SIZE_CMD.get(sample.kind, "EXISTS") if sample else "EXISTS"
        pipe.execute_command(size, key)
    replies = await pipe.execute(raise_on_error=False)
    return [
        {
            "idle": _int(replies[i]),
            "type": replies[i + 1].decode(),
            "ttl": _int(replies[i + 2]),
            "size": _int(replies[i + 3]) or 0,
        }
        for i in range(0, len(replies), 4)
    ]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _changed(
    fact: dict[str, Any], sample: Sample | None, expected: dict[str, Sample] | None
) -> str:
    """Why this key must be left alone, or "" to purge it."""
    if fact["type"] == "none":
        return "gone"
    if expected is None:
        return ""
    if sample is None:
        return "not in the preview"
    kind = fact["type"]
    if sample.kind is not Kind.OTHER and kind != sample.kind.value:
        return f"type changed: {sample.kind.value} -> {kind}"
    if sample.kind in SIZE_CMD and fact["size"] != sample.depth:
        return f"size changed: {sample.depth} -> {fact['size']}"
    if sample.ttl is None and fact["ttl"] is not None and fact["ttl"] >= 0:
        return "given a TTL"
    if sample.ttl is not None and fact["ttl"] == -1:
        return "TTL removed"
    idle = fact["idle"]
    # Our own polls touch containers on Redis < 7.2, so only keys we never
    # touch can tell a read apart; a container read shows as a size change.
    if sample.kind in SIZE_CMD or sample.idle is None or idle is None:
        return ""
    if idle + IDLE_SLACK < sample.idle:
        return f"read or written {idle} s ago"
    return ""
