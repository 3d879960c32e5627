"""A small asyncio client for memcache-protocol queue servers (Starling, Kestrel).

pymemcache does not fit these servers: its ``raw_command`` keeps only the
last 4 KB read of a long reply (a ``stats`` at 4,000 queues is 1.6 MB), it
rejects the names with spaces Starling allows, and its default ``noreply``
is a ``CLIENT_ERROR`` on Starling. Replies here are framed by their byte
counts, so values holding CRLF or ``END`` come back whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

STATS_END = b"\r\nEND\r\n"
DELETED = (b"DELETED\r\n",)
READ_LIMIT = 256 * 1024 * 1024
"""Largest reply accepted; a stats at 10,000 queues is about 4 MB."""


class ProtocolError(Exception):
    """The server answered something this client cannot read."""


class QueueClient:
    """One connection; every call fails with a clear error after ``timeout``.

    A timed-out call closes the connection: the server may still be sending,
    or waiting for data it will never get (Starling's wedged ``set``).
    """

    def __init__(
        self, host: str, port: int, timeout: float = 45.0, connect_timeout: float = 5.0
    ) -> None:
        self.host, self.port = host, port
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open the connection if it is not open."""
        if self.connected:
            return
        opening = asyncio.open_connection(self.host, self.port, limit=READ_LIMIT)
        self._reader, self._writer = await asyncio.wait_for(
            opening, self.connect_timeout
        )

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _call(self, request: bytes, read: str) -> bytes:
        async with self._lock:
            await self.connect()
            assert self._reader is not None and self._writer is not None
            try:
                async with asyncio.timeout(self.timeout):
                    self._writer.write(request)
                    await self._writer.drain()
                    return await self._read(read)
            except BaseException:
                await self.close()
                raise

    async def _read(self, kind: str) -> bytes:
        reader = self._reader
        assert reader is not None
        if kind == "stats":
            first = await reader.readuntil(b"\r\n")
            if first == b"END\r\n":
                return first
            _check(first)
            return first + await reader.readuntil(STATS_END)
        if kind == "line":
            return _check(await reader.readuntil(b"\r\n"))
        head = _check(await reader.readuntil(b"\r\n"))
        if head == b"END\r\n":
            return b""
        size = _value_size(head)
        body = await reader.readexactly(size + 2)
        if await reader.readuntil(b"\r\n") != b"END\r\n":
            raise ProtocolError("value not followed by END")
        return b"V" + body[:size]

    async def stats(self, args: bytes = b"") -> bytes:
        """The raw ``stats`` reply, ``END`` line included."""
        line = b"stats " + args if args else b"stats"
        return await self._call(line + b"\r\n", "stats")

    async def get(self, name: bytes) -> bytes | None:
        """Pop one item (destructive on queue servers); None when empty."""
        got = await self._call(b"get " + name + b"\r\n", "value")
        return got[1:] if got else None

    async def set(self, name: bytes, data: bytes, exptime: int = 0) -> bool:
        """Append one item; False when the server answers ``NOT STORED``."""
        head = b"set %s 0 %d %d\r\n" % (name, exptime, len(data))
        line = await self._call(head + data + b"\r\n", "line")
        return line == b"STORED\r\n"

    async def delete(self, name: bytes, ok: tuple[bytes, ...] = DELETED) -> bool:
        """Drop a queue; False unless the reply is one of ``ok`` (Starling
        says ``NOT_FOUND`` for a queue it has not loaded)."""
        line = await self._call(b"delete " + name + b"\r\n", "line")
        return line in ok

    async def gets_then_delete(
        self, name: bytes, gets: int, ok: tuple[bytes, ...] = DELETED
    ) -> list[bytes]:
        """``gets`` gets and a ``delete`` in one packet, so no other client's
        command lands between them on a single-threaded server. Returns the
        values taken, oldest first.

        Raises:
            ProtocolError: the delete was refused.
        """
        async with self._lock:
            await self.connect()
            assert self._reader is not None and self._writer is not None
            try:
                async with asyncio.timeout(self.timeout):
                    get = b"get %s\r\n" % name
                    self._writer.write(get * gets + b"delete %s\r\n" % name)
                    await self._writer.drain()
                    got = [await self._read("value") for _ in range(gets)]
                    deleted = await self._read("line")
            except BaseException:
                await self.close()
                raise
        if deleted not in ok:
            raise ProtocolError(f"delete refused: {deleted.decode('latin-1').strip()}")
        return [value[1:] for value in got if value]


def _check(line: bytes) -> bytes:
    if line.startswith((b"CLIENT_ERROR", b"SERVER_ERROR", b"ERROR")):
        raise ProtocolError(line.decode("latin-1").strip())
    return line


def _value_size(head: bytes) -> int:
    # The name may hold spaces, so the size is the last field.
    if not head.startswith(b"VALUE "):
        raise ProtocolError(f"unexpected reply {head[:80]!r}")
    try:
        return int(head.rstrip(b"\r\n").rsplit(b" ", 1)[1])
    except (IndexError, ValueError) as exc:
        raise ProtocolError(f"bad VALUE line {head[:80]!r}") from exc
