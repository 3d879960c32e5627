"""One client connection speaking Starling 0.10's memcache dialect.

Input is split at CRLF and whole lines are handled in order. A ``set`` then
gathers whole lines until they add up to its byte count plus CRLF exactly; a
client that overshoots is never answered again on that connection, which is
what the real server does.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwatch.starling.queues import QueueCollection

ERROR = b"CLIENT_ERROR bad command line format\r\n"
# Starling's own patterns, greedy as in Ruby: ``delete job 5`` names the queue
# "job 5", and ``get`` drops trailing whitespace only past 250 characters.
_SET = re.compile(rb"set (.{1,250}) ([0-9]+) ([0-9]+) ([0-9]+)", re.DOTALL)
_GET = re.compile(rb"get (.{1,250})\s*", re.DOTALL)
_DELETE = re.compile(rb"delete (.{1,250})(?: [0-9]+)?", re.DOTALL)
_FLUSH = re.compile(rb"flush_all(?: [0-9]+)?")
VERBS = frozenset((b"get", b"set", b"delete", b"stats", b"flush_all", b"quit"))
"""Verbs counted by name; anything else counts as ``other``."""


class _PendingSet:
    __slots__ = ("data", "exptime", "name", "size")

    def __init__(self, name: bytes, exptime: int, size: int) -> None:
        self.name, self.exptime, self.size = name, exptime, size
        self.data = bytearray()


class StarlingConnection(asyncio.Protocol):
    """Serves one client.

    Args:
        collection: the server's queues and counters.
        stats_reply: builds the ``stats`` reply for this connection.
        admit: called with this connection once the transport exists; returns
            True when a descriptor is free to serve it now.
        lost: called when the connection ends.
    """

    def __init__(
        self,
        collection: QueueCollection,
        stats_reply: Callable[[StarlingConnection], bytes],
        admit: Callable[[StarlingConnection], bool],
        lost: Callable[[StarlingConnection], None],
    ) -> None:
        self.qc = collection
        self._stats_reply = stats_reply
        self._admit = admit
        self._lost = lost
        self.transport: asyncio.Transport | None = None
        self.expired: dict[bytes, int] = defaultdict(int)
        """Expired items this connection skipped, per queue (Starling keeps
        them per connection)."""
        self.verbs: Counter[str] = Counter()
        """Command lines this connection sent, by verb (tests prove with it
        that watching sends nothing but ``stats``)."""
        self.served = False
        self._buf = bytearray()
        self._pending: _PendingSet | None = None
        self._wedged = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Serve now, or hold the socket unread until a descriptor frees."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self._admit(self):
            transport.pause_reading()

    def serve(self) -> None:
        """Start reading (a held connection got its descriptor)."""
        self.served = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """Give the descriptor back."""
        self._lost(self)

    def data_received(self, data: bytes) -> None:
        """Handle every complete line received so far."""
        self.qc.stats["bytes_read"] += len(data)
        if self._wedged:
            return
        self._buf += data
        start = 0
        while not self._wedged:
            end = self._buf.find(b"\r\n", start)
            if end < 0:
                break
            self._line(bytes(self._buf[start:end]))
            start = end + 2
        del self._buf[:start]
        if self._wedged:
            self._buf.clear()

    def _line(self, line: bytes) -> None:
        if self._pending is not None:
            self._gather(line)
        else:
            self._command(line)

    def _gather(self, line: bytes) -> None:
        pending = self._pending
        assert pending is not None
        pending.data += line + b"\r\n"
        if len(pending.data) > pending.size + 2:
            self._wedged = True  # the real server waits for ever here
        elif len(pending.data) == pending.size + 2:
            self._pending = None
            data = bytes(pending.data[: pending.size])
            stored = self.qc.put(pending.name, pending.exptime, data)
            self._send(b"STORED\r\n" if stored else b"NOT STORED\r\n")

    def _command(self, line: bytes) -> None:
        verb = line.split(b" ", 1)[0]
        self._count(verb.decode("latin-1") if verb in VERBS else "other")
        if line == b"stats":
            self._send(self._stats_reply(self))
        elif (match := _GET.fullmatch(line)) is not None:
            self._get(match.group(1))
        elif (match := _SET.fullmatch(line)) is not None:
            self.qc.stats["cmd_set"] += 1
            name, _flags, exptime, size = match.groups()
            self._pending = _PendingSet(name, int(exptime), int(size))
        elif (match := _DELETE.fullmatch(line)) is not None:
            found = self.qc.delete(match.group(1))
            self._send(b"DELETED\r\n" if found else b"NOT_FOUND\r\n")
        elif _FLUSH.fullmatch(line):
            self._send(b"OK\r\n")  # Starling accepts flush_all and ignores it
        elif line != b"quit":
            self._send(ERROR)

    def _count(self, verb: str) -> None:
        self.verbs[verb] += 1
        self.qc.verbs[verb] += 1

    def _get(self, name: bytes) -> None:
        self.qc.stats["cmd_get"] += 1
        now = int(self.qc.clock())
        while (entry := self.qc.take(name)) is not None:
            if entry.exptime == 0 or entry.exptime >= now:
                head = b"VALUE %s 0 %d\r\n" % (name, len(entry.data))
                self._send(head + entry.data + b"\r\nEND\r\n")
                return
            self.expired[name] += 1
        self._send(b"END\r\n")

    def _send(self, reply: bytes) -> None:
        self.qc.stats["bytes_written"] += len(reply)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)
