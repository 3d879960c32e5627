"""What qwatch knows about each Redis key, and how one poll reads them all.

Each known key keeps its read commands pre-packed, so a steady poll of 100,000
keys is one ``b"".join`` and one streamed pipeline. Replies are turned into
samples in the same order, while later replies are still arriving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qwatch.adapters.redis_wire import ReplyError, arg, head

from qwatch.model import Kind, Sample

log = logging.getLogger(__name__)

KINDS = {
    b"string": Kind.STRING,
    b"list": Kind.LIST,
    b"zset": Kind.ZSET,
    b"set": Kind.SET,
    b"hash": Kind.HASH,
    b"stream": Kind.STREAM,
}
SIZES = {
    Kind.LIST: head("LLEN", argc=2),
    Kind.ZSET: head("ZCARD", argc=2),
    Kind.SET: head("SCARD", argc=2),
    Kind.HASH: head("HLEN", argc=2),
    Kind.STREAM: head("XLEN", argc=2),
}
CONTAINERS = frozenset(SIZES)
"""Kinds Redis deletes when they empty: remembered a while after they vanish."""
KEEP_GONE = 120.0
"""Seconds a vanished container is still reported, at depth 0."""
IDLE = head("OBJECT", "IDLETIME", argc=3)
PTTL = head("PTTL", argc=2)
EXISTS = head("EXISTS", argc=2)
TOP = b"*5\r\n" + arg("ZRANGE") + b"%s" + arg(-1) + arg(-1) + arg("WITHSCORES")
GROUPS = head("XINFO", "GROUPS", argc=3)
MEMORY = head("MEMORY", "USAGE", argc=3)
STRLEN = head("STRLEN", argc=2)
LRU_SLACK = 1.2
"""Seconds of slack on OBJECT IDLETIME: the LRU clock ticks in whole seconds
and is refreshed 10 times a second."""
YEAR = 365 * 86400.0


@dataclass(slots=True)
class Columns:
    """What this server lets qwatch read; a refused command turns one off."""

    idle: bool = True
    memory: bool = True
    xinfo: bool = True
    ttl: bool = True
    no_touch: bool = False
    """CLIENT NO-TOUCH is on: size reads leave idle times alone."""
    notes: dict[str, str] = field(default_factory=dict)

    def refuse(self, column: str, command: str, error: object) -> None:
        """Turn ``column`` off for good and say why in every snapshot."""
        setattr(self, column, False)
        self.notes[column] = f"{column} not read: {command} refused ({error})"
        log.warning("%s", self.notes[column])


class KeyState:
    """One key: its kind, packed commands, and qwatch's view of its idle time."""

    __slots__ = (
        "bytes",
        "cmds",
        "depth",
        "gone_at",
        "idle",
        "key",
        "kind",
        "n",
        "name",
        "plain",
        "seen",
        "sized",
        "touch",
    )

    def __init__(self, key: bytes, kind: Kind, cols: Columns) -> None:
        self.key = key
        self.name = key.decode("utf-8", "surrogateescape")
        self.kind = kind
        self.bytes: int | None = None
        self.depth = -1
        self.idle: float | None = None
        self.seen: float | None = None
        """When qwatch last read it, for the idle bookkeeping."""
        self.gone_at: float | None = None
        self.pack(cols)

    def pack(self, cols: Columns) -> None:
        """Pre-pack this key's read commands for the columns allowed now."""
        fmt, self.n, self.sized, self.plain, self.touch = _plan(self.kind, cols)
        self.cmds = fmt % ((arg(self.key),) * self.n)


Plan = tuple[bytes, int, bool, bool, bool]
_PLANS: dict[tuple[object, ...], Plan] = {}


def _plan(kind: Kind, cols: Columns) -> Plan:
    """The commands for one kind of key, with ``%s`` where the key goes.

    Worked out once per kind and set of columns: the first poll packs
    100,000 keys, and assembling each key's parts anew was a third of it.
    """
    sig = (kind, cols.idle, cols.ttl, cols.xinfo, cols.no_touch, cols.memory)
    plan = _PLANS.get(sig)
    if plan is not None:
        return plan
    parts = [IDLE + b"%s"] if cols.idle else []
    sized = kind in SIZES
    if sized:
        parts.append(SIZES[kind] + b"%s")
    parts.append((PTTL if cols.ttl else EXISTS) + b"%s")
    if kind is Kind.ZSET:
        parts.append(TOP)
    if kind is Kind.STREAM and cols.xinfo:
        parts.append(GROUPS + b"%s")
    # No replies beyond idle, size and TTL: the fast path reads it.
    plain = len(parts) == cols.idle + sized + 1
    # True when qwatch's own reads of this key reset its idle clock.
    touch = not cols.no_touch and (sized or (kind is Kind.STRING and not cols.memory))
    plan = _PLANS[sig] = (b"".join(parts), len(parts), sized, plain, touch)
    return plan


def bytes_cmd(state: KeyState, cols: Columns) -> bytes:
    """Size in bytes of a string key; MEMORY USAGE leaves the idle clock alone."""
    return (MEMORY if cols.memory else STRLEN) + arg(state.key)


class Reading:
    """Turns one poll's replies into samples, noting what must change next."""

    def __init__(self, cols: Columns, now: float) -> None:
        self.cols = cols
        # The layout the commands were packed with, even if a column is
        # refused half-way through this poll.
        self.has_idle = int(cols.idle)
        self.has_ttl = cols.ttl
        self.now = now
        self.wall = time.time()
        self.dead: list[KeyState] = []
        self.retype: list[bytes] = []
        self.refresh: list[KeyState] = []
        self.repack = False

    def consume(
        self, states: list[KeyState], k: int, r: list[Any], pos: int, out: list[Sample]
    ) -> tuple[int, int]:
        """Samples for ``states[k:]`` whose replies have all arrived.

        The common case (no error, nothing gone, no extra replies) is read
        inline: at 100,000 keys a poll, a call per key is most of the cost.
        Returns the next key index and reply position.
        """
        has_idle, now, got, count = self.has_idle, self.now, len(r), len(states)
        while k < count:
            st = states[k]
            end = pos + st.n
            if end > got:
                break
            idle = r[pos] if has_idle else None
            size = r[pos + has_idle] if st.sized else 1
            ttl = r[end - 1]
            if not (
                st.plain and type(ttl) is int and ttl != -2 and type(size) is int
            ) or (has_idle and type(idle) is not int):
                sample = self.read(st, r, pos)
                if sample is not None:
                    out.append(sample)
                pos, k = end, k + 1
                continue
            if idle is not None:
                seen, before = st.seen, st.idle
                st.seen = now
                if seen is None or before is None:
                    pass
                elif st.touch:
                    # Limitation: on Redis < 7.2 our size reads reset the LRU
                    # clock, so a read by others within ~1 s of ours that does
                    # not change the size goes unseen.
                    if idle + LRU_SLACK >= now - seen and size == st.depth:
                        idle = before + now - seen  # only we touched it
                elif st.kind is Kind.STRING and idle + LRU_SLACK < now - seen:
                    self.refresh.append(st)  # written since we looked: size again
                st.idle = idle
            st.gone_at = None
            st.depth = size
            expires = ttl / 1000 if ttl >= 0 else None
            out.append(
                Sample(st.name, st.kind, size, None, None, None, None, None, None,
                       st.bytes, expires, idle, True, ttl >= 0, None)
            )  # fmt: skip
            pos, k = end, k + 1
        return k, pos

    def read(self, st: KeyState, r: list[Any], i: int) -> Sample | None:
        """The sample for ``st`` from replies ``r[i:i + st.n]``."""
        end = i + st.n
        idle = r[i] if self.has_idle else None
        i += self.has_idle
        size: Any = 1
        if st.kind in SIZES:
            size, i = r[i], i + 1
        ttl = r[i]
        extra = r[i + 1] if i + 1 < end else None
        if type(idle) is ReplyError:
            self._refuse("idle", "OBJECT IDLETIME", idle)
            idle = None
        if type(ttl) is ReplyError:
            self._refuse("ttl", "PTTL", ttl)
            ttl = None
        elif not self.has_ttl:
            ttl = -1 if ttl else -2
        if type(size) is ReplyError:
            self._wrong_type(st, size)
            return None
        if ttl == -2:
            return self._gone(st)
        st.gone_at = None
        sample = Sample(st.name, st.kind, size)
        if ttl is not None and ttl >= 0:
            sample.ttl = ttl / 1000
            sample.bounded = True
        sample.idle = self._idle(st, idle, size)
        st.depth = size
        if st.kind is Kind.STRING:
            sample.bytes = st.bytes
        elif st.kind is Kind.ZSET:
            self._top(sample, extra)
        elif st.kind is Kind.STREAM and extra is not None:
            self._groups(sample, extra)
        return sample

    def _refuse(self, column: str, command: str, error: object) -> None:
        if getattr(self.cols, column):
            self.cols.refuse(column, command, error)
            self.repack = True

    def _wrong_type(self, st: KeyState, error: object) -> None:
        # The key was deleted and made again as another type: learn it again.
        if "WRONGTYPE" not in str(error):
            log.debug("reading %r failed: %s", st.name, error)
        self.dead.append(st)
        self.retype.append(st.key)

    def _gone(self, st: KeyState) -> Sample | None:
        if st.kind in CONTAINERS:
            if st.gone_at is None:
                st.gone_at = self.now
            if self.now - st.gone_at <= KEEP_GONE:
                return Sample(st.name, st.kind, 0, present=False)
        self.dead.append(st)
        if st.kind in CONTAINERS:
            return None
        # A one-off key is reported missing once, so its family counts it gone.
        return Sample(st.name, st.kind, 0, present=False)

    def _idle(self, st: KeyState, reported: Any, depth: int) -> float | None:
        """Idle seconds as others see it, even where qwatch's reads touch."""
        if reported is None:
            return None
        idle = float(reported)
        seen, st.seen = st.seen, self.now
        if seen is not None and st.idle is not None and st.touch:
            since = self.now - seen
            # Idle at least as long as our last read: nobody else came by.
            if idle + LRU_SLACK >= since and depth == st.depth:
                idle = st.idle + since
        elif (
            st.kind is Kind.STRING
            and seen is not None
            and idle + LRU_SLACK < (self.now - seen)
        ):
            self.refresh.append(st)  # written since we last looked: size again
        st.idle = idle
        return idle

    def _top(self, sample: Sample, top: Any) -> None:
        if not top or type(top) is ReplyError:
            return
        score = float(top[1])
        sample.info = {"top_score": score}
        if scheduled(score, self.wall):
            sample.bounded = True

    def _groups(self, sample: Sample, groups: Any) -> None:
        if type(groups) is ReplyError:
            if "no such key" not in str(groups):
                self._refuse("xinfo", "XINFO GROUPS", groups)
            return
        pending = consumers = 0
        reads: list[int] = []
        for group in groups or ():
            facts = dict(zip(group[::2], group[1::2], strict=False))
            pending += int(facts.get(b"pending") or 0)
            consumers += int(facts.get(b"consumers") or 0)
            if facts.get(b"entries-read") is not None:
                reads.append(int(facts[b"entries-read"]))
        sample.unacked, sample.consumers = pending, consumers
        sample.info = {"groups": len(groups or ())}
        if reads:
            # Every group reads the whole stream: the furthest one counts.
            sample.total_out = max(reads)


def scheduled(score: float, now: float) -> bool:
    """A score that is a future unix time (s, ms, or BullMQ's ms * 4096)."""
    for scale in (1.0, 1000.0, 4096000.0):
        if now * scale < score <= (now + 10 * YEAR) * scale:
            return True
    return False


def read_bytes(
    states: Iterable[KeyState], replies: list[Any], cols: Columns
) -> list[KeyState]:
    """Store string sizes; returns the keys to ask again with STRLEN."""
    failed = []
    for st, reply in zip(states, replies, strict=True):
        if isinstance(reply, int):
            st.bytes = reply
        elif type(reply) is ReplyError:
            failed.append((st, reply))
    if not failed or not cols.memory:
        return []
    # MEMORY USAGE is refused: fall back to STRLEN, which touches the key.
    cols.refuse("memory", "MEMORY USAGE", failed[0][1])
    return [st for st, _ in failed]
