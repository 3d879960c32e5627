"""A throwaway redis-server per test session, on a free port.

Set ``QWATCH_TEST_REDIS_URL`` to use a server of your own instead; tests then
only touch keys under their own prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_args(binary: str, port: int, folder: object) -> list[str]:
    """A redis-server of our own: loopback only, nothing kept on disk."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder)]  # fmt: skip


def wait_until(check, timeout: float = 10.0, every: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something truthy, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server that belongs to this test session."""
    given = os.environ.get("QWATCH_TEST_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; scripts/test installs it")
    folder: Path = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        server_args(binary, port, folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(answers)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def key_prefix() -> str:
    """A prefix no other test uses; tests create keys under it only."""
    return f"qwt{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis_db(redis_server_url: str) -> AsyncIterator[tuple[str, aioredis.Redis]]:
    """A private database index on the session's server, emptied afterwards.

    Each test gets a DB index of its own on our own server, so flushing it
    afterwards never touches data the test did not create.
    """
    index = _next_db()
    url = redis_server_url.rsplit("/", 1)[0] + f"/{index}"
    client = aioredis.Redis.from_url(url)
    if not os.environ.get("QWATCH_TEST_REDIS_URL"):
        await client.flushdb()
    yield url, client
    if not os.environ.get("QWATCH_TEST_REDIS_URL"):
        await client.flushdb()
    await client.aclose()


_db_counter = iter(range(1, 10_000))


def _next_db() -> int:
    # Redis has 16 databases by default; DB 0 is left for the session.
    return 1 + next(_db_counter) % 15


@contextlib.contextmanager
def start_redis(folder: Path, renamed: Sequence[str] = ()) -> Iterator[str]:
    """A second throwaway redis-server, with ``renamed`` commands disabled.

    A command renamed to "" is refused the way a managed Redis refuses it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    args = server_args(binary, port, folder)
    for command in renamed:
        args += ["--rename-command", command, ""]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


async def wait_until_async(
    check: Callable[[], Awaitable[object]], polls: int = 100, every: float = 0.0
) -> object:
    """Await ``check`` until it is truthy, at most ``polls`` times."""
    for _ in range(polls):
        value = await check()
        if value:
            return value
        if every:
            await asyncio.sleep(every)
    raise AssertionError(f"condition not met after {polls} tries")
