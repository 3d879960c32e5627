"""One RabbitMQ poll of 5,000 queues against its peers, measured in the same run.

Creates a private vhost with N queues (every tenth holding a message), then
times, round by round and interleaved so drift hits all alike:

* one full ``RabbitAdapter.poll()`` (management API, columns, samples built);
* the same poll reading pages of 500 (``page_size``), for comparison only;
* one plain ``GET /api/queues/<vhost>?columns=...`` of the same columns
  (fetch only, and fetch plus JSON decode);
* ``rabbitmqctl list_queues -p <vhost> name messages consumers``.

HTTP steps run in a shuffled order each round; rabbitmqctl runs after them.
The broker's own CPU dominates every figure, so run it on a quiet machine;
ratios of medians and of minimums are both printed.

Prints medians, minimums and the ratios; the goal is poll / plain GET <= 1.2
(medians). rabbitmqctl is checked once, untimed, to list every queue, so a
failing rabbitmqctl is never timed as a fast one. The vhost (and with it
every queue) is deleted afterwards.

Usage: ``python bench/bench_rabbit.py [--queues 5000] [--rounds 12]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import aio_pika
import httpx
from qwatch.adapters.rabbitmq import RabbitAdapter
from qwatch.adapters.rabbitmq_http import QUEUE_COLUMNS

AMQP = os.environ.get("QWATCH_TEST_RABBIT_AMQP", "amqp://guest:guest@127.0.0.1:5672")
API = os.environ.get("QWATCH_TEST_RABBIT_API", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")


async def create_queues(vhost: str, count: int, channels: int = 16) -> None:
    """Declare ``count`` queues on several channels at once."""
    conn = await aio_pika.connect(f"{AMQP}/{quote(vhost, safe='')}")
    names = iter(range(count))

    async def worker() -> None:
        channel = await conn.channel(publisher_confirms=False)
        for n in names:
            name = f"bench.{n:05d}"
            await channel.declare_queue(name)
            if n % 10 == 0:
                await channel.default_exchange.publish(aio_pika.Message(b"x"), name)
        await channel.close()

    await asyncio.gather(*(worker() for _ in range(channels)))
    await conn.close()


async def wait_listed(api: httpx.AsyncClient, vhost: str, count: int) -> None:
    """Until the API lists every queue with its message count (stats caught up)."""
    path = f"/api/queues/{quote(vhost, safe='')}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = (await api.get(path, params={"columns": "name,messages"})).json()
        if len(rows) == count and all("messages" in r for r in rows):
            return
        await asyncio.sleep(1)
    raise SystemExit("queues never all showed up in the management API")


async def timed(step: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await step()
    return time.perf_counter() - started


def ctl_command(vhost: str) -> list[str] | None:
    """``rabbitmqctl list_queues`` of the vhost; None when it is not installed."""
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        return None
    return [binary, "-q", "list_queues", "-p", vhost, "name", "messages", "consumers"]


def ctl_check(cmd: list[str], count: int) -> None:
    """rabbitmqctl works here and lists every queue, so its time is real work."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    rows = [line for line in done.stdout.splitlines() if line.startswith("bench.")]
    if done.returncode != 0 or len(rows) != count:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(
            f"rabbitmqctl listed {len(rows)} of {count} queues "
            f"(exit {done.returncode}): {why}"
        )


def ctl_step(cmd: list[str]) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        code = await proc.wait()
        if code != 0:
            raise SystemExit(f"rabbitmqctl failed (exit {code})")
        return code

    return run


async def measure(vhost: str, count: int, rounds: int) -> dict[str, list[float]]:
    url = f"{AMQP}/{quote(vhost, safe='')}"
    adapter = RabbitAdapter(url, {"management_url": API})
    paged = RabbitAdapter(url, {"management_url": API, "page_size": 500})
    try:
        await adapter.connect()
        await paged.connect()
        times = await http_rounds(vhost, adapter, paged, rounds)
        snap = await adapter.poll()
    finally:
        await adapter.close()
        await paged.close()
    print(f"poll saw {len(snap.queues)} queues")
    assert len(snap.queues) == count, "the poll did not see every queue"
    # rabbitmqctl starts an Erlang node; its CPU spike would slow whatever
    # came next, so it is timed in a phase of its own.
    cmd = ctl_command(vhost)
    if cmd is None:
        print("rabbitmqctl is not installed: no rabbitmqctl figures")
        return times
    ctl_check(cmd, count)
    ctl = ctl_step(cmd)
    times["ctl"] = [await timed(ctl) for _ in range(rounds)]
    return times


async def http_rounds(
    vhost: str, adapter: RabbitAdapter, paged: RabbitAdapter, rounds: int
) -> dict[str, list[float]]:
    """The poll, the paged poll and the plain GETs, shuffled in each round."""
    path = f"/api/queues/{quote(vhost, safe='')}"
    params = {"columns": ",".join(QUEUE_COLUMNS)}
    async with httpx.AsyncClient(base_url=API, auth=AUTH, timeout=120) as api:

        async def fetch() -> object:
            return (await api.get(path, params=params)).raise_for_status().content

        async def fetch_json() -> object:
            return (await api.get(path, params=params)).raise_for_status().json()

        steps = {
            "poll": adapter.poll,
            "paged": paged.poll,
            "get": fetch,
            "get+json": fetch_json,
        }
        for step in steps.values():  # warm connections and caches once
            await step()
        times: dict[str, list[float]] = {label: [] for label in steps}
        shuffle = random.Random(5000).shuffle
        for _ in range(rounds):
            # A fresh order each round, so no step always follows another
            order = list(steps)
            shuffle(order)
            for label in order:
                times[label].append(await timed(steps[label]))
    return times


async def main(count: int, rounds: int) -> None:
    vhost = f"qwatch-bench-{uuid.uuid4().hex[:8]}"
    seg = quote(vhost, safe="")
    async with httpx.AsyncClient(base_url=API, auth=AUTH, timeout=120) as api:
        (await api.put(f"/api/vhosts/{seg}")).raise_for_status()
        try:
            perms = {"configure": ".*", "write": ".*", "read": ".*"}
            path = f"/api/permissions/{seg}/{AUTH[0]}"
            (await api.put(path, json=perms)).raise_for_status()
            started = time.perf_counter()
            await create_queues(vhost, count)
            print(f"created {count} queues in {time.perf_counter() - started:.1f} s")
            await wait_listed(api, vhost, count)
            report(await measure(vhost, count, rounds))
        finally:
            gone = await api.delete(f"/api/vhosts/{seg}")
            print(f"vhost {vhost} deleted: HTTP {gone.status_code}")


def report(times: dict[str, list[float]]) -> None:
    med = {label: statistics.median(values) for label, values in times.items()}
    for label, value in med.items():
        fastest = min(times[label]) * 1000
        print(
            f"{label:>9}: median {value * 1000:7.1f} ms, min {fastest:7.1f} ms"
            f" over {len(times[label])}"
        )
    low = {label: min(values) for label, values in times.items()}
    for mine, peer, text in (
        ("poll", "get", "plain GET"),
        ("poll", "get+json", "GET + JSON"),
        ("poll", "ctl", "rabbitmqctl"),
        ("paged", "get", "plain GET"),
    ):
        if peer not in med:
            continue
        print(
            f"{mine} / {text:<12} = {med[mine] / med[peer]:.2f} (medians), "
            f"{low[mine] / low[peer]:.2f} (minimums)"
        )
    ratio = med["poll"] / med["get"]
    print(
        f"goal poll / plain GET <= 1.2 (medians): {'met' if ratio <= 1.2 else 'MISSED'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(main(args.queues, args.rounds))
