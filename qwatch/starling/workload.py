"""The Workling workload: the outage qwatch exists for, replayed on any Starling.

A Rails app enqueues jobs on ``report_workers__generate``; a worker takes each
one and stores its status in Workling's return store, which on Starling is a
``set`` onto a new queue named after the job (``report_workers:generate:<32
hex>``). Nobody reads those, so one-item queues pile up. Next to it a second
job queue's reader stops for a while and comes back, which is a STALL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from qwatch.starling.background import ServerThread
from qwatch.starling.client import QueueClient
from qwatch.starling.server import StarlingServer

log = logging.getLogger(__name__)

DONE = b'\x04\x08I"\tDONE\x06:\x06ET'
"""Ruby Marshal of the string "DONE", as Workling stores it (14 bytes)."""


@dataclass(frozen=True, slots=True)
class WorklingPlan:
    """Rates, names and the timing of the second reader's pause."""

    jobs_per_second: float = 20.0
    job_queue: str = "report_workers__generate"
    return_prefix: str = "report_workers:generate:"
    mail_queue: str = "mailer_workers__deliver"
    mails_per_second: float = 5.0
    reader_stops_at: float | None = 60.0
    """Seconds after start when the mail reader stops; None: never."""
    reader_resumes_at: float | None = 150.0
    """Seconds after start when it reads again; None: never."""


@dataclass(slots=True)
class WorklingCounts:
    """What the workload did so far."""

    jobs: int = 0
    returns_left: int = 0
    mails_sent: int = 0
    mails_read: int = 0
    reader_running: bool = True
    errors: list[str] = field(default_factory=list)


class Workling:
    """Runs the workload against ``host:port`` until cancelled.

    Args:
        plan: rates and timings; the defaults are the demo's.
    """

    def __init__(self, host: str, port: int, plan: WorklingPlan | None = None) -> None:
        self.host, self.port = host, port
        self.plan = plan or WorklingPlan()
        self.counts = WorklingCounts()

    async def run(self) -> None:
        """Producer, worker and mail reader together; cancel to stop."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._paced(self.plan.jobs_per_second, self._job))
            group.create_task(self._paced(self.plan.mails_per_second, self._mail))
            group.create_task(self._reader())

    async def _paced(
        self, rate: float, step: Callable[[QueueClient], Awaitable[None]]
    ) -> None:
        """Call ``step`` ``rate`` times a second on a connection of its own."""
        client = QueueClient(self.host, self.port, timeout=10.0)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                await step(client)
                next_at += 1.0 / rate
                # Pacing, not synchronisation: the workload has a set rate.
                await asyncio.sleep(max(0.0, next_at - loop.time()))
        finally:
            await client.close()

    async def _job(self, client: QueueClient) -> None:
        plan = self.plan
        queue = plan.job_queue.encode()
        key = (plan.return_prefix + uuid.uuid4().hex).encode()
        await client.set(queue, b"uid=" + key)
        taken = await client.get(queue)  # the worker picks the job up
        # ...and stores its status, which a full server refuses.
        if taken is not None and await client.set(taken[4:], DONE):
            self.counts.returns_left += 1
        self.counts.jobs += 1

    async def _mail(self, client: QueueClient) -> None:
        body = b"mail-%d" % self.counts.mails_sent
        if await client.set(self.plan.mail_queue.encode(), body):
            self.counts.mails_sent += 1

    async def _reader(self) -> None:
        """Reads the mail queue, pausing between the plan's two times."""
        plan = self.plan
        client = QueueClient(self.host, self.port, timeout=10.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            while True:
                elapsed = loop.time() - started
                running = _reading(elapsed, plan)
                if running != self.counts.reader_running:
                    log.info("mail reader %s", "resumes" if running else "stops")
                    self.counts.reader_running = running
                if running:
                    while await client.get(plan.mail_queue.encode()) is not None:
                        self.counts.mails_read += 1
                await asyncio.sleep(0.5 / plan.mails_per_second)  # pacing
        finally:
            await client.close()


def _reading(elapsed: float, plan: WorklingPlan) -> bool:
    if plan.reader_stops_at is None or elapsed < plan.reader_stops_at:
        return True
    return plan.reader_resumes_at is not None and elapsed >= plan.reader_resumes_at


@contextlib.asynccontextmanager
async def demo_target(
    plan: WorklingPlan | None = None, **settings: Any
) -> AsyncIterator[tuple[str, Workling]]:
    """A Starling-speaking server on a free local port with the workload on it.

    Yields the ``starling://`` URL and the running workload; both stop on exit.
    ``settings`` go to :class:`StarlingServer` (``stats_cost``, ``max_fds``...).
    """
    thread = ServerThread(StarlingServer("127.0.0.1", 0, **settings))
    await asyncio.to_thread(thread.start)
    workload = Workling("127.0.0.1", thread.port, plan)
    task = asyncio.create_task(workload.run(), name="workling")
    try:
        yield thread.url, workload
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # it died before we stopped it: say so
            log.warning("Workling workload failed: %s", exc)
            workload.counts.errors.append(str(exc))
        await asyncio.to_thread(thread.stop)
