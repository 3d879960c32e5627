"""The Redis adapter against a real throwaway redis-server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from fixtures_redis import start_redis, wait_until_async
from qwatch.adapters import adapter_for, redis_keys
from qwatch.adapters.base import TargetError
from qwatch.adapters.redis import RedisAdapter
from qwatch.adapters.redis_wire import Wire

from qwatch.model import Kind, Snapshot

Db = tuple[str, aioredis.Redis]


@pytest.fixture
async def adapter(redis_db: Db) -> AsyncIterator[RedisAdapter]:
    """An adapter on the test's own database, closed afterwards."""
    watcher = RedisAdapter(redis_db[0])
    yield watcher
    await watcher.close()


async def full_poll(adapter: RedisAdapter) -> Snapshot:
    """Poll until one SCAN pass is done, then once more to read every key."""
    snap = await adapter.poll()
    for _ in range(1000):
        if snap.complete:
            break
        snap = await adapter.poll()
    return await adapter.poll()


async def fill_every_type(r: aioredis.Redis) -> None:
    """One key of each kind, with known sizes."""
    await r.rpush("jobs", *[f"job{i}" for i in range(7)])
    await r.zadd("retry", {"a": 1.0, "b": 2.0, "c": 3.0})
    await r.zadd("schedule", {"later": time.time() + 3600})
    await r.zadd("bull:delayed", {"x": (time.time() * 1000 + 60_000) * 4096})
    await r.sadd("seen", "a", "b", "c", "d")
    await r.hset("pending", mapping={"f1": "v1", "f2": "v2"})
    for i in range(5):
        await r.xadd("events", {"n": str(i)})
    await r.xgroup_create("events", "workers", id="0")
    await r.xreadgroup("workers", "w1", {"events": ">"}, count=2)
    await r.set("result", "x" * 300)
    await r.set("cached", "y", ex=100)


async def test_reports_numbers_for_every_type(
    adapter: RedisAdapter, redis_db: Db
) -> None:
    """Depth, kind, TTL, bounded, pending and bytes come out right per type."""
    await fill_every_type(redis_db[1])
    snap = await full_poll(adapter)
    got = {s.name: s for s in snap.queues}
    assert {n: (got[n].kind, got[n].depth) for n in got} == {
        "jobs": (Kind.LIST, 7),
        "retry": (Kind.ZSET, 3),
        "schedule": (Kind.ZSET, 1),
        "bull:delayed": (Kind.ZSET, 1),
        "seen": (Kind.SET, 4),
        "pending": (Kind.HASH, 2),
        "events": (Kind.STREAM, 5),
        "result": (Kind.STRING, 1),
        "cached": (Kind.STRING, 1),
    }
    assert got["events"].unacked == 2 and got["events"].consumers == 1
    assert got["events"].total_out == 2
    assert got["result"].bytes is not None and got["result"].bytes >= 300
    assert got["result"].ttl is None and not got["result"].bounded
    assert got["cached"].ttl is not None and 90 < got["cached"].ttl <= 100
    assert got["cached"].bounded
    assert got["schedule"].bounded and got["bull:delayed"].bounded
    assert not got["retry"].bounded  # scores 1..3 are not future times
    assert all(s.idle is not None and s.idle >= 0 for s in snap.queues)
    assert snap.server["version"] and snap.server["known"] == 9
    assert snap.server["used_memory"] > 0 and snap.notes == []


async def test_scan_is_spread_over_polls(redis_db: Db) -> None:
    """A bounded SCAN step per poll: complete only after the whole keyspace."""
    url, r = redis_db
    await r.mset({f"k:{i}": i for i in range(400)})
    watcher = RedisAdapter(url, {"scan_count": 10, "scan_calls": 3})
    try:
        polls = [await watcher.poll()]
        while not polls[-1].complete and len(polls) < 200:
            polls.append(await watcher.poll())
        assert polls[-1].complete and len(polls) >= 5
        assert not any(p.complete for p in polls[:-1])
        assert len(polls[0].queues) <= 3 * 10 * 2  # SCAN COUNT is a hint
        assert len((await watcher.poll()).queues) == 400
        await r.set("k:new", 1)

        async def found() -> bool:
            return "k:new" in {s.name for s in (await watcher.poll()).queues}

        await wait_until_async(found, polls=200)
    finally:
        await watcher.close()


async def test_vanished_queues_are_remembered(
    adapter: RedisAdapter, redis_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An emptied list stays at depth 0, present=False; a gone string once."""
    r = redis_db[1]
    await r.rpush("work", "a", "b")
    await r.set("celery-task-meta-1", "done")
    await full_poll(adapter)
    await r.delete("work", "celery-task-meta-1")
    first = {s.name: s for s in (await adapter.poll()).queues}
    assert (first["work"].depth, first["work"].present) == (0, False)
    assert first["celery-task-meta-1"].present is False
    second = {s.name: s for s in (await adapter.poll()).queues}
    assert second["work"].present is False and "celery-task-meta-1" not in second
    await r.rpush("work", "c")
    back = {s.name: s for s in (await adapter.poll()).queues}
    assert (back["work"].depth, back["work"].present) == (1, True)
    await r.delete("work")
    monkeypatch.setattr(redis_keys, "KEEP_GONE", 0.0)
    await adapter.poll()
    assert "work" not in {s.name for s in (await adapter.poll()).queues}


async def test_type_change_is_learned(adapter: RedisAdapter, redis_db: Db) -> None:
    """A key deleted and made again as another type is read as the new type."""
    r = redis_db[1]
    await r.rpush("q", "a")
    await full_poll(adapter)
    await r.delete("q")
    await r.zadd("q", {"m": 1})
    for _ in range(3):
        got = {s.name: s for s in (await adapter.poll()).queues}
    assert (got["q"].kind, got["q"].depth) == (Kind.ZSET, 1)


READ_ONLY_EXTRA = {"info", "scan", "client|setname", "client|no-touch", "select"}


async def test_watching_sends_only_read_commands(
    adapter: RedisAdapter, redis_db: Db
) -> None:
    """INFO commandstats before and after 5 polls: no write, no script."""
    r = redis_db[1]
    await fill_every_type(r)
    await r.rpush("gone-soon", "x")
    before = await r.info("commandstats")
    await full_poll(adapter)
    await r.delete("gone-soon")
    for _ in range(4):
        await adapter.poll()
    after = await r.info("commandstats")
    called = {
        name.removeprefix("cmdstat_")
        for name, stats in after.items()
        if stats["calls"] > before.get(name, {"calls": 0})["calls"]
    }
    called -= {"info", "del"}  # the test's own INFO and DEL
    assert {"llen", "zcard", "pttl", "object|idletime", "xinfo|groups"} <= called
    for name in called:
        found = await r.execute_command("COMMAND", "INFO", name)
        entry = next(iter(found.values()))
        flags = {f.decode() if isinstance(f, bytes) else f for f in entry["flags"]}
        assert "write" not in flags, name
        assert name in READ_ONLY_EXTRA or "readonly" in flags, (name, flags)
        assert not name.startswith(("eval", "fcall", "script", "function")), name


async def test_idle_survives_our_own_reads(adapter: RedisAdapter, redis_db: Db) -> None:
    """On Redis < 7.2 LLEN resets the LRU clock; qwatch's idle keeps growing."""
    r = redis_db[1]
    await r.rpush("quiet", "a")

    async def idle_for_two() -> bool:
        return int(await r.object("IDLETIME", "quiet")) >= 2

    await wait_until_async(idle_for_two, polls=100, every=0.1)
    first = {s.name: s for s in (await full_poll(adapter)).queues}["quiet"]
    second = {s.name: s for s in (await adapter.poll()).queues}["quiet"]
    assert first.idle is not None and first.idle >= 2
    assert second.idle is not None and second.idle >= first.idle
    await r.lpush("quiet", "b")  # somebody else touches it
    third = {s.name: s for s in (await adapter.poll()).queues}["quiet"]
    assert third.idle is not None and third.idle < 2


async def test_no_touch_leaves_server_idle_alone(
    adapter: RedisAdapter, redis_db: Db
) -> None:
    """With CLIENT NO-TOUCH (Redis >= 7.2) the server's own idle is not reset."""
    r = redis_db[1]
    version = (await r.info("server"))["redis_version"]
    if tuple(int(p) for p in str(version).split(".")[:2]) < (7, 2):
        pytest.skip(f"Redis {version} has no CLIENT NO-TOUCH")
    await r.rpush("quiet", "a")

    async def idle_for_two() -> bool:
        return int(await r.object("IDLETIME", "quiet")) >= 2

    await wait_until_async(idle_for_two, polls=100, every=0.1)
    await full_poll(adapter)
    assert int(await r.object("IDLETIME", "quiet")) >= 2


async def test_refused_commands_degrade_columns(tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """OBJECT, MEMORY and XINFO renamed away: sizes still come, notes say why."""
    renamed = ["OBJECT", "MEMORY", "XINFO", "CONFIG"]
    with start_redis(tmp_path_factory.mktemp("managed"), renamed) as url:
        r = aioredis.Redis.from_url(url)
        await r.rpush("jobs", "a", "b")
        await r.set("result", "x" * 100)
        await r.xadd("events", {"a": "1"})
        watcher = RedisAdapter(url)
        try:
            snap = await full_poll(watcher)
        finally:
            await watcher.close()
            await r.aclose()
    got = {s.name: s for s in snap.queues}
    assert (got["jobs"].depth, got["events"].depth, got["result"].depth) == (2, 1, 1)
    assert all(s.idle is None for s in snap.queues)
    assert got["result"].bytes == 100  # STRLEN stood in for MEMORY USAGE
    notes = " ".join(snap.notes)
    for word in ("OBJECT IDLETIME", "MEMORY USAGE", "XINFO GROUPS"):
        assert word in notes


async def test_unreachable_target_is_one_line() -> None:
    """A dead port gives a TargetError with one line naming the target."""
    from fixtures_redis import free_port

    watcher = adapter_for(f"redis://:secret@127.0.0.1:{free_port()}/0")
    with pytest.raises(TargetError) as caught:
        await watcher.poll()
    text = str(caught.value)
    assert "\n" not in text and "secret" not in text and "cannot connect" in text


async def test_wrong_password_is_one_line(redis_server_url: str) -> None:
    """AUTH refused is reported as a TargetError, not a traceback."""
    url = redis_server_url.replace("redis://", "redis://:nope@")
    watcher = RedisAdapter(url)
    with pytest.raises(TargetError, match="AUTH refused"):
        await watcher.poll()
    await watcher.close()


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        ("/abc", "the database must be a number, e.g. /0 (got '/abc')"),
        ("/0/extra", "the database must be a number, e.g. /0 (got '/0/extra')"),
        ("/-1", "the database must be a number, e.g. /0 (got '/-1')"),
        ("/1?db=1", "the database is given twice; keep /1 or ?db="),
        ("/?db=x", "query key 'db': expected a whole number >= 0, got 'x'"),
    ],
)
def test_a_bad_database_is_refused_not_read_as_db_0(path: str, fault: str) -> None:
    """redis-py reads /abc and /0/extra as database 0; qwatch refuses them."""
    url = f"redis://:secret@127.0.0.1:6379{path}"
    with pytest.raises(TargetError) as caught:
        RedisAdapter(url)
    assert str(caught.value) == f"redis://:***@127.0.0.1:6379{path}: {fault}"


async def test_db_in_the_query_watches_that_database(redis_db: Db) -> None:
    """``/?db=N`` is redis-py's other spelling of ``/N``, and is honoured."""
    url, r = redis_db
    base, _, index = url.rpartition("/")
    await r.rpush("only-here", "a")
    watcher = RedisAdapter(f"{base}/?db={index}")
    try:
        snap = await full_poll(watcher)
    finally:
        await watcher.close()
    assert [s.name for s in snap.queues] == ["only-here"]


def test_cli_refuses_a_bad_database_in_one_line(redis_server_url: str) -> None:
    """Through the real command: no poll of db 0, one line, exit 3."""
    url = redis_server_url.rpartition("/")[0] + "/abc"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "qwatch"), "check", "--for", "1s", url],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr == (
        f"qwatch: {url}: the database must be a number, e.g. /0 (got '/abc')\n"
    )


@pytest.mark.parametrize(
    ("url", "options", "fault"),
    [
        (
            "redis://h/0",
            {"scan_cout": 10},
            "options.scan_cout: unknown key; did you mean 'scan_count'?",
        ),
        (
            "redis://h/0",
            {"scan_count": -1},
            "options.scan_count: expected a whole number >= 1, got -1",
        ),
        (
            "redis://h/0",
            {"scan_calls": 2.5},
            "options.scan_calls: expected a whole number >= 1, got 2.5",
        ),
        (
            "redis://h/0?scan_cout=5",
            {},
            "query key 'scan_cout': unknown; did you mean 'scan_count' "
            "(set in options in qwatch.toml)?",
        ),
        (
            "redis://h/0?scan_count=5",
            {},
            "query key 'scan_count': not read from the URL; set it in the "
            "target's options in qwatch.toml",
        ),
        (
            "redis://h/0?socket_timeout=5",
            {},
            "query key 'socket_timeout': unknown; known: db, ssl_ca_certs, "
            "ssl_cert_reqs",
        ),
        (
            "rediss://h/0?ssl_cert_reqs=never",
            {},
            "query key 'ssl_cert_reqs': expected one of none, optional, required, "
            "got 'never'",
        ),
    ],
)
def test_unknown_or_bad_options_are_named(
    url: str, options: dict[str, object], fault: str
) -> None:
    """Nothing is silently ignored: every option and query key is checked."""
    with pytest.raises(TargetError) as caught:
        adapter_for(url, options)
    assert str(caught.value) == f"{url}: {fault}"


def test_options_arrive_typed() -> None:
    """Declared options are checked and kept; TLS query keys stay allowed."""
    watcher = RedisAdapter(
        "rediss://h/0?ssl_cert_reqs=none", {"scan_count": 50, "scan_calls": 2}
    )
    assert (watcher.scan_count, watcher.scan_calls) == (50, 2)


async def test_tls_to_a_plain_server_says_the_handshake_got_no_answer(
    redis_server_url: str,
) -> None:
    """Plain redis-server waits for a line the TLS hello never sends."""
    url = redis_server_url.replace("redis://", "rediss://")
    wire = Wire(url, url)
    with pytest.raises(TargetError) as caught:
        await wire.connect(timeout=1)
    await wire.close()
    assert str(caught.value) == (
        f"{url}: TLS handshake failed: no answer in 1 s; does this port speak TLS?"
    )


async def test_tls_to_a_plain_server_that_answers_names_the_tls_fault() -> None:
    """A plain-text server that answers (here like HTTP) fails the handshake at
    once, and the message carries the TLS library's reason, never nothing."""

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(1 << 16)  # the TLS hello, unread it would reset
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    watcher = RedisAdapter(f"rediss://127.0.0.1:{port}/0")
    try:
        with pytest.raises(TargetError) as caught:
            await asyncio.wait_for(watcher.connect(), 5)
    finally:
        await watcher.close()
        server.close()
        await server.wait_closed()
    head = f"rediss://127.0.0.1:{port}/0: TLS handshake failed: "
    tail = "; does this port speak TLS?"
    text = str(caught.value)
    assert text.startswith(head) and text.endswith(tail)
    reason = text[len(head) : -len(tail)]
    assert reason.strip() and "no answer" not in reason
