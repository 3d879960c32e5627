"""One poll loop per target, each in a thread with its own event loop.

The tracker is touched only in its runner's thread: after every poll (and on
request, when the operator expands a family or moves the cursor) the runner
builds a :class:`View` there and hands it over. The screen only ever reads
views, so a slow poll or a 100,000-key fold never blocks a keystroke.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qwatch.history import Point
from qwatch.poller import TargetStatus, Watch
from qwatch.tracker import Row

log = logging.getLogger(__name__)

MEMBER_LIMIT = 500
"""Most members listed for one family, expanded or ungrouped."""

CLOSE_TIMEOUT = 2.0
"""Seconds an adapter may take to close when the dashboard quits."""

RECANCEL_EVERY = 0.25
"""Seconds between cancels of a poll loop asked to stop that is still running."""


@dataclass(slots=True)
class View:
    """What the screen shows of one target, built after a poll."""

    target: str
    seq: int
    status: TargetStatus
    rows: list[Row]
    """Queues outside families and one row per family, worst first."""
    members: dict[str, list[Row]] = field(default_factory=dict)
    """Member rows of the families asked for, deepest first."""
    server: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    focus: str | None = None
    """The queue or family whose history :attr:`points` holds."""
    points: list[Point] = field(default_factory=list)


class Runner:
    """Polls one :class:`Watch` in a thread and publishes views.

    Args:
        watch: the target's poll loop state (adapter and tracker).
        published: called from the runner's thread when a new view is ready;
            it must be thread-safe (Textual's ``post_message`` is).
    """

    def __init__(self, watch: Watch, published: Callable[[Runner], None]) -> None:
        self.watch = watch
        self.name = watch.status.name
        self.published = published
        self.latest: View | None = None
        """The newest view; a newer one simply replaces a stale one."""
        self.expanded: frozenset[str] = frozenset()
        """Families whose members the screen wants (set from the UI thread)."""
        self.flat = False
        """True when every family's members are wanted (grouping off)."""
        self.focus: str | None = None
        """The queue or family whose history the detail pane wants."""
        self.finished = threading.Event()
        """Set when the thread body has returned."""
        self._seq = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def run(self) -> None:
        """Thread body: poll until :meth:`stop` is called."""
        try:
            if not self._stopping:
                asyncio.run(self._main())
        finally:
            self.finished.set()

    def stop(self) -> None:
        """Ask the loop to end; an unfinished poll is cancelled.

        A cancel alone is not enough: on Python 3.11 ``asyncio.wait_for``
        (around every poll, and inside redis-py) swallows a cancel that lands
        as the awaited call finishes, and the loop would poll on for good,
        keeping the process alive after quitting. So a flag is set too, and
        the cancel is repeated until the loop has ended.
        """
        self._stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(self._halt)

    def _halt(self) -> None:
        """Runner thread: wake the wait between polls, cancel a running poll."""
        if self._wake is not None:
            self._wake.set()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            asyncio.get_running_loop().call_later(RECANCEL_EVERY, self._halt)

    def forget(self, name: str) -> None:
        """Start ``name``'s history afresh (the tracker lives on this
        runner's thread, so the call is handed over to it)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.watch.tracker.forget, name)

    def request_view(self) -> None:
        """Build a fresh view soon, without waiting for the next poll."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._publish)

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        if self._stopping:  # stop() came before the loop was known
            return
        try:
            await self._poll_forever()
        except asyncio.CancelledError:
            log.debug("poll loop of %s stopped", self.name)
        finally:
            # A dead server may hang a close too; quitting must not wait on it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.watch.adapter.close(), CLOSE_TIMEOUT)

    async def _poll_forever(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._stopping:
            await self.watch.poll_once()
            if self._stopping:
                break
            self._publish()
            wait = (self.watch.status.next_poll or 0) - time.time()
            # asyncio.timeout, not wait_for: it never swallows a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wait)):
                    await wake.wait()

    def _publish(self) -> None:
        try:
            view = self._build()
        except Exception:  # a view bug must not end polling
            log.exception("building the view of %s failed", self.name)
            return
        self.latest = view
        self.published(self)

    def _build(self) -> View:
        tracker = self.watch.tracker
        self._seq += 1
        rows = tracker.rows() if tracker.last is not None else []
        wanted = {r.name for r in rows if r.is_family}
        if not self.flat:
            wanted &= self.expanded
        members = {p: tracker.member_rows(p)[:MEMBER_LIMIT] for p in wanted}
        snap = tracker.last
        focus = self.focus
        return View(
            target=self.name,
            seq=self._seq,
            status=dataclasses.replace(self.watch.status),
            rows=rows,
            members=members,
            server=dict(snap.server) if snap else {},
            notes=list(snap.notes) if snap else [],
            focus=focus,
            points=tracker.points_of(focus) if focus else [],
        )
