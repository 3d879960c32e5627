"""Shared by the action tests: each backend seen the same way, and the CLI run
as a real process. Holds no tests itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aio_pika
import pytest
import redis.asyncio as aioredis
from qwatch.adapters import adapter_for
from qwatch.adapters.base import Adapter, Item
from qwatch.adapters.redis_items import stream_fields

CLI = [
    sys.executable,
    "-c",
    "import sys; from qwatch.cli import main; sys.exit(main())",
]
"""``qwatch`` as a subprocess, whatever PATH holds; exits with main's return
value, as the console script does."""


def bodies(count: int, seed: int) -> list[bytes]:
    """``count`` distinct bodies: text, unicode, binary and empty-ish ones."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            out.append(f'{{"task": "t", "id": {i}}}'.encode())
        elif kind == 1:
            out.append(f"caf\u00e9 \u4e2d {i}".encode())
        elif kind == 2:
            out.append(i.to_bytes(4, "big") + bytes([0xFF, 0x00]) + rng.randbytes(8))
        else:
            out.append(f"{i}\n\r\t\x00".encode())
    return out


def cli_env(audit_log: Path) -> dict[str, str]:
    """Environment for a CLI subprocess: private audit log, no read-only."""
    env = {k: v for k, v in os.environ.items() if k != "QWATCH_READ_ONLY"}
    env["QWATCH_AUDIT_LOG"] = str(audit_log)
    return env


def run_cli(args: Sequence[str], audit_log: Path, stdin: str = "") -> Any:
    """Run ``qwatch ARGS`` to the end; the CompletedProcess."""
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True,
        env=cli_env(audit_log), timeout=240,
    )  # fmt: skip


async def arun_cli(args: Sequence[str], audit_log: Path, stdin: str = "") -> Any:
    """:func:`run_cli` off the event loop, so fixtures' loops stay responsive."""
    return await asyncio.to_thread(run_cli, args, audit_log, stdin)


class Backend(Protocol):
    """One server as the action tests see it."""

    url: str
    options: dict[str, Any]

    async def fill(self, queue: str, items: Sequence[bytes]) -> None:
        """Put ``items`` in ``queue`` in order."""

    def saved(self, item: Item) -> bytes:
        """The original body an item of a drain file stands for."""

    async def contents(self) -> Counter[bytes]:
        """Every item the server holds for this test, in any queue or key."""

    async def items(self, queue: str) -> list[bytes]:
        """The items of ``queue`` in order, left in place."""

    async def settled(self) -> None:
        """Wait until a killed client's in-flight items are back."""

    async def depths(self) -> dict[str, int]:
        """Every queue of this test that exists, with its depth."""


@dataclass
class RedisBackend:
    """A private Redis database on the session's throwaway server.

    ``kind`` is the structure queues are made of: a list, a sorted set
    (score = position) or a stream (the body in field ``b``).
    """

    url: str
    client: aioredis.Redis
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = "list"

    async def fill(self, queue: str, items: Sequence[bytes]) -> None:
        base = await self.client.zcard(queue) if self.kind == "zset" else 0
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            if self.kind == "zset":
                scores = {b: base + start + i for i, b in enumerate(chunk)}
                await self.client.zadd(queue, scores)  # type: ignore[arg-type]
            elif self.kind == "stream":
                pipe = self.client.pipeline(transaction=False)
                for body in chunk:
                    pipe.xadd(queue, {"b": body})
                await pipe.execute()
            else:
                await self.client.rpush(queue, *chunk)

    async def contents(self) -> Counter[bytes]:
        """Items in every key, a drain's holding keys included."""
        found: Counter[bytes] = Counter()
        async for key in self.client.scan_iter(count=1000):
            found.update(await self._all(key))
        return found

    async def _all(self, key: bytes) -> list[bytes]:
        kind = await self.client.type(key)
        if kind == b"list":
            return list(await self.client.lrange(key, 0, -1))
        if kind == b"zset":
            return list(await self.client.zrange(key, 0, -1))
        if kind == b"stream":
            return [f[b"b"] for _, f in await self.client.xrange(key)]
        return []

    def saved(self, item: Item) -> bytes:
        """The original body an item of a drain file stands for."""
        if self.kind == "stream":
            return stream_fields(item)[b"b"]
        return item.body

    async def items(self, queue: str) -> list[bytes]:
        return await self._all(queue.encode())

    async def settled(self) -> None:
        return None

    async def depths(self) -> dict[str, int]:
        sizes = {b"list": "llen", b"string": "strlen", b"hash": "hlen",
                 b"zset": "zcard", b"stream": "xlen"}  # fmt: skip
        found: dict[str, int] = {}
        async for key in self.client.scan_iter(count=1000):
            kind = await self.client.type(key)
            size = await getattr(self.client, sizes[kind])(key)
            found[key.decode()] = 1 if kind == b"string" else size
        return found


@dataclass
class RabbitBackend:
    """A private vhost on the local broker."""

    url: str
    options: dict[str, Any]
    connection: aio_pika.abc.AbstractConnection
    queues: set[str] = field(default_factory=set)

    async def fill(self, queue: str, items: Sequence[bytes]) -> None:
        channel = await self.connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        self.queues.add(queue)
        for start in range(0, len(items), 500):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=2), routing_key=queue
                    )
                    for body in items[start : start + 500]
                )
            )
        await channel.close()

    def saved(self, item: Item) -> bytes:
        return item.body

    async def contents(self) -> Counter[bytes]:
        found: Counter[bytes] = Counter()
        for queue in self.queues:
            found.update(await self.items(queue))
        return found

    async def items(self, queue: str) -> list[bytes]:
        # Taken without ack, then the channel closes: the broker puts every
        # message back where it was.
        channel = await self.connection.channel()
        got: list[bytes] = []
        try:
            q = await channel.declare_queue(queue, passive=True)
            while (message := await q.get(no_ack=False, fail=False)) is not None:
                got.append(message.body)
        finally:
            await channel.close()
        await self.settled()
        return got

    async def settled(self) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            channel = await self.connection.channel()
            busy = 0
            for queue in self.queues:
                q = await channel.declare_queue(queue, passive=True)
                busy += q.declaration_result.consumer_count or 0
            await channel.close()
            if not busy:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("a killed consumer never went away")
            await asyncio.sleep(0.1)

    async def depths(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for queue in sorted(self.queues):
            channel = await self.connection.channel()
            try:
                q = await channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                continue
            found[queue] = q.declaration_result.message_count or 0
            await channel.close()
        return found


@contextlib.asynccontextmanager
async def connected(backend: Backend) -> AsyncIterator[Adapter]:
    """A connected qwatch adapter for the backend, closed afterwards."""
    adapter = adapter_for(backend.url, backend.options)
    await adapter.connect()
    try:
        yield adapter
    finally:
        await adapter.close()


@dataclass
class StarlingBackend:
    """Our Starling-speaking server, in-process, with a journal of its own.

    Items go in over the wire; tests read the server's own state to look,
    since every Starling read over the wire takes the item.
    """

    thread: Any
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.thread.url)

    async def fill(self, queue: str, items: Sequence[bytes]) -> None:
        from pymemcache.client.base import Client

        def put() -> None:
            client = Client(("127.0.0.1", self.thread.port), no_delay=True)
            for body in items:
                assert client.set(queue, body, noreply=False)
            client.close()

        await asyncio.to_thread(put)

    def _state(self) -> dict[str, list[bytes]]:
        def look() -> dict[str, list[bytes]]:
            queues = self.thread.server.qc.queues
            return {k.decode(): [e.data for e in q.items] for k, q in queues.items()}

        found: dict[str, list[bytes]] = self.thread.call(look)
        return found

    def saved(self, item: Item) -> bytes:
        return item.body

    async def contents(self) -> Counter[bytes]:
        found: Counter[bytes] = Counter()
        for items in (await asyncio.to_thread(self._state)).values():
            found.update(items)
        return found

    async def items(self, queue: str) -> list[bytes]:
        return (await asyncio.to_thread(self._state)).get(queue, [])

    async def settled(self) -> None:
        return None

    async def depths(self) -> dict[str, int]:
        state = await asyncio.to_thread(self._state)
        return {name: len(items) for name, items in state.items()}


def lost_and_doubled(
    original: Sequence[bytes], *held: Counter[bytes]
) -> tuple[Counter[bytes], Counter[bytes]]:
    """Items missing from every holder, and items held more than once."""
    total: Counter[bytes] = Counter()
    for part in held:
        total.update(part)
    want = Counter(original)
    return want - total, total - want


@pytest.fixture
def redis_backend(redis_db: tuple[str, aioredis.Redis]) -> RedisBackend:
    """A private database on the throwaway redis-server."""
    url, client = redis_db
    return RedisBackend(url, client)


@pytest.fixture(params=["list", "zset", "stream"])
def redis_kind_backend(
    redis_db: tuple[str, aioredis.Redis], request: pytest.FixtureRequest
) -> RedisBackend:
    """A private database whose queues are lists, sorted sets or streams."""
    url, client = redis_db
    return RedisBackend(url, client, kind=request.param)


@pytest.fixture
def starling_backend(starling: Any) -> StarlingBackend:
    """Our Starling-speaking server on a free port."""
    return StarlingBackend(starling)


@pytest.fixture
def rabbit_backend(rabbit_vhost: Any) -> RabbitBackend:
    """A private vhost on the local RabbitMQ."""
    return RabbitBackend(
        rabbit_vhost.url, rabbit_vhost.options, rabbit_vhost.connection
    )
