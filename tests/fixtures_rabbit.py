"""RabbitMQ fixtures: a private vhost per test on the local broker.

``scripts/ensure-rabbitmq`` makes sure the broker runs with the management
plugin. Each test gets a vhost of its own (random name, guest granted), deleted
afterwards with everything in it; no other vhost is ever touched.

Env: ``QWATCH_TEST_RABBIT_AMQP`` (default ``amqp://guest:guest@127.0.0.1:5672``)
and ``QWATCH_TEST_RABBIT_API`` (default ``http://127.0.0.1:15672``).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aio_pika
import httpx
import pytest

AMQP = os.environ.get("QWATCH_TEST_RABBIT_AMQP", "amqp://guest:guest@127.0.0.1:5672")
API = os.environ.get("QWATCH_TEST_RABBIT_API", "http://127.0.0.1:15672")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ensure-rabbitmq"
T = TypeVar("T")


def _auth() -> tuple[str, str]:
    parts = urlsplit(AMQP)
    return parts.username or "guest", parts.password or "guest"


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 30.0, every: float = 0.5
) -> T:
    """Await ``check`` until it returns something truthy, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


@pytest.fixture(scope="session")
def rabbit_ready() -> str:
    """The management API URL, once the broker answers there."""
    try:
        httpx.get(f"{API}/api/overview", auth=_auth(), timeout=3).raise_for_status()
    except httpx.HTTPError:
        env = {**os.environ, "QWATCH_RABBIT_API": API}
        done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"RabbitMQ not available: {done.stderr.strip()}")
    return API


@dataclass
class RabbitVhost:
    """A vhost that belongs to one test."""

    name: str
    api: httpx.AsyncClient
    connection: aio_pika.abc.AbstractConnection

    @property
    def url(self) -> str:
        """The target URL for this vhost, as an operator would write it."""
        return f"{AMQP}/{quote(self.name, safe='')}"

    @property
    def options(self) -> dict[str, Any]:
        """Adapter options pointing at the test broker's management API."""
        return {"management_url": API}

    async def channel(self) -> aio_pika.abc.AbstractChannel:
        """A new channel on the test's own connection."""
        return await self.connection.channel()

    async def queue_info(self, queue: str) -> dict[str, Any]:
        """The management API's full view of one queue (test checks only)."""
        path = f"/api/queues/{quote(self.name, safe='')}/{quote(queue, safe='')}"
        response = await self.api.get(path)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


@pytest.fixture
async def rabbit_vhost(rabbit_ready: str) -> AsyncIterator[RabbitVhost]:
    """A fresh vhost with guest granted; deleted with its queues afterwards."""
    name = f"qwatch-test-{uuid.uuid4().hex[:10]}"
    seg = quote(name, safe="")
    user, _ = _auth()
    async with httpx.AsyncClient(
        base_url=rabbit_ready, auth=_auth(), timeout=30
    ) as api:
        (await api.put(f"/api/vhosts/{seg}")).raise_for_status()
        try:
            perms = {"configure": ".*", "write": ".*", "read": ".*"}
            url = f"/api/permissions/{seg}/{quote(user, safe='')}"
            (await api.put(url, json=perms)).raise_for_status()
            connection = await aio_pika.connect(f"{AMQP}/{seg}")
            try:
                yield RabbitVhost(name, api, connection)
            finally:
                await connection.close()
        finally:
            await api.delete(f"/api/vhosts/{seg}")


class Watcher:
    """Polls one adapter into a tracker, the way the poller does, for tests."""

    def __init__(self, adapter: Any, thresholds: Any) -> None:
        from qwatch.tracker import Tracker

        self.adapter = adapter
        self.tracker = Tracker("test", thresholds)
        self.seen: list[dict[str, Any]] = []
        """Every poll's verdicts by row name, for "never" assertions."""

    async def step(self) -> dict[str, Any]:
        """One poll; returns the rows by name."""
        self.tracker.update(await self.adapter.poll())
        rows = {row.name: row for row in self.tracker.rows()}
        self.seen.append({name: row.verdict for name, row in rows.items()})
        return rows

    async def until(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 45.0
    ) -> dict[str, Any]:
        """Poll every second until ``check(rows)`` holds; the rows then."""

        async def attempt() -> dict[str, Any] | None:
            rows = await self.step()
            return rows if check(rows) else None

        found = await eventually(attempt, timeout=timeout, every=1.0)
        assert found is not None
        return found

    def verdicts_of(self, name: str) -> list[str]:
        """Every verdict ``name`` had so far, in order."""
        return [str(seen[name]) for seen in self.seen if name in seen]


@dataclass
class TlsProxy:
    """TLS in front of the local broker: the test's own amqps and https."""

    amqps_port: int
    https_port: int
    cafile: Path


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN), made by the openssl CLI."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class Forwarder:
    """A TCP (or TLS-terminating) forwarder to one broker port.

    :meth:`stop` closes it and every connection through it, which is how a
    test makes the management API vanish while a target is being watched.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, context: ssl.SSLContext | None = None) -> int:
        """Listen on a free local port; returns it."""
        self.server = await asyncio.start_server(
            self._forward, "127.0.0.1", 0, ssl=context
        )
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()


def forwarder_to(url: str, default: int) -> Forwarder:
    """A forwarder to the host and port of ``url``."""
    parts = urlsplit(url)
    return Forwarder(parts.hostname or "127.0.0.1", parts.port or default)


@pytest.fixture
async def rabbit_tls(rabbit_ready: str, tmp_path: Path) -> AsyncIterator[TlsProxy]:
    """TLS-terminating proxies to the broker's AMQP and management ports.

    The shared broker has no TLS listener and must not be reconfigured for
    one test run, so TLS ends here and plain bytes go on to the broker.
    """
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    amqp, api = forwarder_to(AMQP, 5672), forwarder_to(rabbit_ready, 15672)
    try:
        yield TlsProxy(await amqp.start(context), await api.start(context), cert)
    finally:
        amqp.stop()
        api.stop()
