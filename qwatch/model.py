"""What a server told us about its queues in one poll.

These types are shared by every adapter and by the core; they know nothing of
Textual or of any one server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """The kind of structure a queue is held in."""

    QUEUE = "queue"  # a broker queue: Starling, Kestrel, RabbitMQ
    LIST = "list"
    ZSET = "zset"
    SET = "set"
    HASH = "hash"
    STREAM = "stream"
    STRING = "string"
    OTHER = "other"


@dataclass(slots=True)
class Sample:
    """One queue as the server described it at one poll.

    Every optional field is None when the server does not say. Counters named
    ``total_*`` are cumulative since the server (or queue) started; qwatch turns
    them into rates and treats a decrease as a restart, never as a drop.
    """

    name: str
    kind: Kind
    depth: int
    """Items held now (a string key holds one)."""
    total_in: int | None = None
    """Items ever added, as counted by the server."""
    total_out: int | None = None
    """Items ever consumed (read, acked, popped), as counted by the server."""
    rate_in: float | None = None
    """Items per second going in, when the server computes it itself."""
    rate_out: float | None = None
    """Items per second going out, when the server computes it itself."""
    consumers: int | None = None
    unacked: int | None = None
    bytes: int | None = None
    ttl: float | None = None
    """Seconds until the queue itself expires; None when it never does."""
    idle: float | None = None
    """Seconds since anyone but qwatch touched it, when known."""
    present: bool = True
    """False for a queue the server no longer lists (Redis drops empty lists)."""
    bounded: bool = False
    """True when the server will remove items by itself (TTL, x-expires,
    max-length, scheduled sorted sets): growth there is not a leak."""
    info: dict[str, Any] | None = None
    """Server-specific facts shown in the detail pane."""
    length: int | None = None
    """Entries the structure holds, when that differs from ``depth``: a Redis
    stream keeps entries its consumer groups have taken, so its depth counts
    only what the slowest group has yet to take or acknowledge."""


@dataclass(slots=True)
class Snapshot:
    """Everything one poll of one target returned."""

    at: float
    """Wall-clock time of the poll (seconds since the epoch)."""
    queues: list[Sample]
    server: dict[str, Any] = field(default_factory=dict)
    """Server-wide facts: memory, queue ceiling, stats cost, version..."""
    notes: list[str] = field(default_factory=list)
    """What could not be read this poll and why (degraded columns)."""
    restarted: bool = False
    """The server restarted since the previous poll; counters began again."""
    elapsed: float = 0.0
    """Seconds the poll took."""
    complete: bool = True
    """False while discovery is still walking the keyspace."""
