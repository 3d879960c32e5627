"""Hooks: hand each alert to ``--on-alert`` and ``--webhook``, off the poller.

:class:`Hooks` is an :class:`qwatch.alerts.Alerts` listener. Taking an alert
costs a dictionary look-up and a queue put: each hook has its own worker
thread and bounded queue, so a slow command or endpoint never delays a poll,
the dashboard or the other hook. Deliveries are deduplicated (a leak is sent
once until it clears, and not again within ``repeat`` seconds even in a new
process, which is what a cron-run ``qwatch check`` needs) and rate-limited
per hook. A failed delivery is logged and given to :attr:`Hooks.failure_listeners`;
it never ends the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qwatch.alerts import Alert
from qwatch.hooks_delivery import Deliverer, HookError

log = logging.getLogger(__name__)

QUEUE_SIZE = 100
"""Alerts waiting per hook; past this, new ones are dropped and counted."""

RATE_WINDOW = 60.0
"""Seconds over which ``rate`` deliveries per hook are allowed."""


@dataclass(frozen=True, slots=True)
class HookFailure:
    """A hook could not deliver an alert (or had to drop some)."""

    hook: str
    error: str
    alert: Alert
    at: float

    @property
    def line(self) -> str:
        """One line for a screen or a terminal."""
        return f"{self.hook} hook failed for {self.alert.name}: {self.error}"


@dataclass(slots=True)
class HookStats:
    """What one hook has done; read by the exporter and the JSON report."""

    delivered: int = 0
    failed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Alerts not delivered, by reason: ``rate``, ``full``."""
    last_error: str | None = None
    last_ok: float | None = None


FailureListener = Callable[[HookFailure], None]


class Sent:
    """Which firing alerts were delivered and when, kept in a JSON file.

    Limitation: two qwatch processes sharing the file may each deliver the
    same leak once; the last to write wins. Deduplication across hosts is
    Alertmanager's job.
    """

    def __init__(self, path: Path | None, repeat: float) -> None:
        self.path = path
        self.repeat = repeat
        self.lock = threading.Lock()
        self.at: dict[str, float] = self._load()

    def _load(self) -> dict[str, float]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): float(v) for k, v in dict(data).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}  # missing or damaged: at worst one leak is sent again

    def claim(self, key: str, now: float) -> bool:
        """True (and remembered) unless ``key`` was sent within ``repeat``."""
        with self.lock:
            last = self.at.get(key)
            if last is not None and now - last < self.repeat:
                return False
            self.at[key] = now
        self._save(now)
        return True

    def release(self, key: str) -> bool:
        """Forget ``key``; True when it had been sent."""
        with self.lock:
            had = self.at.pop(key, None) is not None
        if had:
            self._save(time.time())
        return had

    def _save(self, now: float) -> None:
        if self.path is None:
            return
        with self.lock:
            keep = {k: t for k, t in self.at.items() if now - t < self.repeat}
            self.at = keep
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = self.path.with_suffix(".tmp")
            temp.write_text(json.dumps(keep), encoding="utf-8")
            os.replace(temp, self.path)
        except OSError as exc:
            log.warning("cannot save hook state to %s: %s", self.path, exc)


class _Worker:
    """One hook's queue and thread."""

    def __init__(self, deliverer: Deliverer, owner: Hooks) -> None:
        self.deliverer = deliverer
        self.owner = owner
        self.stats = HookStats()
        self.queue: queue.Queue[Alert | None] = queue.Queue(QUEUE_SIZE)
        self.recent: deque[float] = deque()
        self.thread = threading.Thread(
            target=self._run, name=f"qwatch {deliverer.name} hook", daemon=True
        )
        self.thread.start()

    def offer(self, alert: Alert, rate: int, now: float) -> str | None:
        """Queue ``alert``; the reason when it was dropped instead."""
        while self.recent and now - self.recent[0] >= RATE_WINDOW:
            self.recent.popleft()
        if len(self.recent) >= rate:
            return "rate"
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            return "full"
        self.recent.append(now)
        return None

    def _run(self) -> None:
        while (alert := self.queue.get()) is not None:
            try:
                self.deliverer.deliver(alert)
            except HookError as exc:
                self.owner.failed(self, alert, str(exc))
            except Exception as exc:  # a deliverer bug must not kill the thread
                log.exception("%s hook crashed", self.deliverer.name)
                self.owner.failed(self, alert, f"{type(exc).__name__}: {exc}")
            else:
                self.stats.delivered += 1
                self.stats.last_ok = time.time()
                log.info("%s hook sent %s", self.deliverer.name, alert.name)
        self.deliverer.close()


class Hooks:
    """Deliver alerts to every hook; see the module docstring.

    Args:
        deliverers: the hooks (a command, a webhook).
        rate: most deliveries per hook per minute.
        repeat: seconds before the same leak is delivered again.
        state: file that remembers deliveries across runs; None keeps them in
            memory only.
    """

    def __init__(
        self,
        deliverers: Iterable[Deliverer],
        rate: int = 10,
        repeat: float = 3600.0,
        state: Path | None = None,
    ) -> None:
        self.rate = rate
        self.sent = Sent(state, repeat)
        self.failure_listeners: list[FailureListener] = []
        """Called on the hook's thread with each :class:`HookFailure`."""
        self.failures: deque[HookFailure] = deque(maxlen=100)
        """Recent failures, newest last, for whoever polls instead."""
        self._workers = [_Worker(d, self) for d in deliverers]

    @property
    def stats(self) -> dict[str, HookStats]:
        """Counts per hook name."""
        return {w.deliverer.name: w.stats for w in self._workers}

    def __call__(self, alert: Alert) -> None:
        """Take one alert (an Alerts listener); never blocks."""
        key = f"{alert.target}\x1f{alert.name}"
        now = time.time()
        if alert.cleared:
            if not self.sent.release(key):
                return  # its leak was never delivered: nothing to clear
        elif not self.sent.claim(key, now):
            log.info("hooks: %s on %s already sent", alert.name, alert.target)
            return
        for worker in self._workers:
            reason = worker.offer(alert, self.rate, now)
            if reason is not None:
                self._dropped(worker, alert, reason)

    def _dropped(self, worker: _Worker, alert: Alert, reason: str) -> None:
        stats = worker.stats
        first = not stats.dropped.get(reason)
        stats.dropped[reason] = stats.dropped.get(reason, 0) + 1
        why = {
            "rate": f"over {self.rate} a minute, alert dropped",
            "full": f"{QUEUE_SIZE} alerts waiting, alert dropped",
        }[reason]
        log.warning("%s hook: %s (%s)", worker.deliverer.name, why, alert.name)
        if first or stats.dropped[reason] % 100 == 0:
            self._report(HookFailure(worker.deliverer.name, why, alert, time.time()))

    def failed(self, worker: _Worker, alert: Alert, error: str) -> None:
        """Record a failed delivery (called on the worker's thread)."""
        stats = worker.stats
        stats.failed += 1
        stats.last_error = error
        if not alert.cleared:
            # Not delivered, so the next run may try again.
            self.sent.release(f"{alert.target}\x1f{alert.name}")
        log.error("%s hook failed for %s: %s", worker.deliverer.name, alert.name, error)
        self._report(HookFailure(worker.deliverer.name, error, alert, time.time()))

    def _report(self, failure: HookFailure) -> None:
        self.failures.append(failure)
        for listener in self.failure_listeners:
            try:
                listener(failure)
            except Exception:  # a broken listener must not stop delivery
                log.exception("hook failure listener failed")

    def close(self, wait: float = 10.0) -> bool:
        """Deliver what is queued, for at most ``wait`` seconds in all.

        Returns:
            True when every queued alert was handled in time.
        """
        deadline = time.monotonic() + wait
        for worker in self._workers:
            with contextlib.suppress(queue.Full):
                worker.queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        done = True
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            if worker.thread.is_alive():
                done = False
                log.warning("%s hook still busy at exit", worker.deliverer.name)
        return done
