"""AMQP connections for what the management API cannot do or where it is absent.

One aio-pika connection per vhost, opened on first use. Work goes through the
underlying aiormq channel so message properties arrive exactly as the broker
sent them (aio-pika fills in defaults such as priority 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import AbstractChannel as RawChannel
from qwatch.adapters.base import TargetError
from qwatch.adapters.rabbitmq_target import RabbitTarget

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
DECLARE_CHANNELS = 8
"""Passive declares in flight: one channel serialises them (about 2,500/s);
several reach 6-7k/s."""

Counts = tuple[int, int]
"""(ready messages, consumers) from a passive declare."""
Declared = Counts | str | None
"""Counts; None when the queue does not exist; a reason when it is unreadable."""
REFUSALS = {
    aiormq.exceptions.ChannelLockedResource: "exclusive to another connection",
    aiormq.exceptions.ChannelAccessRefused: "no permission on it",
}
"""Refusals of a passive declare that leave the queue existing but unseen."""


class AmqpLink:
    """Lazily opened AMQP connections to the vhosts of one target."""

    def __init__(self, target: RabbitTarget) -> None:
        self.target = target
        self._conns: dict[str, AbstractConnection] = {}
        self._lock = asyncio.Lock()

    async def connection(self, vhost: str) -> AbstractConnection:
        """The open connection to ``vhost``, connecting on first use.

        Raises:
            TargetError: the broker refused or did not answer.
        """
        async with self._lock:
            conn = self._conns.get(vhost)
            if conn is not None and not conn.is_closed:
                return conn
            conn = await self._connect(vhost)
            self._conns[vhost] = conn
            return conn

    async def _connect(self, vhost: str) -> AbstractConnection:
        where = f"{self.target.scheme}://{self.target.host}:{self.target.port}"
        try:
            return await aio_pika.connect(
                self.target.amqp_url(vhost),
                timeout=CONNECT_TIMEOUT,
                client_properties={"connection_name": "qwatch"},
            )
        except aiormq.exceptions.ProbableAuthenticationError:
            raise TargetError(
                f"{where}: login refused for {self.target.user!r} on vhost {vhost!r}"
            ) from None
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
            raise TargetError(f"{where} vhost {vhost!r}: {_why(exc)}") from None

    @contextlib.asynccontextmanager
    async def channel(
        self, vhost: str, confirms: bool = False
    ) -> AsyncIterator[RawChannel]:
        """A fresh raw channel, closed afterwards (which requeues anything
        delivered and not acked)."""
        conn = await self.connection(vhost)
        chan = await conn.channel(publisher_confirms=confirms)
        try:
            yield await chan.get_underlay_channel()
        finally:
            await _quiet_close(chan)

    async def declare_counts(
        self, vhost: str, queues: Iterable[str]
    ) -> dict[str, Declared]:
        """Ready count and consumers of each named queue (see :data:`Declared`).

        Passive declares run on several channels at once; a missing or
        refused queue makes the broker close its channel, so that worker
        opens another.
        """
        conn = await self.connection(vhost)
        names = list(dict.fromkeys(queues))
        found: dict[str, Declared] = {}
        todo = iter(names)
        workers = min(DECLARE_CHANNELS, len(names))
        await asyncio.gather(
            *(_declare_worker(conn, todo, found) for _ in range(workers))
        )
        return found

    async def close(self) -> None:
        """Close every connection; safe to call twice."""
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()


async def _declare_worker(
    conn: AbstractConnection, todo: Iterator[str], found: dict[str, Declared]
) -> None:
    chan = await conn.channel(publisher_confirms=False)
    raw = await chan.get_underlay_channel()
    try:
        for name in todo:
            try:
                ok = await raw.queue_declare(name, passive=True)
            except (aiormq.exceptions.ChannelNotFoundEntity, *REFUSALS.keys()) as exc:
                found[name] = REFUSALS.get(type(exc))
                await _quiet_close(chan)
                chan = await conn.channel(publisher_confirms=False)
                raw = await chan.get_underlay_channel()
                continue
            found[name] = (int(ok.message_count or 0), int(ok.consumer_count or 0))
    finally:
        await _quiet_close(chan)


async def _quiet_close(chan: AbstractChannel) -> None:
    with contextlib.suppress(Exception):
        await chan.close()


def action_error_text(exc: BaseException) -> str:
    """One line for a channel error: which AMQP reply and why."""
    return _why(exc)


def _why(exc: BaseException) -> str:
    args: Any = getattr(exc, "args", ())
    for arg in args:
        text = getattr(arg, "reply_text", None)
        if text:
            return str(text)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
