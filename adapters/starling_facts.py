"""What a memcache-protocol queue server's ``stats`` says beyond its queues.

Kept across polls: how long ``stats`` itself takes and what share of the
server's time that is (Starling answers nobody while it builds the reply),
when the queue count will reach Starling's ceiling at the current rate, and
whether the server restarted since the last poll.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

QUEUE_CEILING = 4086
"""Queues a stock Starling holds before ``NOT STORED``: 4,096 descriptors,
9 its own, 1 for our connection."""
NEAR_CEILING = 32
"""Queues short of the ceiling counted as at it: every other client
connection takes one descriptor too, and Starling does not say how many."""
FORECAST_SPAN = 300.0
"""Seconds of queue counts the ceiling forecast looks back over."""
COUNTERS = ("total_items", "cmd_get", "cmd_set", "bytes_read", "total_connections")
"""Server-wide counters that only fall when the server starts again."""
BIRTH_SLACK = 2.0
"""Seconds the derived start time (time - uptime) may wobble by rounding."""


class ServerFacts:
    """Stats cost, ceiling forecast and restarts for one target.

    Args:
        ceiling: queues the server holds before refusing new ones.
        max_share: largest share of the server's time ``stats`` may take.
        min_interval: shortest poll interval the adapter allows.
    """

    def __init__(self, ceiling: int, max_share: float, min_interval: float) -> None:
        self.ceiling = ceiling
        self.max_share = max_share
        self.min_interval = min_interval
        self.stats_time: float | None = None
        """Smoothed seconds one ``stats`` takes."""
        self.last_restart: float | None = None
        """Wall-clock time of the poll that first saw the latest restart."""
        self._last_start: float | None = None
        self._last_globals: dict[str, str] | None = None
        self._counts: deque[tuple[float, int]] = deque()

    def interval(self, base: float) -> float:
        """Wait long enough after a poll that ``stats`` stays within the share."""
        if self.stats_time is None:
            return base
        return max(base, self.stats_time * (1 / self.max_share - 1))

    def restarted(self, now: dict[str, str], at: float) -> bool:
        """A new pid, a later start time, or a counter that went down."""
        before, self._last_globals = self._last_globals, now
        if before is None:
            return False
        fresh = _restarted(before, now)
        if fresh:
            self.last_restart = at
            self._counts.clear()
        return fresh

    def facts(
        self, globals_: dict[str, str], count: int, took: float, started: float,
        at: float,
    ) -> dict[str, Any]:  # fmt: skip
        """Server facts for the snapshot, the readable ones first: the status
        line shows the first few."""
        share = self._share(took, started)
        eta = self._eta(at, count)
        facts: dict[str, Any] = {
            "queues": queues_text(count, self.ceiling, eta),
            "stats": f"{took:.2f} s, {share:.1%} of time",
        }
        if self.last_restart is not None:
            facts["restart"] = time.strftime(
                "%H:%M:%S", time.localtime(self.last_restart)
            )
        facts["version"] = globals_.get("version")
        facts["uptime"] = int(num(globals_, "uptime"))
        facts |= {
            "queue_count": count,
            "queue_ceiling": self.ceiling,
            "ceiling_eta_seconds": eta,
            "stats_seconds": round(took, 4),
            "stats_share": share,
        }
        for key in ("curr_items", "bytes", "total_items", "pid"):
            if key in globals_:
                facts[key] = int(num(globals_, key))
        return facts

    def at_ceiling(self, count: int) -> bool:
        """True when new queues are about to be, or already are, refused."""
        return count >= self.ceiling - NEAR_CEILING

    def _share(self, took: float, started: float) -> float:
        """Share of wall time spent in stats, measured start to start."""
        if self.stats_time is None:
            self.stats_time = took
        else:
            self.stats_time = 0.5 * self.stats_time + 0.5 * took
        last, self._last_start = self._last_start, started
        period = started - last if last is not None else None
        if not period or period <= took:
            period = took + self.interval(self.min_interval)
        return round(took / period, 4)

    def _eta(self, at: float, count: int) -> float | None:
        """Seconds until the ceiling at the rate queues appeared lately."""
        self._counts.append((at, count))
        while len(self._counts) > 2 and at - self._counts[0][0] > FORECAST_SPAN:
            self._counts.popleft()
        if count >= self.ceiling:
            return 0.0
        then, before = self._counts[0]
        rate = (count - before) / (at - then) if at > then else 0.0
        return (self.ceiling - count) / rate if rate > 0 else None


def _restarted(before: dict[str, str], now: dict[str, str]) -> bool:
    if "pid" in now and now.get("pid") != before.get("pid"):
        return True
    if all(k in now and k in before for k in ("time", "uptime")):
        # Kestrel has no pid; a start time that moved on is a new process
        # even when the uptime has grown past the last one by the next poll.
        born_now = num(now, "time") - num(now, "uptime")
        if born_now > num(before, "time") - num(before, "uptime") + BIRTH_SLACK:
            return True
    keys = ("uptime", *COUNTERS)
    return any(num(now, k) < num(before, k) for k in keys if k in now)


def queues_text(count: int, ceiling: int, eta: float | None) -> str:
    """``1,234 of 4,086, full in 2m50s`` for the status line."""
    text = f"{count:,} of {ceiling:,}"
    if count >= ceiling:
        return text + " FULL"
    if eta is not None:
        text += f", full in {duration_text(eta)}"
    return text


def duration_text(seconds: float) -> str:
    """``45s``, ``3m20s``, ``2h05m`` or ``3d04h``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def num(values: dict[str, str], key: str) -> float:
    """A stats value as a number; 0 when missing or not a number."""
    try:
        return float(values.get(key, 0))
    except ValueError:
        return 0.0
