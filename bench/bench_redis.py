"""Redis poll speed against ``redis-cli --bigkeys``, and memory per queue.

Starts its own redis-server on a free port, fills it with 100,000 mixed keys
(60% result strings, the rest lists, sorted sets, sets, hashes and a few
streams), then in the same run times:

* ``redis-cli --bigkeys`` over the same keys (the peer), median of 3; it is
  bound by round trips (a small SCAN batch, then its TYPE and size replies,
  each waited for), so it swings with scheduling on a busy machine: the ratio
  of minimums is printed too;
* one full poll by a fresh adapter, discovery included (SCAN bounds lifted so
  one poll walks everything), median of 3, interleaved with bigkeys; and the
  default spread-out discovery, summed over its polls;
* a steady poll once every key's type is known (median of 7), as qwatch runs
  it (default SCAN bounds: 25 calls of 1,000 carry discovery on); and, for
  comparison only, with SCAN bounds lifted, so every poll also walks the
  whole key space again;
* memory per tracked queue: what a Tracker fed 5 snapshots frees when it is
  dropped (histories, families, and the last Sample of every queue, which it
  keeps), and the adapter's own per-key state. Names are shared between the
  two and counted once, in the adapter.

Prints ratio lines against bigkeys and each goal (full poll < 0.3x bigkeys,
steady poll of 100,000 known keys < 0.25 s) as met or MISSED. The
redis-server is terminated and its folder removed afterwards.

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


async def full_poll(url: str) -> float:
    """One poll by a fresh adapter that walks everything."""
    one = RedisAdapter(url, {"scan_calls": 1_000_000})
    started = time.perf_counter()
    snap = await one.poll()
    single = time.perf_counter() - started
    assert snap.complete and len(snap.queues) == snap.server["keys"]
    await one.close()
    return single


async def spread_discovery(url: str) -> tuple[float, int]:
    """The default discovery: seconds summed over the polls it needs."""
    spread = RedisAdapter(url)
    started, polls = time.perf_counter(), 0
    while True:
        polls += 1
        if (await spread.poll()).complete:
            break
    total = time.perf_counter() - started
    await spread.close()
    return total, polls


async def steady(url: str, count: int, options: dict[str, int]) -> float:
    """Median poll once every key's type is known."""
    adapter = RedisAdapter(url, options)
    while not (await adapter.poll()).complete:
        pass
    await adapter.poll()  # sizes of strings read, idle bookkeeping started
    times = []
    for _ in range(7):
        started = time.perf_counter()
        snap = await adapter.poll()
        times.append(time.perf_counter() - started)
        assert len(snap.queues) == count
        del snap
    await adapter.close()
    return statistics.median(times)


async def memory(url: str, count: int) -> tuple[float, float]:
    """Bytes per queue held by a Tracker after 5 polls, and by the adapter."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    adapter = RedisAdapter(url, {"scan_calls": 1_000_000})
    await adapter.poll()
    gc.collect()
    adapter_bytes = tracemalloc.get_traced_memory()[0] - base
    tracker = Tracker("bench")
    for _ in range(5):
        tracker.update(await adapter.poll())
    await adapter.close()
    assert len(tracker.queues) == count
    gc.collect()
    with_tracker = tracemalloc.get_traced_memory()[0]
    del tracker
    gc.collect()
    held = with_tracker - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / count, adapter_bytes / count


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


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
            peers, fulls = [], []
            for _ in range(3):  # interleaved, so drift hits both alike
                peers.append(bigkeys(port))
                fulls.append(asyncio.run(full_poll(url)))
            spread, polls = asyncio.run(spread_discovery(url))
            quiet = asyncio.run(steady(url, count, {}))
            rescan = asyncio.run(steady(url, count, {"scan_calls": 1_000_000}))
            per_queue, per_key = asyncio.run(memory(url, count))
        finally:
            proc.terminate()
            proc.wait(10)
    peer, single = statistics.median(peers), statistics.median(fulls)
    runs = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(fulls, peers, strict=True))
    print(f"keys: {count:,}")
    print(f"redis-cli --bigkeys (median of 3):   {peer:6.3f} s")
    print(f"full poll, one pass (median of 3):   {single:6.3f} s  (runs {runs})")
    print(f"default discovery, {polls} polls, summed: {spread:6.3f} s")
    print(f"steady poll, default SCAN (med. 7):  {quiet:6.3f} s")
    print(f"steady poll, full SCAN each poll:    {rescan:6.3f} s  (comparison only)")
    print(f"tracker memory per queue:   {per_queue:,.0f} bytes (5 polls held)")
    print(f"adapter memory per key:     {per_key:,.0f} bytes")
    print(
        f"ratio full poll / bigkeys:          {single / peer:.2f}x "
        f"(medians; minimums {min(fulls) / min(peers):.2f}x)"
    )
    print(f"ratio default discovery / bigkeys:  {spread / peer:.2f}x")
    print(f"ratio steady poll / bigkeys:        {quiet / peer:.2f}x")
    print(f"goal full poll < 0.3x bigkeys: {verdict(single / peer < 0.3)}")
    print(f"goal steady poll < 0.25 s:     {verdict(quiet < 0.25)}")


if __name__ == "__main__":
    main()
