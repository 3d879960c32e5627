"""The Celery outage, replayed on any Redis: result keys nobody reads.

A Celery app stores each task's result as ``celery-task-meta-<uuid4>``, a few
hundred bytes of JSON, with no expiry, and nothing ever reads them back. Next
to it the real work queue, a list named ``celery``, is pushed and popped at a
steady rate and stays healthy; and a second app writes the same kind of result
under another key prefix with a TTL, so that family levels off. Only the first
family is a leak.

Run it against a Redis of your own, or let it start a throwaway one::

    python -m qwatch.celery_workload redis://127.0.0.1:6379/5
    python -m qwatch.celery_workload --spawn
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

RESULT_PREFIX = "celery-task-meta-"
TTL_PREFIX = "shortlived:celery-task-meta-"
"""Celery's ``global_keyprefix`` of a second app: same shape, its own family."""


@dataclass(frozen=True, slots=True)
class CeleryPlan:
    """Rates and names; the defaults are issue 2's scenario."""

    results_per_second: float = 50.0
    ttl_results_per_second: float = 50.0
    ttl: int = 20
    """Seconds the second app's results live."""
    jobs_per_second: float = 20.0
    work_list: str = "celery"
    tick: float = 0.1
    """Seconds per step: each step writes a tick's worth of everything."""


@dataclass(slots=True)
class CeleryCounts:
    """What the workload did so far."""

    results: int = 0
    ttl_results: int = 0
    pushed: int = 0
    popped: int = 0
    errors: list[str] = field(default_factory=list)


def result_body(task_id: str) -> str:
    """A result as Celery's Redis backend stores it (about 200 bytes)."""
    done = datetime.datetime.now(datetime.UTC).isoformat()
    return json.dumps(
        {
            "status": "SUCCESS",
            "result": {"rows": 1200, "file": f"/reports/{task_id}.csv"},
            "traceback": None,
            "children": [],
            "date_done": done,
            "task_id": task_id,
        }
    )


class CeleryWorkload:
    """Writes results, pushes jobs and pops them, until cancelled."""

    def __init__(self, url: str, plan: CeleryPlan | None = None) -> None:
        self.url = url
        self.plan = plan or CeleryPlan()
        self.counts = CeleryCounts()
        self._owed = {"results": 0.0, "ttl": 0.0, "jobs": 0.0}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask both loops to end after their current step.

        Cancelling is not enough: redis-py may swallow a cancel that lands
        mid-command, and the loop would go on for good.
        """
        self._stop.set()

    async def run(self) -> None:
        """Producer and worker on connections of their own; cancel to stop."""
        producer = aioredis.Redis.from_url(self.url)
        worker = aioredis.Redis.from_url(self.url)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(producer))
                group.create_task(self._work(worker))
        finally:
            await producer.aclose()
            await worker.aclose()

    def _due(self, what: str, rate: float) -> int:
        """Whole items owed this tick, carrying fractions to the next."""
        self._owed[what] += rate * self.plan.tick
        count = int(self._owed[what])
        self._owed[what] -= count
        return count

    async def _produce(self, r: aioredis.Redis) -> None:
        plan = self.plan
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stop.is_set():
            pipe = r.pipeline(transaction=False)
            results = self._due("results", plan.results_per_second)
            ttls = self._due("ttl", plan.ttl_results_per_second)
            jobs = self._due("jobs", plan.jobs_per_second)
            for _ in range(results):
                task_id = str(uuid.uuid4())
                pipe.set(RESULT_PREFIX + task_id, result_body(task_id))
            for _ in range(ttls):
                task_id = str(uuid.uuid4())
                pipe.set(TTL_PREFIX + task_id, result_body(task_id), ex=plan.ttl)
            for _ in range(jobs):
                pipe.lpush(plan.work_list, json.dumps({"id": str(uuid.uuid4())}))
            await pipe.execute()
            self.counts.results += results
            self.counts.ttl_results += ttls
            self.counts.pushed += jobs
            next_at += plan.tick
            # Pacing, not synchronisation: the workload has a set rate; the
            # wait ends early when asked to stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), next_at - loop.time())

    async def _work(self, r: aioredis.Redis) -> None:
        """Pops the work list as Celery's worker does (BRPOP)."""
        while not self._stop.is_set():
            if await r.brpop([self.plan.work_list], timeout=1) is not None:
                self.counts.popped += 1


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A redis-server on a free local port that keeps nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("celery_workload: redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as folder:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", folder]  # fmt: skip
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


async def _wait_ready(url: str, tries: int = 100) -> None:
    r = aioredis.Redis.from_url(url)
    try:
        for _ in range(tries):
            with contextlib.suppress(OSError, aioredis.ConnectionError):
                if await r.ping():
                    return
            await asyncio.sleep(0.05)  # the server is starting: bounded retry
    finally:
        await r.aclose()
    raise SystemExit(f"celery_workload: {url} did not answer")


async def _run(url: str, seconds: float | None) -> None:
    await _wait_ready(url)
    workload = CeleryWorkload(url)
    task = asyncio.create_task(workload.run())
    try:
        await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        pass
    finally:
        workload.stop()
        await task
    c = workload.counts
    print(f"{c.results} results, {c.ttl_results} with TTL, "
          f"{c.pushed} jobs pushed, {c.popped} popped", file=sys.stderr)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """``python -m qwatch.celery_workload [URL | --spawn] [--for SECONDS]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="redis://host:port/db to write to")
    parser.add_argument(
        "--spawn",
        action="store_true",
        help="start a throwaway redis-server and print its URL",
    )
    parser.add_argument(
        "--for", dest="seconds", type=float, help="stop after this many seconds"
    )
    args = parser.parse_args(argv)
    if bool(args.url) == args.spawn:
        parser.error("give a URL or --spawn, not both")
    try:
        if args.spawn:
            with throwaway_redis() as url:
                print(url, flush=True)
                asyncio.run(_run(url, args.seconds))
        else:
            asyncio.run(_run(args.url, args.seconds))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
