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
from urllib.parse import parse_qsl, unquote, urlsplit

import hiredis
from qwatch.adapters.base import TargetError, mask_url
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


def database(url: str) -> int:
    """The database index in the URL's path (or its ``?db=``), 0 when absent.

    redis-py reads ``/abc`` and ``/0/extra`` as database 0 without a word, so
    the path is checked here before anything connects.

    Raises:
        TargetError: the path is not one number, or ``?db=`` says it too.
    """
    parts = urlsplit(url)
    path = unquote(parts.path).strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise TargetError(
            f"{mask_url(url)}: the database must be a number, e.g. /0 "
            f"(got {parts.path!r})"
        )
    query = dict(parse_qsl(parts.query)).get("db")
    if path and query is not None:
        raise TargetError(
            f"{mask_url(url)}: the database is given twice; keep /{path} or ?db="
        )
    return int(path or 0) if query is None else int(query)


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
            # redis-py's parse_url carries no annotations.
            parsed = parse_url(url)  # type: ignore[no-untyped-call]
            self.options: dict[str, Any] = parsed
        except ValueError as exc:
            raise TargetError(f"{label}: bad URL: {exc}") from None
        self.label = label
        self.db = database(url)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the socket, authenticate and select the database."""
        host = self.options.get("host", "localhost")
        port = int(self.options.get("port", 6379))
        context = self._tls_context()
        try:
            opening = asyncio.open_connection(host, port, limit=READ_SIZE)
            self._reader, writer = await asyncio.wait_for(opening, timeout)
        except (OSError, TimeoutError) as exc:
            why = _why(exc, timeout)
            raise TargetError(f"{self.label}: cannot connect: {why}") from None
        self._writer = writer
        if context is not None:
            await self._start_tls(writer, context, host, timeout)
        await self._hello()

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.options.get("connection_class") is not SSLConnection:
            return None
        try:
            return _ssl_context(self.options)
        except OSError as exc:  # ssl.SSLError too, for a file that is no CA
            why = f"cannot use ssl_ca_certs: {_why(exc)}"
            raise TargetError(f"{self.label}: {why}") from None

    async def _start_tls(
        self,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        host: str,
        timeout: float,
    ) -> None:
        # The handshake is its own step, so a server that does not speak TLS
        # is told apart from one that cannot be reached.
        try:
            upgrade = writer.start_tls(context, server_hostname=host)
            await asyncio.wait_for(upgrade, timeout)
        except (OSError, TimeoutError) as exc:
            # Not close(): after a failed upgrade the stream never hears that
            # its socket closed, so waiting for that would wait forever.
            writer.transport.abort()
            self._reader = self._writer = None
            why = _tls_why(exc, timeout)
            raise TargetError(f"{self.label}: TLS handshake failed: {why}") from None

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


def _why(exc: BaseException, timeout: float = 0.0) -> str:
    """The first line of the error; some carry no text, so say what they mean."""
    lines = str(exc).strip().splitlines()
    if lines:
        return lines[0]
    if isinstance(exc, TimeoutError):
        return f"no answer in {timeout:g} s"
    if isinstance(exc, ConnectionError | ssl.SSLEOFError):
        return "the server closed the connection"
    return type(exc).__name__


def _tls_why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or _why(exc)  # it speaks TLS; trust is the issue
    if isinstance(exc, ssl.SSLError) and exc.reason:
        why = exc.reason.lower().replace("_", " ")
    else:
        why = _why(exc, timeout)
    return f"{why}; does this port speak TLS?"
