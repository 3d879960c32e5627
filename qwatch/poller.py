"""The poll loop for one target: poll, fold into the tracker, tell listeners.

The next poll is armed only after the last one ended, so a slow server never
piles polls up; a failing server is retried with a growing delay and never
ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from qwatch.adapters.base import Adapter, TargetError
from qwatch.tracker import Tracker

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
"""Longest wait between retries of a dead target."""


@dataclass(slots=True)
class TargetStatus:
    """What the status line says about one target."""

    name: str
    label: str
    interval: float
    connected: bool = False
    last_poll: float | None = None
    poll_time: float | None = None
    error: str | None = None
    next_poll: float | None = None
    polls: int = 0
    failures: int = 0
    """Consecutive failed polls."""


class Watch:
    """Polls one adapter into one tracker.

    Args:
        name: the target's short name (config profile or URL label).
        interval: seconds between the end of one poll and the next.
        timeout: seconds a poll may take before it counts as failed.
    """

    def __init__(
        self,
        name: str,
        adapter: Adapter,
        tracker: Tracker,
        interval: float = 5.0,
        timeout: float = 60.0,
    ) -> None:
        self.adapter = adapter
        self.tracker = tracker
        self.timeout = timeout
        self.requested = interval
        self.status = TargetStatus(name, adapter.label, interval)
        self.listeners: list[Callable[[Watch], None]] = []
        self._connected = False
        self._closing: asyncio.Future[None] | None = None

    async def poll_once(self) -> bool:
        """One poll; True when it worked. Failures are recorded, not raised."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._poll(), self.timeout)
        except (TargetError, OSError, TimeoutError, ConnectionError) as exc:
            self._failed(_one_line(exc) or "timed out")
        except Exception as exc:  # an adapter bug must not end the loop
            log.exception("poll of %s failed", self.status.label)
            self._failed(f"{type(exc).__name__}: {_one_line(exc)}")
        else:
            self._worked(time.monotonic() - started)
        self._tell()
        return self.status.error is None

    async def _poll(self) -> None:
        if not self._connected:
            await self.adapter.connect()
            self._connected = True
        snap = await self.adapter.poll()
        self.tracker.update(snap)

    def _worked(self, took: float) -> None:
        status = self.status
        status.connected, status.error, status.failures = True, None, 0
        status.last_poll, status.poll_time = time.time(), took
        status.polls += 1
        status.interval = self.adapter.suggested_interval(self.requested)
        status.next_poll = time.time() + status.interval
        log.debug("polled %s in %.3f s", status.label, took)

    def _failed(self, error: str) -> None:
        status = self.status
        # Adapter errors open with the target's URL, which the status names.
        error = error.removeprefix(f"{status.label}: ")
        status.connected, status.error = False, error
        status.failures += 1
        delay = min(MAX_BACKOFF, self.requested * 2 ** min(status.failures, 6))
        status.next_poll = time.time() + delay
        log.warning("poll of %s failed: %s", status.label, error)
        if status.failures == 1 or self._connected:
            self._connected = False
            self._closing = asyncio.ensure_future(self._quiet_close())

    async def _quiet_close(self) -> None:
        with contextlib.suppress(Exception):
            await self.adapter.close()

    def _tell(self) -> None:
        for listener in self.listeners:
            listener(self)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            await self.poll_once()
            wait = max(0.0, (self.status.next_poll or 0) - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
        await self._quiet_close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
