"""Polling a real broker: numbers, scope, degraded modes and read-only-ness."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from fixtures_rabbit import (
    AMQP,
    API,
    SCRIPT,
    RabbitVhost,
    TlsProxy,
    eventually,
    forwarder_to,
)
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


async def test_paged_reading_lists_exactly_what_one_request_does(
    rabbit_vhost: RabbitVhost,
) -> None:
    """page_size=2 over 5 queues reads 3 pages and the same rows."""
    channel = await rabbit_vhost.channel()
    for n in range(5):
        await channel.declare_queue(f"paged-{n}")
    whole = await poll(rabbit_vhost.url, rabbit_vhost.options)
    paged = await poll(rabbit_vhost.url, {**rabbit_vhost.options, "page_size": 2})
    assert sorted(by_name(paged)) == sorted(by_name(whole))
    assert len(paged.queues) == 5


async def test_expiry_ttl_and_idle_time_are_read(rabbit_vhost: RabbitVhost) -> None:
    """x-expires gives the queue a TTL; x-message-ttl bounds it; idle counts."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("leased", arguments={"x-expires": 600_000})
    await channel.declare_queue("ttl", arguments={"x-message-ttl": 60_000})
    await channel.declare_queue("plain")

    async def idle() -> dict[str, Sample] | None:
        found = by_name(await poll(rabbit_vhost.url, rabbit_vhost.options))
        ready = all(found[q].idle is not None for q in ("leased", "ttl", "plain"))
        return found if ready else None

    found = await eventually(idle, timeout=20)
    leased, ttl, plain = found["leased"], found["ttl"], found["plain"]
    assert leased.bounded and leased.ttl is not None and 0 < leased.ttl <= 600
    assert ttl.bounded and ttl.ttl is None
    assert not plain.bounded and plain.ttl is None
    assert ttl.info is not None and ttl.info["bounds"] == {"message-ttl": 60_000}


async def test_publish_and_ack_rates_come_from_the_broker(
    rabbit_vhost: RabbitVhost,
) -> None:
    """While messages flow through, both rates and both counters are read."""
    channel = await rabbit_vhost.channel()
    queue = await channel.declare_queue("flowing")

    async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()

    await queue.consume(handle)

    async def flowing() -> Sample | None:
        for _ in range(50):
            await channel.default_exchange.publish(aio_pika.Message(b"x"), "flowing")
        found = by_name(await poll(rabbit_vhost.url, rabbit_vhost.options))
        sample = found["flowing"]
        return sample if sample.rate_in and sample.rate_out else None

    sample = await eventually(flowing, timeout=30)
    assert sample.total_in and sample.total_out
    assert sample.total_in >= sample.total_out > 0


async def test_passive_declare_refused_for_an_exclusive_queue_is_a_note(
    rabbit_vhost: RabbitVhost,
) -> None:
    """Another connection's exclusive queue closes the channel (405); the
    other named queues are still read and the note names the refused one."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("mine", exclusive=True)
    await channel.declare_queue("open")
    options = {
        "management_url": "http://127.0.0.1:1",
        "queues": ["mine", "absent", "open"],
    }
    snap = await poll(rabbit_vhost.url, options)
    found = by_name(snap)
    assert "mine" not in found and found["open"].present
    assert not found["absent"].present
    assert "mine (exclusive to another connection)" in snap.notes[1]
    assert snap.notes[2] == "no such queue: absent"
    assert snap.complete is False


async def test_management_api_lost_mid_run_falls_back_to_amqp(
    rabbit_vhost: RabbitVhost,
) -> None:
    """The API answers, then vanishes: the next poll reads the named queues
    over AMQP and says so; when it is back, every queue is listed again."""
    channel = await rabbit_vhost.channel()
    for name in ("named", "other"):
        await channel.declare_queue(name)
    proxy = forwarder_to(API, 15672)
    port = await proxy.start()
    options = {"management_url": f"http://127.0.0.1:{port}", "queues": ["named"]}
    adapter = adapter_for(rabbit_vhost.url, options)
    try:
        await adapter.connect()
        first = await adapter.poll()
        assert sorted(by_name(first)) == ["named", "other"] and first.complete
        proxy.stop()
        lost = await adapter.poll()
        assert list(by_name(lost)) == ["named"] and not lost.complete
        assert lost.server["source"] == "AMQP passive declare"
        assert "management API unreachable" in lost.notes[0]
        adapter.target = replace(adapter.target, management_url=API)
        await adapter.close()  # the next poll reconnects to the API
        back = await adapter.poll()
        assert sorted(by_name(back)) == ["named", "other"] and back.complete
    finally:
        await adapter.close()
        proxy.stop()


async def test_amqps_target_reads_over_tls_both_ways(
    rabbit_vhost: RabbitVhost, rabbit_tls: TlsProxy
) -> None:
    """amqps:// with cafile verifies the certificate on AMQP and on https."""
    channel = await rabbit_vhost.channel()
    await channel.declare_queue("secure")
    await channel.default_exchange.publish(aio_pika.Message(b"x"), "secure")
    base = f"amqps://guest:guest@127.0.0.1:{rabbit_tls.amqps_port}"
    url = f"{base}/{quote(rabbit_vhost.name, safe='')}?cafile={rabbit_tls.cafile}"
    https = f"https://127.0.0.1:{rabbit_tls.https_port}"

    async def listed() -> Sample | None:
        sample = by_name(await poll(url, {"management_url": https})).get("secure")
        return sample if sample and sample.depth == 1 else None

    assert await eventually(listed, timeout=20)
    fallback = {"management_url": "https://127.0.0.1:1", "queues": ["secure"]}
    snap = await poll(url, fallback)
    assert by_name(snap)["secure"].depth == 1


async def test_amqps_with_an_unknown_certificate_is_one_clear_error(
    rabbit_vhost: RabbitVhost, rabbit_tls: TlsProxy
) -> None:
    """Without the CA the certificate is refused; no_verify_ssl=1 accepts it."""
    https = f"https://127.0.0.1:{rabbit_tls.https_port}"
    url = f"amqps://guest:guest@127.0.0.1:{rabbit_tls.amqps_port}/{rabbit_vhost.name}"
    with pytest.raises(TargetError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        await poll(url, {"management_url": https})
    assert "\n" not in str(caught.value)
    snap = await poll(url + "?no_verify_ssl=1", {"management_url": https})
    assert snap.server["source"] == "management API"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("rabbitmq-server") is None,
    reason="starts a private broker node: needs root and rabbitmq-server",
)
def test_ensure_rabbitmq_enables_the_plugin_and_starts_a_stopped_broker() -> None:
    """A node that is stopped, with the management plugin not enabled, as on
    a fresh machine: the script enables the plugin, starts it, and the API
    answers. A private node on free ports, so the shared broker is untouched."""
    # not tmp_path: the broker runs as its own user, which cannot enter
    # pytest's root-only folders
    folder = Path(tempfile.mkdtemp(prefix="qwatch-node-"))
    folder.chmod(0o755)
    amqp, api, dist = _free_port(), _free_port(), _free_port()
    (folder / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {amqp}\nmanagement.tcp.port = {api}\n"
    )
    (folder / "enabled_plugins").write_text("[].\n")
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": f"qwatch-{uuid.uuid4().hex[:8]}@localhost",
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(folder / "pid"),
        "QWATCH_RABBIT_API": f"http://127.0.0.1:{api}",
    }
    for path in (folder, *folder.iterdir()):
        shutil.chown(path, "rabbitmq", "rabbitmq")
    try:
        done = subprocess.run(
            [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        assert "rabbitmq_management" in (folder / "enabled_plugins").read_text()
        answer = httpx.get(
            f"http://127.0.0.1:{api}/api/overview",
            params={"columns": "node"},
            auth=("guest", "guest"),
        )
        assert answer.json()["node"] == env["RABBITMQ_NODENAME"]
        again = subprocess.run([str(SCRIPT)], env=env, capture_output=True, timeout=30)
        assert again.returncode == 0 and again.stderr == b""  # idempotent, quiet
    finally:
        subprocess.run(
            ["rabbitmqctl", "-q", "stop"], env=env, capture_output=True, timeout=60
        )
        shutil.rmtree(folder, ignore_errors=True)
