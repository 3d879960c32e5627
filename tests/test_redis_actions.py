"""Peek, drain, purge and restore on a real throwaway redis-server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from qwatch.adapters.base import ActionError, Item
from qwatch.adapters.redis import RedisAdapter

from qwatch.families import Families

Db = tuple[str, aioredis.Redis]


class JsonlSink:
    """Items as JSON lines, each flushed and fsynced before write returns."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("ab")

    async def write(self, item: Item) -> None:
        """Persist one item."""
        line = {"body": base64.b64encode(item.body).decode(), "meta": item.meta}
        self.file.write(json.dumps(line).encode() + b"\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        """Close the file."""
        self.file.close()


def read_items(path: Path) -> list[Item]:
    """Items back from a file written by :class:`JsonlSink`; a torn last
    line (killed mid-write) is not an item."""
    items = []
    for line in path.read_bytes().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        items.append(Item(base64.b64decode(data["body"]), data["meta"]))
    return items


async def aiter_items(items: list[Item]) -> AsyncIterator[Item]:
    """A list as the async iterator restore takes."""
    for item in items:
        yield item


@pytest.fixture
async def adapter(redis_db: Db) -> AsyncIterator[RedisAdapter]:
    """An adapter on the test's own database."""
    actor = RedisAdapter(redis_db[0])
    yield actor
    await actor.close()


async def drain_to(adapter: RedisAdapter, queue: str, path: Path, **kw: Any) -> int:
    """Drain ``queue`` into a JSONL file."""
    sink = JsonlSink(path)
    try:
        return await adapter.drain(queue, sink, **kw)
    finally:
        sink.close()


async def test_peek_changes_nothing(adapter: RedisAdapter, redis_db: Db) -> None:
    """Peek returns head items of each kind and leaves every key as it was."""
    r = redis_db[1]
    await r.rpush("l", "a", "b", "c")
    await r.zadd("z", {"m1": 1.5, "m2": 2.5})
    await r.xadd("s", {"f": "v"})
    await r.hset("h", "field", "value")
    await r.set("k", "val", ex=50)
    before = await r.dbsize()
    assert [i.body for i in await adapter.peek("l", 2)] == [b"a", b"b"]
    z = await adapter.peek("z", 5)
    assert [(i.body, i.meta["score"]) for i in z] == [(b"m1", 1.5), (b"m2", 2.5)]
    (entry,) = await adapter.peek("s", 5)
    assert json.loads(entry.body) == [["f", "v"]] and "id" in entry.meta
    (field,) = await adapter.peek("h", 5)
    assert (field.body, field.meta["field"]) == (b"value", "field")
    (key,) = await adapter.peek("k", 5)
    assert key.body == b"val" and 0 < key.meta["ttl"] <= 50
    assert await r.dbsize() == before and await r.llen("l") == 3
    with pytest.raises(ActionError, match="no key named"):
        await adapter.peek("missing", 1)


async def test_drain_list_then_restore_round_trips(
    adapter: RedisAdapter, redis_db: Db, tmp_path: Path
) -> None:
    """Binary items leave the list into the file, and come back byte for byte."""
    r = redis_db[1]
    bodies = [os.urandom(random.randint(0, 40)) for _ in range(500)]
    await r.rpush("q", *bodies)
    path = tmp_path / "q.jsonl"
    seen: list[int] = []
    assert await drain_to(adapter, "q", path, progress=seen.append) == 500
    assert seen[-1] == 500 and not await r.exists("q", "qwatch:drain:q")
    assert [i.body for i in read_items(path)] == bodies
    assert await adapter.restore("q", aiter_items(read_items(path))) == 500
    assert await r.lrange("q", 0, -1) == bodies


async def test_drain_limit_and_cancel(
    adapter: RedisAdapter, redis_db: Db, tmp_path: Path
) -> None:
    """A limit stops at N; a set cancel event stops before taking any."""
    r = redis_db[1]
    await r.rpush("q", *range(50))
    assert await drain_to(adapter, "q", tmp_path / "a", limit=7) == 7
    assert await r.llen("q") == 43
    cancel = asyncio.Event()
    cancel.set()
    assert await drain_to(adapter, "q", tmp_path / "b", cancel=cancel) == 0
    assert await r.llen("q") == 43


@pytest.mark.parametrize("kind", ["zset", "stream", "hash", "set", "string"])
async def test_drain_and_restore_each_kind(
    kind: str, adapter: RedisAdapter, redis_db: Db, tmp_path: Path
) -> None:
    """Drain empties the key into the file; restore rebuilds the same content."""
    r = redis_db[1]
    if kind == "zset":
        await r.zadd("k", {f"m{i}".encode(): i * 1.5 for i in range(150)})
        dump = lambda: r.zrange("k", 0, -1, withscores=True)  # noqa: E731
    elif kind == "stream":
        for i in range(120):
            await r.xadd("k", {"n": str(i), "bin": os.urandom(4)})
        dump = lambda: _stream_fields(r)  # noqa: E731
    elif kind == "hash":
        await r.hset("k", mapping={f"f{i}": os.urandom(8) for i in range(130)})
        dump = lambda: r.hgetall("k")  # noqa: E731
    elif kind == "set":
        await r.sadd("k", *[f"m{i}" for i in range(120)])
        dump = lambda: r.smembers("k")  # noqa: E731
    else:
        await r.set("k", os.urandom(64), ex=300)
        dump = lambda: r.get("k")  # noqa: E731
    original = await dump()
    path = tmp_path / "k.jsonl"
    moved = await drain_to(adapter, "k", path)
    assert moved == len(read_items(path))
    # An emptied stream stays (with its groups); other kinds vanish.
    assert (await r.xlen("k") if kind == "stream" else await r.exists("k")) == 0
    assert await adapter.restore("k", aiter_items(read_items(path))) == moved
    assert await dump() == original
    if kind == "string":
        assert 0 < await r.ttl("k") <= 300


async def _stream_fields(r: aioredis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in await r.xrange("k")]


async def test_stream_entries_keep_their_ids_where_they_fit(
    adapter: RedisAdapter, redis_db: Db, tmp_path: Path
) -> None:
    """Into a new stream the saved ids come back; into the drained one (whose
    last id is taken) new ids are made, in the same order."""
    r = redis_db[1]
    for i in range(5):
        await r.xadd("s", {"n": str(i)})
    ids = [i for i, _ in await r.xrange("s")]
    path = tmp_path / "s.jsonl"
    assert await drain_to(adapter, "s", path) == 5
    assert await adapter.restore("t", aiter_items(read_items(path))) == 5
    assert [i for i, _ in await r.xrange("t")] == ids
    assert await adapter.restore("s", aiter_items(read_items(path))) == 5
    again = await r.xrange("s")
    assert [f[b"n"] for _, f in again] == [str(i).encode() for i in range(5)]
    assert again[0][0] > ids[-1]


class FailingSink:
    """Saves ``good`` items, then fails the way a full disk does."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.items: list[Item] = []

    async def write(self, item: Item) -> None:
        """Keep one item, or fail."""
        if len(self.items) >= self.good:
            raise OSError(28, "No space left on device")
        self.items.append(item)


@pytest.mark.parametrize("kind", ["list", "zset"])
async def test_a_failed_write_puts_held_items_back(
    kind: str, adapter: RedisAdapter, redis_db: Db
) -> None:
    """When the file fails mid-batch, what the holding key has goes back to
    the queue in order; the holding key is left empty."""
    r = redis_db[1]
    bodies = [f"job-{i:03}".encode() for i in range(250)]
    if kind == "list":
        await r.rpush("q", *bodies)
    else:
        await r.zadd("q", {b: i for i, b in enumerate(bodies)})
    sink = FailingSink(130)
    with pytest.raises(OSError):
        await adapter.drain("q", sink)
    assert [i.body for i in sink.items] == bodies[:130]
    left = await (r.lrange("q", 0, -1) if kind == "list" else r.zrange("q", 0, -1))
    assert left == bodies[130:]
    assert not await r.exists("qwatch:drain:q")


async def test_a_killed_drains_holding_list_is_saved_first(
    adapter: RedisAdapter, redis_db: Db, tmp_path: Path
) -> None:
    """Items a killed drain parked are written before the queue's own."""
    r = redis_db[1]
    await r.rpush("qwatch:drain:q", b"held-1", b"held-2")
    await r.rpush("q", b"a", b"b")
    path = tmp_path / "q.jsonl"
    assert await drain_to(adapter, "q", path) == 4
    assert [i.body for i in read_items(path)] == [b"held-1", b"held-2", b"a", b"b"]
    assert not await r.exists("q", "qwatch:drain:q")


async def test_family_purge_spares_look_alikes(
    adapter: RedisAdapter, redis_db: Db
) -> None:
    """Only family members go; a member changed since the preview is skipped."""
    r = redis_db[1]
    members = [f"celery-task-meta-{uuid.uuid4()}" for _ in range(250)]
    await r.mset(dict.fromkeys(members, "{}"))
    await r.set("celery-task-meta-x", "keep")
    await r.rpush("celery", "job")
    await r.set(f"other-task-{uuid.uuid4()}", "keep")
    snap = await adapter.poll()
    while not snap.complete:
        snap = await adapter.poll()
    snap = await adapter.poll()
    families = Families()
    preview = {
        s.name: s
        for s in snap.queues
        if families.matches("celery-task-meta-{uuid}", s.name)
    }
    assert sorted(preview) == sorted(members)
    await r.expire(members[0], 100)  # given a TTL after the preview
    await r.set(members[1], "{}", ex=None)  # rewritten: idle starts again
    await r.delete(members[2])
    done: list[int] = []
    result = await adapter.purge(list(preview), expected=preview, progress=done.append)
    assert result.skipped.keys() == {members[0], members[2]} | (
        result.skipped.keys() & {members[1]}
    )
    assert result.skipped[members[0]] == "given a TTL"
    assert result.skipped[members[2]] == "gone"
    assert len(result.deleted) == 250 - len(result.skipped)
    assert done[-1] == 250
    left = {k.decode() async for k in r.scan_iter()}
    assert {"celery-task-meta-x", "celery"} <= left
    assert len(left) == 3 + len(result.skipped) - 1


async def test_purge_expire_and_cancel(adapter: RedisAdapter, redis_db: Db) -> None:
    """expire= sets a TTL instead of deleting; cancel stops between batches."""
    r = redis_db[1]
    names = [f"res-{i}" for i in range(300)]
    await r.mset(dict.fromkeys(names, "1"))
    result = await adapter.purge(names[:10], expire=60)
    assert len(result.deleted) == 10 and 0 < await r.ttl("res-0") <= 60
    cancel = asyncio.Event()
    result = await adapter.purge(
        names[10:], progress=lambda n: cancel.set(), cancel=cancel
    )
    assert len(result.deleted) == 100  # one batch, then the cancel was seen
    assert await r.exists(*names[110:]) == 190


async def test_restore_also_returns_what_a_killed_drain_parked(
    adapter: RedisAdapter,
    redis_db: Db,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Restoring a killed drain's file puts its file back and the holding
    list's items too, so nothing stays stranded in ``qwatch:drain:q``."""
    from qwatch import actions
    from qwatch.drainfile import DrainWriter

    monkeypatch.setenv("QWATCH_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    r = redis_db[1]
    path = tmp_path / "killed.jsonl"
    with DrainWriter(path, redis_db[0], "q") as sink:
        for body in (b"a", b"b"):
            await sink.write(Item(body, {"kind": "list"}))
    await r.rpush("qwatch:drain:q", b"c", b"d")
    await r.rpush("q", b"e")
    out = await actions.restore(adapter, path, actions.Guard(redis_db[0]))
    assert (out.count, out.returned, out.queue) == (2, 2, "q")
    assert await r.lrange("q", 0, -1) == [b"c", b"d", b"e", b"a", b"b"]
    assert not await r.exists("qwatch:drain:q")
