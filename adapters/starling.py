"""Starling, Kestrel and MemcacheQ: memcache-protocol queue servers.

Watching sends ``stats`` and nothing else: on Starling a ``get`` pops an item
and creates a queue for any name it is given. ``stats`` blocks a Starling
while it runs and grows faster than the queue count, so the poll interval is
stretched to keep that cost a small share of the server's time; Starling
also dies at about 4,086 loaded queues, so the count is shown against that
ceiling with a forecast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from qwatch.adapters.base import (
    ActionError,
    Adapter,
    Item,
    ItemSink,
    Progress,
    PurgeResult,
    TargetError,
)

from qwatch.model import Kind, Sample, Snapshot
from qwatch.starling.client import ProtocolError, QueueClient
from qwatch.starling.statsparse import QueueStats, ServerStats, parse_stats

log = logging.getLogger(__name__)

DEFAULT_PORT = 22122
QUEUE_CEILING = 4086
"""Queues a stock Starling holds before ``NOT STORED``: 4,096 descriptors,
9 its own, 1 for our connection."""
_COUNTERS = ("total_items", "cmd_get", "cmd_set", "bytes_read", "total_connections")
FORECAST_SPAN = 300.0
"""Seconds of queue counts the ceiling forecast looks back over."""


class StarlingAdapter(Adapter):
    """One long-lived connection to a Starling (or Kestrel, MemcacheQ).

    Options: ``timeout`` (s, default 45), ``connect_timeout`` (5),
    ``queue_ceiling`` (4086), ``max_stats_share`` (0.05).
    """

    schemes: ClassVar[tuple[str, ...]] = ("starling", "memcacheq", "kestrel")
    can_drain: ClassVar[bool] = True
    can_purge: ClassVar[bool] = True
    can_peek: ClassVar[bool] = False
    peek_side_effect: ClassVar[str | None] = (
        "Starling has no non-destructive read: get removes the item"
    )

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise TargetError(f"{url!r}: bad port ({exc})") from None
        if not parts.hostname:
            raise TargetError(f"{url!r}: no host; use {self.scheme}://host:port")
        opts = self.options
        self.ceiling = int(opts.get("queue_ceiling", QUEUE_CEILING))
        self.max_share = float(opts.get("max_stats_share", 0.05))
        self.client = QueueClient(
            parts.hostname, port, float(opts.get("timeout", 45.0)),
            float(opts.get("connect_timeout", 5.0)),
        )  # fmt: skip
        self._stats_time: float | None = None
        self._last_start: float | None = None
        self._last_globals: dict[str, str] | None = None
        self._counts: deque[tuple[float, int]] = deque()

    async def connect(self) -> None:
        """Open the one connection used for everything."""
        try:
            await self.client.connect()
        except (OSError, TimeoutError) as exc:
            raise TargetError(f"{self.label}: cannot connect ({_why(exc)})") from None

    async def close(self) -> None:
        """Close the connection."""
        await self.client.close()

    def suggested_interval(self, requested: float) -> float:
        """Wait long enough that ``stats`` stays within ``max_stats_share``."""
        base = float(max(requested, self.min_interval))
        if self._stats_time is None:
            return base
        return max(base, self._stats_time * (1 / self.max_share - 1))

    async def _stats(self, args: bytes = b"") -> bytes:
        """One stats call; a dropped connection (a restart) is retried once."""
        for attempt in (1, 2):
            try:
                return await self.client.stats(args)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if attempt == 2:
                    raise TargetError(f"{self.label}: {_why(exc)}") from None
            except (OSError, TimeoutError) as exc:
                # Limitation: a timeout may mean a fresh connection at the
                # descriptor cap, which the server accepts but never serves.
                why = "no reply in time" if isinstance(exc, TimeoutError) else _why(exc)
                raise TargetError(f"{self.label}: stats failed ({why})") from None
            except ProtocolError as exc:
                raise TargetError(f"{self.label}: {exc}") from None
        raise AssertionError("unreachable")

    async def poll(self) -> Snapshot:
        """Read every loaded queue from ``stats``; never get or set."""
        started, at = time.monotonic(), time.time()
        raw = await self._stats()
        took = time.monotonic() - started
        parsed = parse_stats(raw)
        if self.scheme == "memcacheq":
            _add_memcacheq(parsed, await self._stats(b"queue"))
        restarted = self._restarted(parsed.globals)
        samples = [_sample(q.name, q.fields) for q in parsed.queues]
        snap = Snapshot(at, samples, restarted=restarted, elapsed=took)
        snap.server = self._server_facts(parsed, took, started, at, restarted)
        if parsed.unknown:
            snap.notes.append(f"{len(parsed.unknown)} stats lines not understood")
        return snap

    def _restarted(self, now: dict[str, str]) -> bool:
        """Pid changed, uptime went back, or a server-wide counter went down."""
        before, self._last_globals = self._last_globals, now
        if before is None:
            return False
        if now.get("pid") != before.get("pid"):
            return True
        keys = ("uptime", *_COUNTERS)
        return any(_num(now, k) < _num(before, k) for k in keys if k in now)

    def _server_facts(
        self, parsed: ServerStats, took: float, started: float, at: float, fresh: bool
    ) -> dict[str, Any]:
        share = self._share(took, started)
        count = len(parsed.queues)
        if fresh:
            self._counts.clear()
        facts: dict[str, Any] = {
            "version": parsed.globals.get("version"),
            "uptime": int(_num(parsed.globals, "uptime")),
            "stats_seconds": round(took, 4),
            "stats_share": share,
            "queue_count": count,
            "queue_ceiling": self.ceiling,
            "ceiling_eta_seconds": self._eta(at, count),
        }
        for key in ("curr_items", "bytes", "total_items", "pid"):
            if key in parsed.globals:
                facts[key] = int(_num(parsed.globals, key))
        return facts

    def _share(self, took: float, started: float) -> float:
        """Share of wall time spent in stats, measured start to start."""
        self._stats_time = took if self._stats_time is None else (
            0.5 * self._stats_time + 0.5 * took
        )  # fmt: skip
        last, self._last_start = self._last_start, started
        period = started - last if last is not None else None
        if not period or period <= took:
            period = took + self.suggested_interval(self.min_interval)
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

    async def peek(self, queue: str, count: int) -> list[Item]:
        """Refused: every read on Starling is a ``get`` that removes the item."""
        raise ActionError(
            f"{self.label}: Starling has no non-destructive read; a get would "
            f"remove items from {queue!r} (use drain to save them to a file)"
        )

    async def drain(
        self,
        queue: str,
        sink: ItemSink,
        limit: int | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
    ) -> int:
        """Get one item at a time, each durable in ``sink`` before the next;
        then delete the emptied queue (a get loop alone leaves it loaded)."""
        name = _wire(queue)
        moved = 0
        while limit is None or moved < limit:
            if cancel is not None and cancel.is_set():
                break
            last = limit is not None and moved + 1 == limit
            data = await self._act(self.client.get(name), queue)
            if data is None:
                await self._finish_drain(name, queue, sink, moved, progress)
                break
            await self._keep(name, queue, sink, data)
            moved += 1
            if progress is not None:
                progress(moved)
            if last:
                break
        log.info("drained %d items from %s %r", moved, self.label, queue)
        return moved

    async def _finish_drain(
        self,
        name: bytes,
        queue: str,
        sink: ItemSink,
        moved: int,
        progress: Progress | None,
    ) -> None:
        # get and delete travel in one packet, so no producer's set lands
        # between the last empty get and the delete.
        # Limitation: if items arrived after our last empty get, the first is
        # kept but any later ones go with the queue.
        data = await self._act(self.client.get_then_delete(name), queue)
        if data is not None:
            log.warning("%s %r: an item arrived while deleting", self.label, queue)
            await self._keep(name, queue, sink, data)
            if progress is not None:
                progress(moved + 1)

    async def _keep(self, name: bytes, queue: str, sink: ItemSink, data: bytes) -> None:
        """Write one taken item to the sink; on failure put it back."""
        try:
            await sink.write(Item(data))
        except Exception as exc:
            await self._act(self.client.set(name, data), queue)
            raise ActionError(
                f"drain of {queue!r} stopped: the drain file failed ({_why(exc)}); "
                "the item in hand was put back at the tail"
            ) from exc

    async def purge(
        self,
        names: Sequence[str],
        expected: dict[str, Sample] | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
        expire: float | None = None,
    ) -> PurgeResult:
        """``delete`` exactly ``names``; skip any whose depth moved since the
        preview. Starling has no TTL for a whole queue."""
        if expire is not None:
            raise ActionError(f"{self.label}: Starling cannot give a queue a TTL")
        depths = await self._depths() if expected else {}
        result = PurgeResult()
        for name in names:
            if cancel is not None and cancel.is_set():
                result.skipped[name] = "cancelled"
                continue
            why = _changed(name, expected or {}, depths)
            if why:
                result.skipped[name] = why
            elif await self._act(self.client.delete(_wire(name)), name):
                result.deleted.append(name)
                result.items += depths.get(name, 0)
            else:
                result.skipped[name] = "not loaded on the server (restarted?)"
            if progress is not None:
                progress(len(result.deleted))
        log.info("purged %d queues on %s", len(result.deleted), self.label)
        return result

    async def _depths(self) -> dict[str, int]:
        parsed = parse_stats(await self._stats())
        return {q.name: q.fields.get("items", 0) for q in parsed.queues}

    async def restore(self, queue: str, items: AsyncIterator[Item]) -> int:
        """``set`` each item back, in order."""
        name, count = _wire(queue), 0
        async for item in items:
            exptime = int(item.meta.get("exptime", 0))
            if not await self._act(self.client.set(name, item.body, exptime), queue):
                raise ActionError(
                    f"{queue!r}: server refused item {count + 1} (NOT STORED: "
                    f"queue ceiling reached?); {count} restored"
                )
            count += 1
        log.info("restored %d items to %s %r", count, self.label, queue)
        return count

    async def _act(self, call: Any, queue: str) -> Any:
        try:
            return await call
        except (
            OSError,
            TimeoutError,
            ProtocolError,
            asyncio.IncompleteReadError,
        ) as exc:
            raise ActionError(f"{self.label} {queue!r}: {_why(exc)}") from None


def _sample(name: str, fields: dict[str, int]) -> Sample:
    items = fields.get("items", 0)
    total = fields.get("total_items")
    expired = fields.get("expired_items", 0)
    out = None if total is None else max(0, total - items - expired)
    return Sample(
        name=name, kind=Kind.QUEUE, depth=items, total_in=total, total_out=out,
        consumers=fields.get("waiters"), unacked=fields.get("open_transactions"),
        bytes=fields.get("bytes"), info=fields,
    )  # fmt: skip


def _add_memcacheq(parsed: ServerStats, raw: bytes) -> None:
    """MemcacheQ lists queues under ``stats queue`` as ``name in/out``."""
    for line in raw.decode("latin-1").split("\r\n"):
        name, _, counts = line[5:].rpartition(" ")
        ins, _, outs = counts.partition("/")
        if line.startswith("STAT ") and ins.isdigit() and outs.isdigit():
            fields = {"items": int(ins) - int(outs), "total_items": int(ins)}
            parsed.queues.append(QueueStats(name, fields))


def _changed(name: str, expected: dict[str, Sample], depths: dict[str, int]) -> str:
    if name not in expected:
        return ""
    if name not in depths:
        return "gone since the preview"
    was, now = expected[name].depth, depths[name]
    return f"changed since the preview ({was} -> {now} items)" if was != now else ""


def _wire(name: str) -> bytes:
    try:
        data = name.encode("latin-1")
    except UnicodeEncodeError:
        raise ActionError(f"{name!r}: not a name Starling can hold") from None
    if not 1 <= len(data) <= 250 or b"\r" in data or b"\n" in data:
        raise ActionError(f"{name!r}: Starling names are 1-250 bytes on one line")
    return data


def _num(values: dict[str, str], key: str) -> float:
    try:
        return float(values.get(key, 0))
    except ValueError:
        return 0.0


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
