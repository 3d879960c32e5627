"""Redis entries as :class:`Item` and back: peeking and restoring.

Every item says the kind of key it came from in ``meta["kind"]``, so a drain
file restores into the same structure. Names and stream fields go into JSON,
so bytes that are not UTF-8 travel as ``{"b64": ...}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import redis.asyncio as aioredis
from qwatch.adapters.base import ActionError, Item
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

# redis-py's stubs type every reply as ``bytes | str`` (decode_responses is a
# runtime choice); qwatch never decodes, so these say what arrives.
Pairs = list[tuple[bytes, float]]
Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def command(client: aioredis.Redis, *args: bytes | str | int) -> Any:
    """One raw command; for those whose stubs refuse bytes keys (LMOVE, LREM)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


async def key_type(client: aioredis.Redis, key: bytes) -> str:
    """TYPE, as text: ``list``, ``zset``, ..., or ``none``."""
    return cast(bytes, await client.type(key)).decode()


async def list_range(client: aioredis.Redis, key: bytes, stop: int = -1) -> list[bytes]:
    """LRANGE from the head to ``stop``."""
    return cast(list[bytes], await client.lrange(key, 0, stop))


async def zset_range(client: aioredis.Redis, key: bytes, stop: int = -1) -> Pairs:
    """The lowest members to ``stop``, with their scores."""
    return cast(Pairs, await client.zrange(key, 0, stop, withscores=True))


async def stream_range(client: aioredis.Redis, key: bytes, count: int) -> Entries:
    """The first ``count`` stream entries."""
    return cast(Entries, await client.xrange(key, count=count))


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
        rows = await list_range(client, key, count - 1)
        return [Item(body, {"kind": "list"}) for body in rows]
    if kind == "zset":
        pairs = await zset_range(client, key, count - 1)
        return [Item(m, {"kind": "zset", "score": s}) for m, s in pairs]
    if kind == "stream":
        entries = await stream_range(client, key, count)
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
    pipe.get(key)
    pipe.pttl(key)
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


def stream_id(text: Any) -> tuple[int, int] | None:
    """``1700000000000-3`` as a pair that sorts the way Redis orders ids."""
    ms, _, seq = str(text).partition("-")
    if not (ms.isdigit() and (seq or "0").isdigit()):
        return None
    return int(ms), int(seq or 0)


async def keeps_ids(client: aioredis.Redis, key: bytes, first: Item) -> bool:
    """Whether stream entries can go back under their own ids: into a new
    stream, or one whose last id is older than the first saved id (XADD
    refuses an id at or below the last one ever generated)."""
    wanted = stream_id(first.meta.get("id"))
    if first.meta.get("kind") != "stream" or wanted is None:
        return False
    try:
        info = await client.xinfo_stream(key)
    except ResponseError:
        return True  # no such key yet (a wrong type fails at the XADD)
    last = stream_id(_text(info.get("last-generated-id", b"")))
    return last is None or wanted > last


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def from_item(pipe: Pipeline, key: bytes, item: Item, keep_id: bool = False) -> None:
    """Queue the command that puts ``item`` back, by the kind it came from."""
    kind = item.meta.get("kind", "list")
    if kind == "zset":
        pipe.zadd(key, {item.body: float(item.meta.get("score", 0))})
    elif kind == "stream":
        entry_id = str(item.meta["id"]) if keep_id and "id" in item.meta else "*"
        pipe.xadd(key, stream_fields(item), id=entry_id)  # type: ignore[arg-type]
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
