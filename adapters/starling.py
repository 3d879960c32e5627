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
from qwatch.adapters.options import Option, Options, duration, fraction, whole
from qwatch.adapters.starling_facts import QUEUE_CEILING, ServerFacts

from qwatch.model import Kind, Sample, Snapshot
from qwatch.starling.client import ProtocolError, QueueClient
from qwatch.starling.statsparse import QueueStats, ServerStats, parse_stats

log = logging.getLogger(__name__)

DEFAULT_PORT = 22122
DELETED = {
    "starling": (b"DELETED\r\n",),
    "memcacheq": (b"DELETED\r\n",),
    "kestrel": (b"DELETED\r\n", b"END\r\n"),  # Kestrel answers END to delete
}
"""Replies that mean a ``delete`` dropped the queue, per scheme."""
CLOSING_GETS = 64
"""Gets sent with the delete that ends a drain: items a producer slipped in
during that last round trip are caught, up to this many."""
OPTIONS: Options = {
    "timeout": Option(duration, "Seconds to wait for a reply (default 45)."),
    "connect_timeout": Option(duration, "Seconds to wait to connect (default 5)."),
    "queue_ceiling": Option(
        whole(1), f"Queues the server holds before refusing (default {QUEUE_CEILING})."
    ),
    "max_stats_share": Option(
        fraction, "Most of the server's time stats may take (default 0.05)."
    ),
}
"""Options from qwatch.toml; the URL carries none."""


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
    declared_options: ClassVar[Options | None] = OPTIONS

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
        ceiling: int = opts.get("queue_ceiling", QUEUE_CEILING)
        share: float = opts.get("max_stats_share", 0.05)
        timeouts = (opts.get("timeout", 45.0), opts.get("connect_timeout", 5.0))
        self.facts = ServerFacts(ceiling, share, self.min_interval)
        self.client = QueueClient(parts.hostname, port, *timeouts)
        self._deleted = DELETED.get(self.scheme, DELETED["starling"])

    @property
    def ceiling(self) -> int:
        """Queues the server holds before refusing new ones."""
        return self.facts.ceiling

    @ceiling.setter
    def ceiling(self, value: int) -> None:
        self.facts.ceiling = value

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
        return self.facts.interval(float(max(requested, self.min_interval)))

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
        restarted = self.facts.restarted(parsed.globals, at)
        samples = [_sample(q.name, q.fields) for q in parsed.queues]
        snap = Snapshot(at, samples, restarted=restarted, elapsed=took)
        count = len(parsed.queues)
        snap.server = self.facts.facts(parsed.globals, count, took, started, at)
        snap.notes.extend(self._notes(parsed, count, restarted))
        return snap

    def _notes(self, parsed: ServerStats, count: int, restarted: bool) -> list[str]:
        notes = []
        if restarted:
            notes.append(
                "server restarted: counters began again, and Starling lists a "
                "queue only once a client names it"
            )
        if self.scheme == "starling" and self.facts.at_ceiling(count):
            notes.append(
                f"{count:,} queues: at Starling's ceiling new queues get NOT "
                "STORED and new connections hang"
            )
        if parsed.unknown:
            notes.append(f"{len(parsed.unknown)} stats lines not understood")
        return notes

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
        moved, baseline, emptied = 0, None, False
        while limit is None or moved < limit:
            if cancel is not None and cancel.is_set():
                break
            data = await self._act(self.client.get(name), queue)
            if data is None:
                emptied = True
                break
            await self._keep(name, queue, sink, data)
            moved += 1
            if progress is not None:
                progress(moved)
            if baseline is None:
                baseline = await self._total_in(queue)  # loaded by the get now
        if emptied:
            moved += await self._delete_drained(name, queue, sink, baseline, moved)
            if progress is not None:
                progress(moved)
        log.info("drained %d items from %s %r", moved, self.label, queue)
        return moved

    async def _delete_drained(
        self, name: bytes, queue: str, sink: ItemSink, baseline: int | None,
        moved: int,
    ) -> int:  # fmt: skip
        """Delete the emptied queue unless a producer wrote to it meanwhile
        (Starling has no conditional delete); returns items still caught."""
        now = await self._total_in(queue)
        if baseline is not None and now != baseline:
            log.warning(
                "%s %r: written to while draining (%s -> %s items ever); "
                "the empty queue is left in place", self.label, queue, baseline, now,
            )  # fmt: skip
            return 0
        # The gets and the delete travel in one packet, so on a
        # single-threaded server no producer's set lands between them, and
        # whatever arrived since the check above is taken before the delete.
        # Limitation: more than CLOSING_GETS items set in that one round trip
        # would lose those beyond; it is logged as an error if it may have.
        taken = await self._act(
            self.client.gets_then_delete(name, CLOSING_GETS, self._deleted), queue
        )
        if len(taken) == CLOSING_GETS:
            log.error(
                "%s %r: %d items arrived while deleting; more may have been "
                "deleted with the queue", self.label, queue, len(taken),
            )  # fmt: skip
        elif taken:
            log.warning("%s %r: items arrived while deleting", self.label, queue)
        for data in taken:
            await self._keep(name, queue, sink, data)
        return len(taken)

    async def _total_in(self, queue: str) -> int | None:
        """The queue's ``total_items`` now; None when stats does not list it."""
        parsed = parse_stats(await self._act(self.client.stats(), queue))
        for found in parsed.queues:
            if found.name == queue:
                return found.fields.get("total_items")
        return None

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
            elif await self._act(self.client.delete(_wire(name), self._deleted), name):
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
    # Limitation: Starling counts expired_items per connection, and ours never
    # gets, so on Starling an expired item counts as taken out, not expired.
    gone = fields.get("expired_items", 0) + fields.get("discarded", 0)
    out = None if total is None else max(0, total - items - gone)
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


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
