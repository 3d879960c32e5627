"""Peek, drain, purge and restore on a real throwaway redis-server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from fixtures_redis import wait_until

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


CHILD = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from test_redis_actions import JsonlSink
from qwatch.adapters.redis import RedisAdapter

async def main():
    adapter = RedisAdapter({url!r})
    sink = JsonlSink(__import__("pathlib").Path({path!r}))
    await adapter.drain({queue!r}, sink)

asyncio.run(main())
"""


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.parametrize("kind", ["list", "zset"])
def test_drain_killed_loses_nothing(
    kind: str, redis_db: Db, tmp_path: Path
) -> None:
    """10,000 items, SIGKILL at random points 3 times, then a full drain:
    the file holds every item, with at most one duplicate per kill."""
    url = redis_db[0]
    import redis as sync_redis

    r = sync_redis.Redis.from_url(url)
    bodies = [f"item-{i}-{uuid.uuid4().hex[:6]}".encode() for i in range(10_000)]
    if kind == "list":
        r.rpush("work", *bodies)
    else:
        r.zadd("work", {b: i for i, b in enumerate(bodies)})
    path = tmp_path / "drain.jsonl"
    tests = str(Path(__file__).parent)
    code = CHILD.format(tests=tests, url=url, path=str(path), queue="work")
    kills = 3
    for _ in range(kills):
        target = _lines(path) + random.randint(300, 2000)
        child = subprocess.Popen([sys.executable, "-c", code])
        wait_until(lambda t=target: _lines(path) >= t or child.poll() is not None, 60)
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL  # killed mid-drain, not done
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    got = Counter(i.body for i in read_items(path))
    assert set(got) == set(bodies)
    assert sum(got.values()) - len(bodies) <= kills
    assert not r.exists("work", "qwatch:drain:work")
    r.close()


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
    result = await adapter.purge(names[10:], progress=lambda n: cancel.set(), cancel=cancel)
    assert len(result.deleted) == 100  # one batch, then the cancel was seen
    assert await r.exists(*names[110:]) == 190
