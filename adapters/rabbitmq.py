"""RabbitMQ: every queue of every vhost from the management API, actions over AMQP.

Numbers come from one ``GET /api/queues?columns=...`` per poll. When the
management API does not answer, the queues named in ``options["queues"]`` are
read by passive declares over AMQP, and the snapshot says what is missing.
Drain, peek, purge and restore always use AMQP (aio-pika).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
from qwatch.adapters import rabbitmq_actions as actions
from qwatch.adapters.base import (
    ActionError,
    Adapter,
    Item,
    ItemSink,
    Progress,
    PurgeResult,
    TargetError,
)
from qwatch.adapters.options import Options
from qwatch.adapters.rabbitmq_amqp import AmqpLink, action_error_text
from qwatch.adapters.rabbitmq_http import ManagementApi, Unreachable
from qwatch.adapters.rabbitmq_purge import purge_queues
from qwatch.adapters.rabbitmq_samples import sample_from, server_facts
from qwatch.adapters.rabbitmq_target import (
    AMQP_KEYS,
    OPTIONS,
    RabbitTarget,
    target_options,
)

from qwatch.model import Kind, Sample, Snapshot

log = logging.getLogger(__name__)

STATS_INTERVAL = 5.0
"""The management plugin's default ``collect_statistics_interval``: counts
and rates change only this often, so polling faster reads the same numbers."""
NODE_EVERY = 30.0
"""Seconds between reads of node memory and uptime."""


class RabbitAdapter(Adapter):
    """A RabbitMQ broker: ``amqp://user:pass@host:5672/vhost`` or ``amqps://``.

    Options (in qwatch.toml or as URL query keys, see
    :mod:`~qwatch.adapters.rabbitmq_target`): ``management_url``, ``vhost``,
    ``queues`` (watched over AMQP when the management API is down),
    ``stats_interval``, ``page_size``, ``verify_tls``, ``cafile``,
    ``certfile``, ``keyfile``.
    """

    schemes: ClassVar[tuple[str, ...]] = ("amqp", "amqps")
    can_drain: ClassVar[bool] = True
    can_purge: ClassVar[bool] = True
    can_peek: ClassVar[bool] = True
    peek_side_effect: ClassVar[str | None] = (
        "peeked messages go back in place but marked redelivered; a quorum "
        "queue also counts the delivery towards its delivery-limit"
    )
    min_interval: ClassVar[float] = STATS_INTERVAL
    declared_options: ClassVar[Options | None] = OPTIONS
    url_keys: ClassVar[Options] = AMQP_KEYS

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.target = RabbitTarget.parse(url, self.options)
        self.stats_interval: float = self.options.get("stats_interval", STATS_INTERVAL)
        self.amqp = AmqpLink(self.target)
        self._api: ManagementApi | None = None
        self._overview: dict[str, Any] = {}
        self._where: dict[str, tuple[str, str]] = {}
        self._uptime: dict[str, int] = {}
        self._node_rows: list[dict[str, Any]] = []
        self._nodes_at = -NODE_EVERY

    @classmethod
    def check_target(cls, url: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options typed, ``no_verify_ssl`` in the query read as ``verify_tls``."""
        return target_options(url, options)

    def suggested_interval(self, requested: float) -> float:
        """Never faster than the broker refreshes its statistics."""
        return max(requested, self.stats_interval)

    async def connect(self) -> None:
        """Reach the management API, or AMQP when named queues allow it."""
        self._api = ManagementApi(
            self.target.management_url,
            self.target.user,
            self.target.password,
            verify=self.target.http_verify(),
            timeout=httpx.Timeout(30.0, connect=5.0),
            page_size=self.options.get("page_size"),
        )
        try:
            self._overview = await self._api.overview()
        except Unreachable as exc:
            self._need_named_queues(str(exc))
            await self.amqp.connection(self.target.vhost or "/")
            return
        vhost = self.target.vhost
        if vhost is not None and not await self._api.vhost_exists(vhost):
            raise TargetError(f"{self.label}: vhost {vhost!r} does not exist")

    async def poll(self) -> Snapshot:
        """One management request for every queue; AMQP when it is down."""
        if self._api is None:
            await self.connect()
        assert self._api is not None
        started = time.monotonic()
        try:
            snap = await self._poll_api(self._api)
        except Unreachable as exc:
            self._need_named_queues(str(exc))
            snap = await self._poll_amqp(str(exc))
        snap.elapsed = time.monotonic() - started
        log.debug("polled %s: %d queues", self.label, len(snap.queues))
        return snap

    async def _poll_api(self, api: ManagementApi) -> Snapshot:
        at = time.time()
        rows = await api.queues(self.target.vhost)
        nodes, notes, restarted = await self._nodes(api)
        stats = self._overview.get("rates_mode", "basic") != "none"
        where: dict[str, tuple[str, str]] = {}
        samples: list[Sample] = []
        for row in rows:
            queue, vhost = row.get("name"), row.get("vhost") or self.target.vhost
            if not isinstance(queue, str) or not isinstance(vhost, str):
                continue
            name = self.target.name_of(vhost, queue)
            where[name] = (vhost, queue)
            samples.append(sample_from(row, name, at, stats))
        self._where = where
        server = server_facts(nodes, self._overview)
        server.update(stats_interval=self.stats_interval, source="management API")
        server["queues"] = len(samples)
        return Snapshot(at, samples, server, notes, restarted)

    async def _nodes(
        self, api: ManagementApi
    ) -> tuple[list[dict[str, Any]], list[str], bool]:
        """Node rows (refreshed every :data:`NODE_EVERY` s), notes, restarted.

        Memory moves slowly, and a second request in the same poll competes
        with the queue listing for the broker's CPU, so nodes are read after
        it and only now and then. A user without the monitoring tag may list
        queues but not nodes: that is a note, not a failure.
        """
        now = time.monotonic()
        if now - self._nodes_at < NODE_EVERY:
            return self._node_rows, [], False
        try:
            rows = await api.nodes()
        except Unreachable:
            raise
        except TargetError as exc:
            return [], [f"node memory not readable: {exc}"], False
        self._node_rows, self._nodes_at = rows, now
        return rows, [], self._restarted(rows)

    def _restarted(self, nodes: list[dict[str, Any]]) -> bool:
        """A node's uptime went down: its queues' counters began again."""
        uptime = {str(n.get("name")): int(n.get("uptime") or 0) for n in nodes}
        before, self._uptime = self._uptime, uptime
        return any(uptime[n] < before[n] for n in uptime.keys() & before.keys())

    def _need_named_queues(self, why: str) -> None:
        if not self.options.get("queues"):
            raise TargetError(
                f"{why}; enable the management plugin, or name queues in "
                "options 'queues' to watch them over AMQP"
            )

    async def _poll_amqp(self, why: str) -> Snapshot:
        at = time.time()
        by_vhost: dict[str, list[tuple[str, str]]] = {}
        for name in self.options.get("queues") or ():
            vhost, queue = self._locate(str(name))
            by_vhost.setdefault(vhost, []).append((str(name), queue))
        samples: list[Sample] = []
        unseen: list[str] = []
        missing: list[str] = []
        for vhost, pairs in by_vhost.items():
            counts = await self.amqp.declare_counts(vhost, [q for _, q in pairs])
            for name, queue in pairs:
                found = counts.get(queue)
                if isinstance(found, str):
                    unseen.append(f"{name} ({found})")
                else:
                    samples.append(_declared(name, found))
                    if found is None:
                        missing.append(name)
        # Limitation: a passive declare counts as use of the queue, so it
        # renews an x-expires lease; only queues named in config are declared.
        notes = [
            f"management API unreachable ({why}): only the {len(samples)} named "
            "queues are watched, by AMQP passive declare; ready counts and "
            "consumers only: no unacked, rates, idle time, arguments, node memory "
            "or other queues"
        ]
        if unseen:
            notes.append("refused a passive declare: " + ", ".join(unseen))
        if missing:
            notes.append("no such queue: " + ", ".join(missing))
        server = {"source": "AMQP passive declare", "queues": len(samples)}
        # complete=False: queues missing here are unseen, not gone, so the
        # tracker must not count families as emptied by consumers.
        return Snapshot(at, samples, server, notes, complete=False)

    def _locate(self, name: str) -> tuple[str, str]:
        return self._where.get(name) or self.target.split(name)

    async def close(self) -> None:
        """Close HTTP and AMQP connections; safe to call twice."""
        api, self._api = self._api, None
        if api is not None:
            with contextlib.suppress(Exception):
                await api.close()
        await self.amqp.close()

    async def peek(self, queue: str, count: int) -> list[Item]:
        """Up to ``count`` messages from the head; see :attr:`peek_side_effect`."""
        async with self._acting(queue) as (raw, name):
            items = await actions.peek(raw, name, count)
        return items

    async def drain(
        self,
        queue: str,
        sink: ItemSink,
        limit: int | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
    ) -> int:
        """Consume with manual ack, acking each message once the sink holds it."""
        async with self._acting(queue) as (raw, name):
            moved = await actions.drain(raw, name, sink, limit, progress, cancel)
        log.info("drained %d messages from %s on %s", moved, queue, self.label)
        return moved

    async def restore(self, queue: str, items: AsyncIterator[Item]) -> int:
        """Publish in order to the default exchange, with the saved properties."""
        async with self._acting(queue, confirms=True) as (raw, name):
            written = await actions.restore(raw, name, items)
        log.info("restored %d messages into %s on %s", written, queue, self.label)
        return written

    async def purge(
        self,
        names: Sequence[str],
        expected: dict[str, Sample] | None = None,
        progress: Progress | None = None,
        cancel: asyncio.Event | None = None,
        expire: float | None = None,
    ) -> PurgeResult:
        """Empty named queues; delete id-named one-off queues outright.

        An empty reply or per-task queue is itself the leak, so a queue whose
        name holds an id is deleted (unless it gained a consumer); a queue
        with a plain name is emptied and kept with its bindings.
        """
        if expire is not None:
            raise ActionError(
                f"{self.label}: RabbitMQ cannot give an existing queue a TTL "
                "(use a policy with 'expires')"
            )
        located = [(name, *self._locate(name)) for name in names]
        result = await purge_queues(
            self.amqp, located, expected or {}, progress, cancel
        )
        log.info(
            "purged %d queues (%d messages) on %s; skipped %d",
            len(result.deleted),
            result.items,
            self.label,
            len(result.skipped),
        )
        return result

    @contextlib.asynccontextmanager
    async def _acting(
        self, queue: str, confirms: bool = False
    ) -> AsyncIterator[tuple[Any, str]]:
        """A channel on the queue's vhost; broker refusals become ActionError."""
        vhost, name = self._locate(queue)
        try:
            async with self.amqp.channel(vhost, confirms) as raw:
                yield raw, name
        except actions.CHANNEL_ERRORS as exc:
            raise ActionError(
                f"{self.label} {queue}: {action_error_text(exc)}"
            ) from None
        except TargetError as exc:
            raise ActionError(str(exc)) from None


def _declared(name: str, counts: tuple[int, int] | None) -> Sample:
    if counts is None:
        return Sample(name=name, kind=Kind.QUEUE, depth=0, present=False)
    ready, consumers = counts
    return Sample(name=name, kind=Kind.QUEUE, depth=ready, consumers=consumers)
