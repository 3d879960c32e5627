"""qwatch's Starling stats parse against reading the raw reply, at 4,000 queues.

Run: ``.venv/bin/python bench/bench_starling_stats.py``. Starts our
Starling-speaking server in-process, loads 4,000 one-item queues, then times,
in the same run and round by round (each round in a shuffled order, so drift
hits all alike): reading the raw ``stats`` reply off the socket (the floor any
monitor pays), parsing it with qwatch, and a whole adapter poll (read + parse
+ samples). Prints medians and minimums and the ratios; the target is a parse
within 3x the raw read (against a real Starling the read alone takes about
0.8 s at this size, so the ratio here, against our fast in-process server, is
the strict one). The server thread is stopped afterwards; nothing is written
to disk.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from qwatch.adapters.starling import StarlingAdapter

from qwatch.starling import ServerThread, StarlingServer
from qwatch.starling.client import QueueClient
from qwatch.starling.statsparse import parse_stats

QUEUES = 4000
ROUNDS = 15


async def _fill(client: QueueClient) -> None:
    for n in range(QUEUES):
        name = b"report_workers:generate:%032x" % n
        assert await client.set(name, b'\x04\x08I"\tDONE\x06:\x06ET')


async def _timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def _measure(
    client: QueueClient, adapter: StarlingAdapter, raw: bytes
) -> dict[str, list[float]]:
    async def parse() -> None:
        parse_stats(raw)

    steps = {"read": client.stats, "parse": parse, "poll": adapter.poll}
    for step in steps.values():  # warm connections once
        await step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    shuffle = random.Random(4000).shuffle
    for _ in range(ROUNDS):
        order = list(steps)
        shuffle(order)
        for label in order:
            times[label].append(await _timed(steps[label]))
    return times


async def main() -> None:
    thread = ServerThread(StarlingServer(max_fds=QUEUES + 100)).start()
    try:
        client = QueueClient("127.0.0.1", thread.port)
        adapter = StarlingAdapter(thread.url)
        try:
            await _fill(client)
            raw = await client.stats()
            queues = len(parse_stats(raw).queues)
            assert queues == QUEUES, f"parsed {queues} queues of {QUEUES}"
            times = await _measure(client, adapter, raw)
            polled = len((await adapter.poll()).queues)
        finally:
            await client.close()
            await adapter.close()
    finally:
        thread.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    print(f"stats reply: {len(raw):,} bytes, {queues:,} queues (poll saw {polled:,})")
    for label, text in (("read", "raw read"), ("parse", "qwatch parse"),
                        ("poll", "full poll")):  # fmt: skip
        print(
            f"{text:<12} median {med[label] * 1000:7.2f} ms, "
            f"min {low[label] * 1000:7.2f} ms over {ROUNDS}"
        )
    for mine in ("parse", "poll"):
        print(
            f"ratio {mine}/read: {med[mine] / med['read']:.2f}x (medians), "
            f"{low[mine] / low['read']:.2f}x (minimums)"
        )
    ratio = med["parse"] / med["read"]
    print("target parse/read <= 3x (medians):", "met" if ratio <= 3 else "MISSED")


if __name__ == "__main__":
    asyncio.run(main())
