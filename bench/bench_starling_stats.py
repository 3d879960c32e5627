"""qwatch's Starling stats parse against reading the raw reply, at 4,000 queues.

Run: ``python bench/bench_starling_stats.py``. Starts our Starling-speaking
server in-process, loads 4,000 one-item queues, then times, in the same run:
reading the raw ``stats`` reply off the socket (the floor any monitor pays),
parsing it with qwatch, and a whole adapter poll (read + parse + samples).
Prints medians and the ratios; the target is a parse within 3x the raw read
(against a real Starling the read alone takes about 0.8 s at this size).
"""

from __future__ import annotations

import asyncio
import statistics
import time

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


async def _time(fn, rounds: int = ROUNDS) -> float:  # type: ignore[no-untyped-def]
    took = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn()
        took.append(time.perf_counter() - start)
    return statistics.median(took)


async def main() -> None:
    thread = ServerThread(StarlingServer(max_fds=QUEUES + 100)).start()
    try:
        client = QueueClient("127.0.0.1", thread.port)
        await _fill(client)
        raw = await client.stats()
        adapter = StarlingAdapter(thread.url)

        async def parse() -> None:
            parse_stats(raw)

        read = await _time(client.stats)
        parsed = await _time(parse)
        poll = await _time(adapter.poll)
        queues = len(parse_stats(raw).queues)
        await client.close()
        await adapter.close()
    finally:
        thread.stop()
    print(f"stats reply: {len(raw):,} bytes, {queues:,} queues")
    print(f"raw read     {read * 1000:8.2f} ms (median of {ROUNDS})")
    print(f"qwatch parse {parsed * 1000:8.2f} ms")
    print(f"full poll    {poll * 1000:8.2f} ms")
    print(f"ratio parse/read: {parsed / read:.2f}x   poll/read: {poll / read:.2f}x")
    print("target parse/read <= 3x:", "met" if parsed / read <= 3 else "MISSED")


if __name__ == "__main__":
    asyncio.run(main())
