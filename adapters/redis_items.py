"""Redis entries as :class:`Item` and back: peeking and restoring.

Every item says the kind of key it came from in ``meta["kind"]``, so a drain
file restores into the same structure. Names and stream fields go into JSON,
so bytes that are not UTF-8 travel as ``{"b64": ...}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import redis.asyncio as aioredis
from qwatch.adapters.base import ActionError, Item
from redis.asyncio.client import Pipeline


def enc(raw: bytes) -> Any:
    """Text when it is UTF-8, else ``{"b64": ...}``."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode()}


def dec(value: Any) -> bytes:
    """The bytes :func:`enc` stood for."""
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return str(value).encode()


def stream_item(entry_id: bytes, fields: dict[bytes, bytes]) -> Item:
    """A stream entry: its fields as a JSON list of pairs, its id in meta."""
    pairs = [[enc(k), enc(v)] for k, v in fields.items()]
    body = json.dumps(pairs, separators=(",", ":")).encode()
    return Item(body, {"kind": "stream", "id": entry_id.decode()})


def stream_fields(item: Item) -> dict[bytes, bytes]:
    """The fields of a stream entry made by :func:`stream_item`."""
    try:
        pairs = json.loads(item.body)
        return {dec(k): dec(v) for k, v in pairs}
    except (ValueError, TypeError, KeyError) as exc:
        raise ActionError(f"not a stream entry: {exc}") from None


def hash_item(field: bytes, value: bytes) -> Item:
    """A hash field: the value is the body, the field goes in meta."""
    return Item(value, {"kind": "hash", "field": enc(field)})


async def peek_items(
    client: aioredis.Redis, key: bytes, kind: str, count: int
) -> list[Item]:
    """Up to ``count`` entries from the head of ``key``, read-only."""
    if kind == "list":
        rows = await client.lrange(key, 0, count - 1)
        return [Item(body, {"kind": "list"}) for body in rows]
    if kind == "zset":
        pairs = await client.zrange(key, 0, count - 1, withscores=True)
        return [Item(m, {"kind": "zset", "score": s}) for m, s in pairs]
    if kind == "stream":
        entries = await client.xrange(key, count=count)
        return [stream_item(i, f) for i, f in entries]
    if kind == "hash":
        return [hash_item(f, v) async for f, v in _first(client.hscan_iter(key), count)]
    if kind == "set":
        return [
            Item(m, {"kind": "set"})
            async for m in _first(client.sscan_iter(key), count)
        ]
    if kind == "string":
        return [await string_item(client, key)]
    raise ActionError(f"cannot peek into a {kind} key")


async def string_item(client: aioredis.Redis, key: bytes) -> Item:
    """A plain key as one item, with its TTL."""
    pipe = client.pipeline(transaction=False)
    pipe.get(key).pttl(key)
    body, ttl = await pipe.execute()
    meta: dict[str, Any] = {"kind": "string"}
    if ttl is not None and ttl >= 0:
        meta["ttl"] = ttl / 1000
    return Item(body or b"", meta)


async def _first(found: Any, count: int) -> Any:
    if count <= 0:
        return
    seen = 0
    async for entry in found:
        yield entry
        seen += 1
        if seen >= count:
            return


def from_item(pipe: Pipeline, key: bytes, item: Item) -> None:
    """Queue the command that puts ``item`` back, by the kind it came from."""
    kind = item.meta.get("kind", "list")
    if kind == "zset":
        pipe.zadd(key, {item.body: float(item.meta.get("score", 0))})
    elif kind == "stream":
        pipe.xadd(key, stream_fields(item))  # type: ignore[arg-type]
    elif kind == "hash":
        pipe.hset(key, dec(item.meta["field"]), item.body)
    elif kind == "set":
        pipe.sadd(key, item.body)
    elif kind == "string":
        ttl = item.meta.get("ttl")
        pipe.set(key, item.body, px=round(ttl * 1000) if ttl else None)
    else:
        # Items from other servers, and lists, are pushed in file order.
        pipe.rpush(key, item.body)
