"""The contract every backend adapter keeps.

An adapter answers "what queues are there, how deep, how fast in and out" with
:meth:`Adapter.poll`, and offers drain, purge and peek where the server allows.
It knows nothing of Textual: the dashboard, the CLI and the exporter all drive
adapters the same way. Polling must never change the server.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit, urlunsplit

from qwatch.model import Sample, Snapshot

if TYPE_CHECKING:
    from qwatch.adapters.options import Options

Progress = Callable[[int], None]
"""Called with the running count of items handled."""


class TargetError(Exception):
    """A target could not be reached or read; the message says why in one line."""


class ActionError(Exception):
    """An operator action was refused or failed; the message says why."""


@dataclass(slots=True)
class Item:
    """One item taken from (or put back into) a queue."""

    body: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    """What the server knows of it: AMQP properties and headers, a sorted-set
    score, a stream id and fields, a hash field, a TTL."""


class ItemSink(Protocol):
    """Where drained items go; ``write`` returns once the item is durable."""

    async def write(self, item: Item) -> None:
        """Persist one item (written, flushed and fsynced) before returning."""


@dataclass(slots=True)
class PurgeResult:
    """What a purge did."""

    deleted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Names left alone, with why (changed since the preview, gone, ...)."""
    items: int = 0


class Adapter(ABC):
    """Base class for one server connection.

    Args:
        url: the target URL, secrets included; show :attr:`label` instead.
        options: adapter settings from config, such as ``management_url``.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    can_drain: ClassVar[bool] = False
    can_purge: ClassVar[bool] = False
    can_peek: ClassVar[bool] = False
    can_expire: ClassVar[bool] = False
    """Can set a TTL on members instead of deleting them."""
    peek_side_effect: ClassVar[str | None] = None
    """What peeking changes on this server, said before the operator peeks."""
    min_interval: ClassVar[float] = 1.0
    """Shortest sensible poll interval in seconds."""
    declared_options: ClassVar[Options | None] = None
    """Every option this adapter reads (see :mod:`~qwatch.adapters.options`);
    None leaves options unchecked, for adapters written before the list."""
    url_keys: ClassVar[Options] = {}
    """URL query keys the client library reads from the URL itself."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = self.check_target(url, options or {})

    @classmethod
    def check_target(cls, url: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options typed, once the URL's query and ``options`` are checked.

        Called before anything is built, so config files are checked early.

        Raises:
            TargetError: one line naming the bad key (an ``OptionError``).
        """
        if cls.declared_options is None:
            return dict(options)
        # Imported here: the options module builds on this one's TargetError.
        from qwatch.adapters.options import check_options

        return check_options(url, options, cls.declared_options, cls.url_keys)

    @property
    def label(self) -> str:
        """The URL with any password masked, safe for screens and logs."""
        return mask_url(self.url)

    def suggested_interval(self, requested: float) -> float:
        """The interval to wait before the next poll; servers may stretch it."""
        return max(requested, self.min_interval)

    async def connect(self) -> None:  # noqa: B027 - optional for adapters
        """Open connections; raise :class:`TargetError` when it cannot."""

    @abstractmethod
    async def poll(self) -> Snapshot:
        """Read every queue's numbers without changing the server."""

    async def close(self) -> None:  # noqa: B027 - optional for adapters
        """Release connections; safe to call twice."""

    async def peek(self, queue: str, count: int) -> list[Item]:
        """Up to ``count`` items from the head of ``queue``, left in place."""
        raise ActionError(f"{self.label}: peek is not supported here")

    async def drain(
        self,
        queue: str,
        sink: ItemSink,
        limit: int | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
    ) -> int:
        """Move items out to ``sink``; an item leaves the server only once the
        sink holds it. Returns the count moved."""
        raise ActionError(f"{self.label}: drain is not supported here")

    async def purge(
        self,
        names: Sequence[str],
        expected: dict[str, Sample] | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
        expire: float | None = None,
    ) -> PurgeResult:
        """Delete exactly ``names`` (or give them a TTL of ``expire`` seconds).

        ``expected`` maps names to the sample shown in the preview; a queue
        that changed since (read, given a TTL, grown) is skipped and reported.
        """
        raise ActionError(f"{self.label}: purge is not supported here")

    async def restore(self, queue: str, items: AsyncIterator[Item]) -> int:
        """Put items back in order; returns the count written."""
        raise ActionError(f"{self.label}: restore is not supported here")


def mask_url(url: str) -> str:
    """``scheme://user:***@host/...``: the password never reaches a screen."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
