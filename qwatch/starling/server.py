"""An asyncio server that answers like Starling 0.10, quirks included.

It exists so qwatch's Starling support can be tested, benchmarked and demoed
with no Ruby installed; the recordings in the test suite hold it to the real
server's bytes. Settings that the real server fixes (descriptor table, stats
cost) are arguments here so tests can reach them quickly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable

from qwatch.starling.protocol import StarlingConnection
from qwatch.starling.queues import QueueCollection

log = logging.getLogger(__name__)

VERSION = "0.10.0"
_GLOBAL = (
    b"STAT pid %d\r\nSTAT uptime %d\r\nSTAT time %d\r\nSTAT version %s\r\n"
    b"STAT rusage_user %.6f\r\nSTAT rusage_system %.6f\r\nSTAT curr_items %d\r\n"
    b"STAT total_items %d\r\nSTAT bytes %d\r\nSTAT curr_connections 1\r\n"
    b"STAT total_connections %d\r\nSTAT cmd_get %d\r\nSTAT cmd_set %d\r\n"
    b"STAT get_hits %d\r\nSTAT get_misses %d\r\nSTAT bytes_read %d\r\n"
    b"STAT bytes_written %d\r\nSTAT limit_maxbytes 0\r\n"
)
_QUEUE = (
    b"STAT queue_%s_items %d\r\nSTAT queue_%s_total_items %d\r\n"
    b"STAT queue_%s_logsize %d\r\nSTAT queue_%s_expired_items %d\r\n"
    b"STAT queue_%s_age %d\r\n"
)


class StarlingServer:
    """A Starling-speaking server on ``host:port`` (port 0 picks a free one).

    Args:
        journal_dir: journal folder; None makes a temporary one that lives
            until :meth:`stop` (it survives :meth:`restart`).
        max_fds: descriptor table size; queues and connections each take one.
        reserved_fds: descriptors held before any client (9 for the real one).
        stats_cost: seconds ``stats`` blocks the whole server at 1,000 queues,
            growing with the square of the queue count; 0 turns it off.
        clock: seconds since the epoch; tests pass one they can move forward.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        journal_dir: str | None = None,
        max_fds: int = 4096,
        reserved_fds: int = 9,
        stats_cost: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self._own_dir = journal_dir is None
        self.journal_dir = journal_dir or tempfile.mkdtemp(prefix="starling-")
        os.makedirs(self.journal_dir, exist_ok=True)
        self.max_fds = max_fds
        self.reserved_fds = reserved_fds
        self.stats_cost = stats_cost
        self.clock = clock
        self.pid = os.getpid()
        self._server: asyncio.Server | None = None
        self._live: set[StarlingConnection] = set()
        self._held: list[StarlingConnection] = []
        self.qc = self._fresh_collection()
        self.started = clock()

    def _fresh_collection(self) -> QueueCollection:
        qc = QueueCollection(
            self.journal_dir, self.max_fds, self.reserved_fds, self.clock
        )
        qc.on_free = self.release_held
        return qc

    async def start(self) -> None:
        """Listen; :attr:`port` holds the real port afterwards."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("starling listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        await self._close()
        if self._own_dir:
            shutil.rmtree(self.journal_dir, ignore_errors=True)

    async def restart(self) -> None:
        """Stop and start again on the same port and journal, state forgotten."""
        await self._close()
        self.qc = self._fresh_collection()
        self.started = self.clock()
        await self.start()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in [*self._live, *self._held]:
            if conn.transport is not None:
                conn.transport.abort()
        self._live.clear()
        self._held.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _connection(self) -> StarlingConnection:
        return StarlingConnection(self.qc, self._stats, self._admit, self._lost)

    def _admit(self, conn: StarlingConnection) -> bool:
        """Serve a new connection if a descriptor is free, else hold it."""
        if not self.qc.has_free_fd():
            log.warning("descriptor table full: connection held unserved")
            self._held.append(conn)
            return False
        self._take_fd(conn)
        return True

    def _take_fd(self, conn: StarlingConnection) -> None:
        self.qc.connections += 1
        self.qc.stats["total_connections"] += 1
        self._live.add(conn)
        conn.serve()

    def _lost(self, conn: StarlingConnection) -> None:
        if conn in self._held:
            self._held.remove(conn)
            return
        if conn in self._live and conn.qc is self.qc:
            self._live.discard(conn)
            self.qc.connections -= 1
        self.release_held()

    def release_held(self) -> None:
        """Serve held connections while descriptors are free."""
        while self._held and self.qc.has_free_fd():
            self._take_fd(self._held.pop(0))

    def verbs_of(self, peer: tuple[str, int]) -> Counter[str] | None:
        """What the live connection from ``peer`` (host, port) has sent, by
        verb; None when no such connection is open."""
        for conn in self._live:
            if conn.transport is not None:
                name = conn.transport.get_extra_info("peername")
                if name is not None and tuple(name[:2]) == peer:
                    return Counter(conn.verbs)
        return None

    def _stats(self, conn: StarlingConnection) -> bytes:
        queues = self.qc.queues
        if self.stats_cost > 0:
            # Real Starling builds the reply in its only thread: nothing else
            # is served meanwhile, so the delay blocks the loop on purpose.
            time.sleep(self.stats_cost * (len(queues) / 1000) ** 2)
        now = self.clock()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        s = self.qc.stats
        head = _GLOBAL % (
            self.pid, int(now - self.started), int(now), VERSION.encode(),
            usage.ru_utime, usage.ru_stime, self.qc.curr_items(),
            s["total_items"], s["bytes"], s["total_connections"], s["cmd_get"],
            s["cmd_set"], s["get_hits"], s["get_misses"], s["bytes_read"],
            s["bytes_written"],
        )  # fmt: skip
        parts = [head]
        expired = conn.expired
        for name, q in queues.items():
            parts.append(
                _QUEUE % (name, len(q.items), name, q.total_items, name,
                          q.logsize, name, expired.get(name, 0), name, q.age_ms)
            )  # fmt: skip
        parts.append(b"END\r\n")
        return b"".join(parts)
