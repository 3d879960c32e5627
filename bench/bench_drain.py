"""Drain rate per backend: qwatch's drain against the plain client loop.

For each backend, N items go into a queue, then are taken out three times,
rounds interleaved: by ``qwatch.actions.drain`` as ``qwatch drain`` runs it
(fsync on the event loop), as the dashboard runs it (fsync in a worker thread),
and by the loop anyone would write with the same client: take an item
(redis-py LPOP, aio-pika consume, pymemcache get), write it, flush, fsync,
ack it. All write the same JSON Lines, one fsync per item, so the ratios show
what the kill-safety (holding key and removal after the write) and the layer
cost. Ratios above 1 mean qwatch is faster.

Servers: a throwaway redis-server, a private vhost on the local RabbitMQ, our
Starling-speaking server as a child process. Nothing else is touched: the
redis-server and the Starling child are terminated and their folders removed,
the vhost (with its queue) is deleted, drain files go to a temporary folder.

Prints a table of median rates (items/s) and one ratio line per backend.

Usage: ``python bench/bench_drain.py [--items 5000] [--rounds 3]
[--backends redis,rabbit,starling]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import redis.asyncio as aioredis
from pymemcache.client.base import Client as Memcache
from qwatch.adapters import adapter_for
from qwatch.adapters.base import Item

from qwatch import actions
from qwatch.drainfile import encode_item

AMQP = os.environ.get("QWATCH_TEST_RABBIT_AMQP", "amqp://guest:guest@127.0.0.1:5672")
API = os.environ.get("QWATCH_TEST_RABBIT_API", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")
QUEUE = "bench-jobs"

Fill = Callable[[int], Awaitable[None]]
Plain = Callable[[Path], Awaitable[int]]


def body(i: int) -> bytes:
    return f'{{"task": "bench", "id": {i}, "pad": "{"x" * 64}"}}'.encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PlainFile:
    """What the plain loops write: the same lines, flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "xb")  # noqa: SIM115 - closed by close()

    def put(self, data: bytes) -> None:
        line = json.dumps(encode_item(Item(data)), ensure_ascii=False) + "\n"
        self.file.write(line.encode())
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


@asynccontextmanager
async def redis_target() -> AsyncIterator[tuple[str, Fill, Plain]]:
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = aioredis.Redis.from_url(url)
    for _ in range(200):
        try:
            await client.ping()
            break
        except (ConnectionError, OSError, aioredis.ConnectionError):
            await asyncio.sleep(0.05)
    else:
        proc.terminate()
        shutil.rmtree(folder, ignore_errors=True)
        raise SystemExit("redis-server did not start")

    async def fill(n: int) -> None:
        for start in range(0, n, 1000):
            await client.rpush(
                QUEUE, *(body(i) for i in range(start, min(n, start + 1000)))
            )

    async def plain(path: Path) -> int:
        out, count = PlainFile(path), 0
        while (data := await client.lpop(QUEUE)) is not None:
            assert isinstance(data, bytes)
            out.put(data)
            count += 1
        out.close()
        return count

    try:
        yield url, fill, plain
    finally:
        await client.aclose()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def rabbit_target() -> AsyncIterator[tuple[str, Fill, Plain]]:
    vhost = f"qwatch-bench-{uuid.uuid4().hex[:8]}"
    seg = quote(vhost, safe="")
    async with httpx.AsyncClient(base_url=API, auth=AUTH, timeout=30) as api:
        (await api.put(f"/api/vhosts/{seg}")).raise_for_status()
        try:
            perms = {"configure": ".*", "write": ".*", "read": ".*"}
            path = f"/api/permissions/{seg}/guest"
            (await api.put(path, json=perms)).raise_for_status()
            conn = await aio_pika.connect(f"{AMQP}/{seg}")
            try:
                yield f"{AMQP}/{seg}", _rabbit_fill(conn), _rabbit_plain(conn)
            finally:
                await conn.close()
        finally:
            gone = await api.delete(f"/api/vhosts/{seg}")
            print(f"vhost {vhost} deleted: HTTP {gone.status_code}")


def _rabbit_fill(conn: aio_pika.abc.AbstractConnection) -> Fill:
    async def fill(n: int) -> None:
        channel = await conn.channel(publisher_confirms=True)
        await channel.declare_queue(QUEUE, durable=True)
        for start in range(0, n, 500):
            await asyncio.gather(*(
                channel.default_exchange.publish(
                    aio_pika.Message(body(i), delivery_mode=2), routing_key=QUEUE
                )
                for i in range(start, min(n, start + 500))
            ))  # fmt: skip
        await channel.close()

    return fill


def _rabbit_plain(conn: aio_pika.abc.AbstractConnection) -> Plain:
    async def plain(path: Path) -> int:
        out, count = PlainFile(path), 0
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=200)
        queue = await channel.declare_queue(QUEUE, passive=True)
        left = queue.declaration_result.message_count or 0
        async with queue.iterator() as messages:
            async for message in messages:
                out.put(message.body)
                await message.ack()
                count += 1
                if count >= left:
                    break
        await channel.close()
        out.close()
        return count

    return plain


@asynccontextmanager
async def starling_target() -> AsyncIterator[tuple[str, Fill, Plain]]:
    # A process of its own, like a real server: in a thread it would share
    # the GIL with whichever side is being measured.
    folder = tempfile.mkdtemp(prefix="bench-starling-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwatch.starling", "--port", "0",
         "--journal", folder],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().rsplit(":", 1)[1])
    except (ValueError, IndexError):
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
        raise SystemExit("the Starling server did not say its port") from None
    client = Memcache(("127.0.0.1", port), no_delay=True)

    async def fill(n: int) -> None:
        def put() -> None:
            for i in range(n):
                client.set(QUEUE, body(i), noreply=False)

        await asyncio.to_thread(put)

    async def plain(path: Path) -> int:
        def loop() -> int:
            out, count = PlainFile(path), 0
            while (data := client.get(QUEUE)) is not None:
                out.put(data)
                count += 1
            client.delete(QUEUE, noreply=False)
            out.close()
            return count

        return await asyncio.to_thread(loop)

    try:
        yield f"starling://127.0.0.1:{port}", fill, plain
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


TARGETS = {"redis": redis_target, "rabbit": rabbit_target, "starling": starling_target}


async def qwatch_drain(url: str, path: Path, offload: bool) -> int:
    """What ``qwatch drain`` runs (offload=False) or the dashboard (True)."""
    adapter = adapter_for(
        url, {"management_url": API} if url.startswith("amqp") else {}
    )
    await adapter.connect()
    try:
        guard = actions.Guard(url)
        out = await actions.drain(adapter, QUEUE, path, guard, offload=offload)
        return out.count
    finally:
        await adapter.close()


WHO = ("cli", "app", "plain")
"""qwatch's CLI drain, its dashboard drain (fsync in a thread), the plain loop."""


async def bench_one(name: str, items: int, rounds: int, folder: Path) -> dict[str, Any]:
    times: dict[str, list[float]] = {who: [] for who in WHO}
    async with TARGETS[name]() as (url, fill, plain):
        for r in range(rounds):
            for who in WHO:
                await fill(items)
                path = folder / f"{name}-{who}-{r}.jsonl"
                started = time.perf_counter()
                if who == "plain":
                    got = await plain(path)
                else:
                    got = await qwatch_drain(url, path, offload=who == "app")
                times[who].append(time.perf_counter() - started)
                assert got == items, f"{name} {who}: moved {got} of {items}"
    rate = {who: items / statistics.median(times[who]) for who in WHO}
    return {"backend": name, **rate}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="redis,rabbit,starling")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        os.environ["QWATCH_AUDIT_LOG"] = str(Path(tmp) / "audit.jsonl")
        results = [
            await bench_one(name, args.items, args.rounds, Path(tmp))
            for name in args.backends.split(",")
        ]
    print(f"{args.items} items, median of {args.rounds} rounds, fsync per item")
    print(f"{'backend':10} {'cli/s':>8} {'app/s':>8} {'plain/s':>8} "
          f"{'cli/plain':>10} {'app/plain':>10}")  # fmt: skip
    for res in results:
        name, cli, app, plain = res["backend"], res["cli"], res["app"], res["plain"]
        print(f"{name:10} {cli:8.0f} {app:8.0f} {plain:8.0f} "
              f"{cli / plain:10.2f} {app / plain:10.2f}")  # fmt: skip
    for res in results:
        name, plain = res["backend"], res["plain"]
        print(
            f"ratio {name}: qwatch drain (cli) / plain loop = "
            f"{res['cli'] / plain:.2f}x, dashboard drain / plain loop = "
            f"{res['app'] / plain:.2f}x (rates; above 1 = qwatch faster)"
        )


if __name__ == "__main__":
    asyncio.run(main())
