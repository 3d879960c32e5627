"""Polling a real broker: numbers, scope, degraded modes and read-only-ness."""

from __future__ import annotations

import aio_pika
import pytest
from fixtures_rabbit import AMQP, API, RabbitVhost, eventually
from qwatch.adapters import adapter_for
from qwatch.adapters.base import TargetError

from qwatch.model import Sample, Snapshot


async def poll(url: str, options: dict[str, object]) -> Snapshot:
    adapter = adapter_for(url, options)
    try:
        await adapter.connect()
        return await adapter.poll()
    finally:
        await adapter.close()


def by_name(snap: Snapshot) -> dict[str, Sample]:
    return {s.name: s for s in snap.queues}


async def test_poll_reads_ready_unacked_consumers_and_arguments(
    rabbit_vhost: RabbitVhost,
) -> None:
    """A bounded queue with a holding consumer shows 3 ready + 2 unacked."""
    channel = await rabbit_vhost.channel()
    args = {"x-max-length": 100, "x-dead-letter-exchange": "dlx"}
    await channel.declare_queue("jobs", durable=True, arguments=args)
    await channel.declare_queue(
        "qq", durable=True, arguments={"x-queue-type": "quorum"}
    )
    for n in range(5):
        await channel.default_exchange.publish(aio_pika.Message(b"%d" % n), "jobs")
    holder = await rabbit_vhost.channel()
    await holder.set_qos(prefetch_count=2)
    held: list[object] = []

    async def hold(message: object) -> None:
        held.append(message)  # never acked: two stay unacked

    queue = await holder.get_queue("jobs")
    await queue.consume(hold)

    async def settled() -> dict[str, Sample] | None:
        found = by_name(await poll(rabbit_vhost.url, rabbit_vhost.options))
        jobs = found.get("jobs")
        # consumer counts and queue metrics reach the stats db separately
        done = jobs and (jobs.unacked, jobs.total_in, jobs.consumers) == (2, 5, 1)
        return found if done else None

    found = await eventually(settled, timeout=20)
    jobs = found["jobs"]
    assert (jobs.depth, jobs.consumers, jobs.total_out) == (5, 1, 0)
    assert jobs.bounded and jobs.ttl is None
    assert jobs.info is not None
    assert jobs.info["dead_letter"] == {"x-dead-letter-exchange": "dlx"}
    assert (jobs.info["type"], jobs.info["durable"]) == ("classic", True)
    assert found["qq"].info is not None and found["qq"].info["type"] == "quorum"


async def test_every_vhost_is_watched_when_the_url_names_none(
    rabbit_vhost: RabbitVhost,
) -> None:
    """amqp://host lists this test's queue as ``vhost/queue``, with memory."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("seen-everywhere")
    snap = await poll(AMQP, {"management_url": API})
    assert f"{rabbit_vhost.name}/seen-everywhere" in by_name(snap)
    assert snap.server["memory_limit"] > snap.server["memory_used"] > 0
    assert snap.server["stats_interval"] == 5.0


async def test_polling_changes_nothing_on_the_server(rabbit_vhost: RabbitVhost) -> None:
    """Several polls leave idle_since, gets and deliveries exactly as they were."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("quiet")
    await channel.default_exchange.publish(aio_pika.Message(b"x"), "quiet")

    async def idle() -> dict[str, object] | None:
        info = await rabbit_vhost.queue_info("quiet")
        return info if info.get("idle_since") and info.get("messages") == 1 else None

    before = await eventually(idle, timeout=20)
    for _ in range(3):
        await poll(rabbit_vhost.url, rabbit_vhost.options)
    after = await rabbit_vhost.queue_info("quiet")
    assert after["idle_since"] == before["idle_since"]
    assert after["messages"] == 1
    stats = after.get("message_stats", {})
    assert stats.get("deliver_get", 0) == 0 and stats.get("get_empty", 0) == 0


async def test_unknown_vhost_is_one_clear_error(rabbit_ready: str) -> None:
    """A vhost that does not exist is named in a one-line TargetError."""
    with pytest.raises(TargetError, match="does not exist"):
        await poll(f"{AMQP}/no-such-vhost-qwatch", {"management_url": API})


async def test_wrong_password_is_one_clear_error(rabbit_ready: str) -> None:
    """The management API's 401 becomes one line, no traceback."""
    url = "amqp://guest:wrong@127.0.0.1:5672/"
    with pytest.raises(TargetError, match="refused") as caught:
        await poll(url, {"management_url": API})
    assert "\n" not in str(caught.value)


async def test_without_management_api_named_queues_are_read_over_amqp(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Passive declares give ready counts; the snapshot says what is missing."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("named")
    for _ in range(3):
        await channel.default_exchange.publish(aio_pika.Message(b"x"), "named")
    options = {"management_url": "http://127.0.0.1:1", "queues": ["named", "absent"]}
    snap = await poll(rabbit_vhost.url, options)
    found = by_name(snap)
    assert (found["named"].depth, found["named"].consumers) == (3, 0)
    assert not found["absent"].present
    assert "management API unreachable" in snap.notes[0]
    assert "no unacked, rates" in snap.notes[0]


async def test_without_management_api_or_named_queues_the_target_fails(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Nothing can be seen, so the error says how to fix it."""
    options = {"management_url": "http://127.0.0.1:1"}
    with pytest.raises(TargetError, match="enable the management plugin"):
        await poll(rabbit_vhost.url, options)
