"""Alerts: a queue or family that becomes LEAK is announced once, until it clears.

The dashboard, the hooks and the exporter all read the same :class:`Alerts`,
so a leak reaches every one of them with the same reason.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from qwatch.tracker import Row
from qwatch.verdicts import Verdict

log = logging.getLogger(__name__)

HISTORY = 500
"""Alerts kept for the history panel."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One change worth telling someone about."""

    at: float
    target: str
    name: str
    family: bool
    verdict: Verdict
    reason: str
    cleared: bool = False
    """True when this alert says an earlier leak has cleared."""
    kind: str = ""
    """Structure: list, queue, string... (of the members, for a family)."""
    depth: int = 0
    """Items held when the alert was raised (summed, for a family)."""
    members: int | None = None
    """Member count of a family; None for a plain queue."""


@dataclass(slots=True)
class Silence:
    """Quiet alerts for names matching ``pattern`` on ``target`` until ``until``."""

    target: str
    pattern: str
    until: float | None = None
    """Epoch seconds; None silences for good."""

    def covers(self, target: str, name: str, now: float) -> bool:
        """True while this silence applies to ``name`` on ``target``."""
        live = self.until is None or now < self.until
        on_target = self.target in ("*", target)
        return live and on_target and fnmatchcase(name, self.pattern)


Listener = Callable[[Alert], None]


class Alerts:
    """Turns successive rows into alerts, once per leak until it clears.

    Args:
        clear_after: seconds a leak must stay off LEAK before it clears, so a
            verdict that wobbles for a poll or two does not page twice.
    """

    def __init__(
        self, silences: Iterable[Silence] = (), clear_after: float = 0.0
    ) -> None:
        self.silences = list(silences)
        self.clear_after = clear_after
        self.history: deque[Alert] = deque(maxlen=HISTORY)
        self.listeners: list[Listener] = []
        self._open: dict[tuple[str, str], Alert] = {}
        self._quiet: dict[tuple[str, str], float] = {}
        """Open leaks not LEAK right now, and since when."""

    def observe(
        self, target: str, rows: Iterable[Row], now: float | None = None
    ) -> list[Alert]:
        """Compare one target's rows with what was open; return new alerts."""
        now = time.time() if now is None else now
        fresh: list[Alert] = []
        leaking = set()
        for row in rows:
            if row.verdict is not Verdict.LEAK:
                continue
            key = (target, row.name)
            leaking.add(key)
            self._quiet.pop(key, None)
            if key in self._open or self.silenced(target, row.name, now):
                continue
            alert = _raised(now, target, row)
            self._open[key] = alert
            fresh.append(alert)
        for key in [k for k in self._open if k[0] == target and k not in leaking]:
            if now - self._quiet.setdefault(key, now) < self.clear_after:
                continue
            del self._quiet[key]
            old = self._open.pop(key)
            fresh.append(
                replace(
                    old,
                    at=now,
                    verdict=Verdict.OK,
                    reason="no longer leaking",
                    cleared=True,
                )
            )
        for alert in fresh:
            self._emit(alert)
        return fresh

    def silenced(self, target: str, name: str, now: float | None = None) -> bool:
        """True when a silence covers ``name`` on ``target``."""
        now = time.time() if now is None else now
        return any(s.covers(target, name, now) for s in self.silences)

    def silence(self, target: str, pattern: str, seconds: float | None) -> Silence:
        """Silence a name or pattern for ``seconds`` (None: for good)."""
        until = None if seconds is None else time.time() + seconds
        entry = Silence(target, pattern, until)
        self.silences.append(entry)
        log.info("silenced %s on %s until %s", pattern, target, until or "forever")
        return entry

    def _emit(self, alert: Alert) -> None:
        self.history.append(alert)
        log.info("%s %s %s: %s", alert.verdict, alert.target, alert.name, alert.reason)
        for listener in self.listeners:
            try:
                listener(alert)
            except Exception:  # a broken listener must not stop the others
                log.exception("alert listener failed")


def _raised(now: float, target: str, row: Row) -> Alert:
    return Alert(
        now,
        target,
        row.name,
        row.is_family,
        row.verdict,
        row.reason,
        kind=row.kind,
        depth=row.depth,
        members=row.members,
    )
