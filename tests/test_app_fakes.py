"""Scripted adapters and Pilot helpers shared by the dashboard tests.

The scripted adapters stand in for a server only where a test needs a
situation no real server gives on demand (a thousand queues changing at once,
a target that refuses every poll); the real-Redis test drives the same app.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from qwatch.adapters.base import Adapter, TargetError
from textual.pilot import Pilot

from qwatch.model import Kind, Sample, Snapshot
from qwatch.poller import Watch
from qwatch.settings import Thresholds
from qwatch.tracker import Tracker

FAST = Thresholds(window=1.0, stall_after=60.0, min_growth=3, min_members=3)
"""A one-second window, so a leak shows within a couple of seconds."""


class LeakyAdapter(Adapter):
    """A result family that only grows beside a steady work list."""

    min_interval = 0.05

    def __init__(self, url: str = "fake://leaky", per_poll: int = 2) -> None:
        super().__init__(url)
        self.keys: list[str] = [f"celery-task-meta-{uuid.uuid4()}" for _ in range(3)]
        self.per_poll = per_poll
        self.polls = 0

    async def poll(self) -> Snapshot:
        """Add ``per_poll`` result keys, keep the work list level."""
        self.polls += 1
        self.keys += [f"celery-task-meta-{uuid.uuid4()}" for _ in range(self.per_poll)]
        queues = [Sample(k, Kind.STRING, 1, bytes=300) for k in self.keys]
        queues.append(Sample("celery", Kind.LIST, 4, consumers=2))
        queues.append(Sample("default", Kind.LIST, 0))
        return Snapshot(at=time.time(), queues=queues, server={"version": "7.2"})


class ManyAdapter(Adapter):
    """``count`` plainly named queues whose depths change every poll."""

    min_interval = 0.05

    def __init__(self, count: int) -> None:
        super().__init__("fake://many")
        self.names = [f"jobs_{_letters(i)}" for i in range(count)]
        self.polls = 0

    async def poll(self) -> Snapshot:
        """Each queue's depth moves by one, alternately up and down."""
        self.polls += 1
        step = self.polls % 2
        queues = [
            Sample(name, Kind.LIST, 10 + (i % 7) + step)
            for i, name in enumerate(self.names)
        ]
        return Snapshot(at=time.time(), queues=queues)


class DeadAdapter(Adapter):
    """A server that never answers."""

    min_interval = 0.05

    async def connect(self) -> None:
        """Refuse, like a closed port."""
        raise TargetError("connection refused (127.0.0.1:1)")

    async def poll(self) -> Snapshot:
        """Never reached: connect fails first."""
        raise TargetError("not connected")


def _letters(n: int) -> str:
    """A digit-free name part, so names never fold into one family."""
    out = ""
    for _ in range(4):
        out += "abcdefghijklmnopqrstuvwxyz"[n % 26]
        n //= 26
    return out


def watch(name: str, adapter: Adapter, interval: float = 0.1) -> Watch:
    """A Watch with fast thresholds."""
    return Watch(name, adapter, Tracker(name, FAST), interval=interval, timeout=5.0)


async def until(
    pilot: Pilot[None], check: Callable[[], object], timeout: float = 15.0
) -> None:
    """Let the app run until ``check()`` is truthy, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.05)
