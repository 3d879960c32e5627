"""Redis poll speed against ``redis-cli --bigkeys``, and memory per queue.

Starts its own redis-server on a free port, fills it with 100,000 mixed keys
(60% result strings, the rest lists, sorted sets, sets, hashes and a few
streams), then in the same run times:

* ``redis-cli --bigkeys`` over the same keys (the peer);
* one full poll, discovery included (SCAN bounds lifted so one poll walks
  everything), and the default spread-out discovery, summed over its polls;
* a steady poll once every key's type is known (median of 5);
* memory held per tracked queue: tracemalloc over a Tracker fed 5 snapshots
  of the 100,000 keys, and over the adapter's own per-key state.

Run: ``.venv/bin/python bench/bench_redis.py [--keys N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import tracemalloc
import uuid

import redis

from qwatch.adapters.redis import RedisAdapter
from qwatch.tracker import Tracker


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: str) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway redis-server, answering PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", folder]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def fill(port: int, count: int) -> None:
    """``count`` keys: 60% strings, 9% each list/zset/set/hash, 4% streams."""
    r = redis.Redis(port=port)
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        slot = i % 100
        if slot < 60:
            pipe.set(f"celery-task-meta-{uuid.uuid4()}", '{"status": "SUCCESS"}')
        elif slot < 69:
            pipe.rpush(f"queue:{i}", "a", "b", "c")
        elif slot < 78:
            pipe.zadd(f"schedule:{i}", {"a": time.time() + 60, "b": 1})
        elif slot < 87:
            pipe.sadd(f"set:{i}", "a", "b")
        elif slot < 96:
            pipe.hset(f"hash:{i}", mapping={"a": 1, "b": 2})
        else:
            pipe.xadd(f"stream:{i}", {"a": "1"})
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    assert r.dbsize() == count


def bigkeys(port: int) -> float:
    """Seconds ``redis-cli --bigkeys`` needs."""
    started = time.perf_counter()
    subprocess.run(
        ["redis-cli", "-p", str(port), "--bigkeys"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


async def full_poll(url: str) -> tuple[float, float, int]:
    """One poll walking everything; then default discovery summed over polls."""
    one = RedisAdapter(url, {"scan_calls": 1_000_000})
    started = time.perf_counter()
    snap = await one.poll()
    single = time.perf_counter() - started
    assert snap.complete
    await one.close()
    spread = RedisAdapter(url)
    started, polls = time.perf_counter(), 0
    while True:
        polls += 1
        if (await spread.poll()).complete:
            break
    total = time.perf_counter() - started
    await spread.close()
    return single, total, polls


async def steady_and_memory(url: str, count: int) -> tuple[float, float, float]:
    """Median steady poll; bytes per queue in the tracker and the adapter."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    adapter = RedisAdapter(url, {"scan_calls": 1_000_000})
    await adapter.poll()
    gc.collect()
    adapter_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await adapter.poll()
        times.append(time.perf_counter() - started)
    snaps = [await adapter.poll() for _ in range(5)]
    await adapter.close()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracker = Tracker("bench")
    for snap in snaps:
        tracker.update(snap)
    del snaps, snap
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(tracker.queues) == count
    return statistics.median(times), held / count, adapter_bytes / count


def main() -> None:
    """Fill, measure, print ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    count = parser.parse_args().keys
    with tempfile.TemporaryDirectory() as folder:
        proc, port = start_server(folder)
        try:
            fill(port, count)
            url = f"redis://127.0.0.1:{port}/0"
            peer = bigkeys(port)
            single, spread, polls = asyncio.run(full_poll(url))
            steady, per_queue, per_key = asyncio.run(steady_and_memory(url, count))
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"keys: {count:,}")
    print(f"redis-cli --bigkeys:        {peer:6.3f} s")
    print(f"full poll, one pass:        {single:6.3f} s = {single / peer:.2f}x bigkeys")
    print(
        f"default discovery, {polls} polls: {spread:6.3f} s = "
        f"{spread / peer:.2f}x bigkeys"
    )
    print(f"steady poll (median of 5):  {steady:6.3f} s  (target < 0.25 s)")
    print(f"tracker memory per queue:   {per_queue:,.0f} bytes (5 polls held)")
    print(f"adapter memory per key:     {per_key:,.0f} bytes")


if __name__ == "__main__":
    main()
