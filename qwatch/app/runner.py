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
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def run(self) -> None:
        """Thread body: poll until :meth:`stop` is called."""
        asyncio.run(self._main())

    def stop(self) -> None:
        """Ask the loop to end; an unfinished poll is cancelled."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(task.cancel)

    def request_view(self) -> None:
        """Build a fresh view soon, without waiting for the next poll."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._publish)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            await self._poll_forever()
        except asyncio.CancelledError:
            log.debug("poll loop of %s stopped", self.name)
        finally:
            # A dead server may hang a close too; quitting must not wait on it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.watch.adapter.close(), CLOSE_TIMEOUT)

    async def _poll_forever(self) -> None:
        while True:
            await self.watch.poll_once()
            self._publish()
            wait = (self.watch.status.next_poll or 0) - time.time()
            await asyncio.sleep(max(0.0, wait))

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
