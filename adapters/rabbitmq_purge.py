"""Purging exact queue names, skipping any that changed since the preview."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aiormq
from aiormq.abc import AbstractChannel as RawChannel
from qwatch.adapters.base import Progress, PurgeResult
from qwatch.adapters.rabbitmq_actions import CHANNEL_ERRORS, changed_since, empty_queue
from qwatch.adapters.rabbitmq_amqp import AmqpLink, action_error_text

from qwatch.families import pattern_of
from qwatch.model import Sample

log = logging.getLogger(__name__)

Located = tuple[str, str, str]
"""(qwatch name, vhost, queue)."""


async def purge_queues(
    link: AmqpLink,
    located: Sequence[Located],
    expected: dict[str, Sample],
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> PurgeResult:
    """Purge or delete each queue in turn on one channel per vhost.

    A refusal (gone, in use, exclusive to another connection) closes the
    channel; it is reopened and the name reported as skipped.
    """
    result = PurgeResult()
    done = 0
    for vhost in dict.fromkeys(v for _, v, _ in located):
        todo = [(n, q) for n, v, q in located if v == vhost]
        async with _Channel(link, vhost) as chan:
            for name, queue in todo:
                if cancel is not None and cancel.is_set():
                    result.skipped[name] = "cancelled"
                    continue
                await _purge_one(chan, name, queue, expected.get(name), result)
                done += 1
                if progress is not None:
                    progress(done)
    return result


async def _purge_one(
    chan: _Channel, name: str, queue: str, expected: Sample | None, result: PurgeResult
) -> None:
    raw = await chan.raw()
    try:
        ok = await raw.queue_declare(queue, passive=True)
        counts = (int(ok.message_count or 0), int(ok.consumer_count or 0))
        why = changed_since(expected, counts)
        if why is not None:
            result.skipped[name] = why
            return
        # Limitation: a message published between the check above and the
        # purge below goes with the rest; AMQP has no conditional purge.
        removed = await empty_queue(raw, queue, delete=is_one_off(queue))
    except aiormq.exceptions.ChannelNotFoundEntity:
        result.skipped[name] = "gone"
        await chan.reopen()
        return
    except CHANNEL_ERRORS as exc:
        result.skipped[name] = _refusal(exc)
        await chan.reopen()
        return
    result.deleted.append(name)
    result.items += removed
    log.info("purged %s: %d messages", name, removed)


def is_one_off(queue: str) -> bool:
    """A name holding an id (reply or per-task queue) rather than a fixed name."""
    return pattern_of(queue) != queue


def _refusal(exc: BaseException) -> str:
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        return "in use by a consumer"
    if isinstance(exc, aiormq.exceptions.ChannelLockedResource):
        return "exclusive to another connection"
    return action_error_text(exc)


class _Channel:
    """One channel, reopened after the broker closes it over a refusal."""

    def __init__(self, link: AmqpLink, vhost: str) -> None:
        self.link = link
        self.vhost = vhost
        self._cm: contextlib.AbstractAsyncContextManager[RawChannel] | None = None
        self._raw: RawChannel | None = None

    async def raw(self) -> RawChannel:
        """The open raw channel."""
        if self._raw is None:
            self._cm = self.link.channel(self.vhost)
            self._raw = await self._cm.__aenter__()
        return self._raw

    async def reopen(self) -> None:
        """Drop the closed channel; the next :meth:`raw` opens a new one."""
        cm, self._cm, self._raw = self._cm, None, None
        if cm is not None:
            with contextlib.suppress(Exception):
                await cm.__aexit__(None, None, None)

    async def __aenter__(self) -> _Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reopen()
