"""Journal-backed queues and the collection that opens them, as Starling keeps them.

Each queue appends to one journal file named after it: a push is ``\\x00``, a
4-byte length and the value (4-byte exptime + data); a pop is ``\\x01``. A
queue is loaded only when a command names it, replaying its journal.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PUSH = b"\x00"
POP = b"\x01"
_LEN = struct.Struct("<I")
MAX_LOGSIZE = 16 * 1024 * 1024
"""An empty queue whose journal outgrew this starts a fresh one, as Starling does."""


@dataclass(slots=True)
class Entry:
    """One stored item: its exptime (0 = never), data and arrival time."""

    exptime: int
    data: bytes
    born: float

    @property
    def size(self) -> int:
        """Bytes Starling counts for it: data plus the 4-byte exptime."""
        return len(self.data) + 4


@dataclass(slots=True)
class JournalQueue:
    """One loaded queue and its journal file."""

    path: bytes
    items: deque[Entry] = field(default_factory=deque)
    total_items: int = 0
    logsize: int = 0
    age_ms: int = 0
    initial_bytes: int = 0

    def push(self, exptime: int, data: bytes, now: float) -> None:
        """Append an item and journal it."""
        value = _LEN.pack(exptime % 2**32) + data
        self._write(PUSH + _LEN.pack(len(value)) + value)
        self.items.append(Entry(exptime, data, now))
        self.total_items += 1

    def pop(self, now: float) -> Entry | None:
        """Take the oldest item (journalled), or None when empty."""
        if not self.items:
            return None
        entry = self.items.popleft()
        self._write(POP)
        self.age_ms = int((now - entry.born) * 1000)
        if not self.items and self.logsize > MAX_LOGSIZE:
            self._rotate()
        return entry

    def replay(self, now: float) -> None:
        """Rebuild the items from the journal; each push counts in total_items."""
        with open(self.path, "ab+") as handle:
            handle.seek(0)
            blob = handle.read()
        pos = 0
        while pos < len(blob):
            if blob[pos : pos + 1] == POP:
                if self.items:
                    self.items.popleft()
                pos += 1
                continue
            if pos + 5 > len(blob):
                break
            (size,) = _LEN.unpack_from(blob, pos + 1)
            value = blob[pos + 5 : pos + 5 + size]
            if len(value) < max(size, 4):
                break  # a torn last record: the write never finished
            (exptime,) = _LEN.unpack_from(value)
            self.items.append(Entry(exptime, value[4:], now))
            self.total_items += 1
            pos += 5 + size
        self.logsize = len(blob)
        self.initial_bytes = sum(e.size for e in self.items)

    def _write(self, record: bytes) -> None:
        # Limitation: the journal is opened per write rather than held open, so
        # the modelled descriptor budget, not the OS limit, decides the cap.
        with open(self.path, "ab") as handle:
            handle.write(record)
        self.logsize += len(record)

    def _rotate(self) -> None:
        with open(self.path, "wb"):
            pass
        self.logsize = 0


class QueueCollection:
    """All loaded queues, the server-wide counters and the descriptor budget.

    Args:
        folder: the journal folder.
        max_fds: descriptor table size; Starling dies at 4096.
        reserved_fds: descriptors the server holds before any client.
        clock: seconds since the epoch; tests may move it forward.
    """

    def __init__(
        self,
        folder: str,
        max_fds: int = 4096,
        reserved_fds: int = 9,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = os.fsencode(folder)
        self.max_fds = max_fds
        self.reserved_fds = reserved_fds
        self.clock = clock
        self.queues: dict[bytes, JournalQueue] = {}
        self.on_free: Callable[[], None] = lambda: None
        """Called when a descriptor is given back (a queue deleted)."""
        self.connections = 0
        """Connections holding a descriptor now."""
        self.verbs: Counter[str] = Counter()
        """Command lines received from every connection, by verb."""
        self.stats = dict.fromkeys(
            ("total_items", "bytes", "total_connections", "cmd_get", "cmd_set",
             "get_hits", "get_misses", "bytes_read", "bytes_written"), 0,
        )  # fmt: skip

    @property
    def fds_used(self) -> int:
        """Descriptors in use: reserved, one per connection, one per queue."""
        return self.reserved_fds + self.connections + len(self.queues)

    def has_free_fd(self) -> bool:
        """True while one more descriptor can be opened."""
        return self.fds_used < self.max_fds

    def open(self, name: bytes) -> JournalQueue | None:
        """The queue called ``name``, loaded or created; None when it cannot be."""
        queue = self.queues.get(name)
        if queue is not None:
            return queue
        if not self.has_free_fd():
            return None
        path = os.path.join(self.folder, name)
        if b"/" in name or not name:
            return None
        queue = JournalQueue(path)
        try:
            queue.replay(self.clock())
        except (OSError, ValueError):
            return None  # Starling cannot open such a journal file either
        self.queues[name] = queue
        self.stats["bytes"] += queue.initial_bytes
        return queue

    def put(self, name: bytes, exptime: int, data: bytes) -> bool:
        """Store one item; False when the queue cannot be opened."""
        queue = self.open(name)
        if queue is None:
            return False
        queue.push(exptime, data, self.clock())
        self.stats["total_items"] += 1
        self.stats["bytes"] += len(data) + 4
        return True

    def take(self, name: bytes) -> Entry | None:
        """Pop one item, counting a hit, or a miss when there is none."""
        queue = self.open(name)
        entry = queue.pop(self.clock()) if queue is not None else None
        if entry is None:
            self.stats["get_misses"] += 1
            return None
        self.stats["get_hits"] += 1
        self.stats["bytes"] -= entry.size
        return entry

    def delete(self, name: bytes) -> bool:
        """Drop a loaded queue and its journal; ``bytes`` is left as it was."""
        queue = self.queues.pop(name, None)
        if queue is None:
            return False
        try:
            os.unlink(queue.path)
        except OSError as exc:
            log.warning("journal of %r not removed: %s", name, exc)
        self.on_free()
        return True

    def curr_items(self) -> int:
        """Items held by every loaded queue."""
        return sum(len(q.items) for q in self.queues.values())
