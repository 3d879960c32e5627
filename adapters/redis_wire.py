"""A bare RESP connection for the poll's big read-only pipelines.

redis-py spends 10-17 us of Python on every pipelined command, which is over a
second for 100,000 keys. Polling sends pre-packed command bytes on one socket
and parses the replies with hiredis, streaming them back as they arrive, so
the server and the parser work at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import hiredis
from qwatch.adapters.base import TargetError
from redis.connection import SSLConnection, parse_url

ReplyError = hiredis.ReplyError
READ_SIZE = 1 << 18
"""Bytes asked of the socket per read; large reads mean fewer wake-ups."""


def arg(value: bytes | str | int) -> bytes:
    """One RESP bulk-string argument."""
    if type(value) is bytes:  # keys, 100,000 a poll: the hot path first
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        value = value.encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*args: bytes | str | int) -> bytes:
    """A whole RESP command."""
    return b"*%d\r\n" % len(args) + b"".join(arg(a) for a in args)


TYPE = b"*2\r\n$4\r\nTYPE\r\n"


def type_cmds(keys: list[bytes]) -> bytes:
    """TYPE for each key, packed in one go (the first poll packs 100,000)."""
    return b"".join([b"%s$%d\r\n%s\r\n" % (TYPE, len(k), k) for k in keys])


def head(*words: str, argc: int) -> bytes:
    """The start of a command whose last argument (the key) comes later."""
    return b"*%d\r\n" % argc + b"".join(arg(w) for w in words)


def _ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Wire:
    """One connection to one Redis database, read-only by use."""

    def __init__(self, url: str, label: str) -> None:
        try:
            self.options = parse_url(url)
        except ValueError as exc:
            raise TargetError(f"{label}: bad URL: {exc}") from None
        self.label = label
        self.db = int(self.options.get("db") or 0)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the socket, authenticate and select the database."""
        host = self.options.get("host", "localhost")
        port = int(self.options.get("port", 6379))
        tls = self.options.get("connection_class") is SSLConnection
        context = _ssl_context(self.options) if tls else None
        try:
            opening = asyncio.open_connection(host, port, ssl=context, limit=READ_SIZE)
            self._reader, self._writer = await asyncio.wait_for(opening, timeout)
        except (OSError, TimeoutError) as exc:
            raise TargetError(f"{self.label}: cannot connect: {exc}") from None
        await self._hello()

    async def _hello(self) -> None:
        password = self.options.get("password")
        if password is not None:
            user = self.options.get("username")
            auth = ("AUTH", user, password) if user else ("AUTH", password)
            await self.checked(*auth)
        if self.db:
            await self.checked("SELECT", self.db)
        await self.call("CLIENT", "SETNAME", "qwatch")

    async def checked(self, *args: bytes | str | int) -> Any:
        """One command whose error reply means the target cannot be read."""
        reply = await self.call(*args)
        if isinstance(reply, ReplyError):
            word = str(args[0])
            raise TargetError(f"{self.label}: {word} refused: {reply}")
        return reply

    async def call(self, *args: bytes | str | int) -> Any:
        """One command; an error reply is returned, not raised."""
        replies = [r async for batch in self.stream(pack(*args), 1) for r in batch]
        return replies[0]

    async def stream(self, data: bytes, count: int) -> AsyncIterator[list[Any]]:
        """Send ``data`` and yield its ``count`` replies in arrival batches."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise TargetError(f"{self.label}: not connected")
        writer.write(data)
        parser, seen = self._parser, 0
        while seen < count:
            chunk = await reader.read(READ_SIZE)
            if not chunk:
                raise TargetError(f"{self.label}: connection closed by the server")
            parser.feed(chunk)
            batch = []
            reply = parser.gets()
            while reply is not False:
                batch.append(reply)
                reply = parser.gets()
            seen += len(batch)
            yield batch

    async def close(self) -> None:
        """Close the socket; safe to call twice."""
        writer, self._writer, self._reader = self._writer, None, None
        self._parser = hiredis.Reader()
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
