"""The Starling adapter against our Starling-speaking server, over real sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from fixtures_starling import StarlingProcess
from qwatch.adapters import adapter_for
from qwatch.adapters.base import ActionError, Item, TargetError
from qwatch.adapters.starling import StarlingAdapter, _add_memcacheq

from qwatch.model import Snapshot
from qwatch.settings import Thresholds
from qwatch.starling import ServerThread
from qwatch.starling.client import QueueClient
from qwatch.starling.statsparse import parse_stats
from qwatch.tracker import Tracker

FOLDER = Path(__file__).parent / "starling_transcripts"


class ListSink:
    """Keeps drained items in memory; can be told to fail."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.items: list[Item] = []
        self.fail_at = fail_at

    async def write(self, item: Item) -> None:
        if self.fail_at is not None and len(self.items) + 1 == self.fail_at:
            raise OSError("disk full")
        self.items.append(item)


async def fill(port: int, name: bytes, values: list[bytes]) -> None:
    client = QueueClient("127.0.0.1", port)
    for value in values:
        assert await client.set(name, value)
    await client.close()


def by_name(snap: Snapshot) -> dict[str, int]:
    return {s.name: s.depth for s in snap.queues}


def counters(server: ServerThread) -> dict[str, int]:
    return dict(server.call(lambda: dict(server.server.qc.stats)))


@pytest.fixture
async def adapter(starling: ServerThread) -> AsyncIterator[StarlingAdapter]:
    """A connected adapter on the in-process server."""
    found = adapter_for(starling.url, {"timeout": 10})
    assert isinstance(found, StarlingAdapter)
    await found.connect()
    yield found
    await found.close()


async def test_depths_and_totals_with_awkward_names(starling, adapter) -> None:
    """Depth, total in and derived total out per queue; odd names survive."""
    await fill(starling.port, b"jobs", [b"1", b"2", b"3"])
    await fill(starling.port, b"jobs_total", [b"t"])
    await fill(starling.port, b"a b:c_d", [b"x", b"y"])
    client = QueueClient("127.0.0.1", starling.port)
    assert await client.get(b"jobs") == b"1"
    await client.close()
    snap = await adapter.poll()
    samples = {s.name: s for s in snap.queues}
    assert by_name(snap) == {"jobs": 2, "jobs_total": 1, "a b:c_d": 2}
    assert (samples["jobs"].total_in, samples["jobs"].total_out) == (3, 1)
    assert (
        samples["jobs"].info is not None
        and samples["jobs"].info["logsize"] == 3 * (9 + 1) + 1
    )
    assert snap.server["queue_count"] == 3 and snap.server["version"] == "0.10.0"


async def test_flows_come_from_counter_deltas(starling, adapter) -> None:
    """Items in and out between polls come from total_items and items."""
    tracker = Tracker("t", Thresholds(window=6, stall_after=3))
    await fill(starling.port, b"work", [b"a"])
    tracker.update(await adapter.poll())
    await fill(starling.port, b"work", [b"b", b"c", b"d", b"e", b"f"])
    client = QueueClient("127.0.0.1", starling.port)
    for _ in range(2):
        assert await client.get(b"work") is not None
    await client.close()
    tracker.update(await adapter.poll())
    point = tracker.queues["work"].points[-1]
    assert (point.depth, point.flow_in, point.flow_out) == (4, 5, 2)


async def test_watching_never_gets_or_sets(starling, adapter) -> None:
    """Five polls leave cmd_get, cmd_set and the queue list as they were."""
    await fill(starling.port, b"jobs", [b"1"])
    before = counters(starling)
    for _ in range(5):
        await adapter.poll()
    after = counters(starling)
    for key in ("cmd_get", "cmd_set", "get_hits", "get_misses", "total_items"):
        assert after[key] == before[key], key
    assert after["bytes_read"] == before["bytes_read"] + 5 * len(b"stats\r\n")
    assert list(starling.call(lambda: list(starling.server.qc.queues))) == [b"jobs"]


async def test_restart_is_detected_and_not_read_as_a_drop(starling, adapter) -> None:
    """After a restart the snapshot says so; a replayed queue is no outflow."""
    tracker = Tracker("t", Thresholds(window=6, stall_after=3))
    await fill(starling.port, b"jobs", [b"1", b"2", b"3"])
    first = await adapter.poll()
    tracker.update(first)
    assert not first.restarted
    starling.restart()
    after = await adapter.poll()
    assert after.restarted and after.queues == []
    tracker.update(after)
    client = QueueClient("127.0.0.1", starling.port)
    assert await client.set(b"jobs", b"4")  # naming it replays the journal
    await client.close()
    snap = await adapter.poll()
    assert not snap.restarted and by_name(snap) == {"jobs": 4}
    tracker.update(snap)
    point = tracker.queues["jobs"].points[-1]
    assert point.flow_out == 0 and point.depth == 4


async def test_process_restart_changes_pid_and_is_detected(
    starling_process: StarlingProcess,
) -> None:
    """A real process restart (SIGTERM, same journal) is seen through the pid."""
    adapter = StarlingAdapter(f"starling://127.0.0.1:{starling_process.port}")
    await fill(starling_process.port, b"jobs", [b"1"])
    first = await adapter.poll()
    starling_process.restart()
    second = await adapter.poll()
    await adapter.close()
    assert second.restarted and first.server["pid"] != second.server["pid"]


async def test_interval_stretches_with_stats_cost(
    starling_factory: Callable[..., ServerThread],
) -> None:
    """A slow stats stretches the interval so stats stays near 5 % of time."""
    server = starling_factory(stats_cost=3.0)
    await fill(server.port, b"seed", [b"x"])
    client = QueueClient("127.0.0.1", server.port)
    for n in range(149):
        assert await client.set(b"q%d" % n, b"x")
    await client.close()
    adapter = StarlingAdapter(server.url, {"max_stats_share": 0.05})
    snap = await adapter.poll()
    took = snap.server["stats_seconds"]
    assert took >= 3.0 * 0.15**2 * 0.9  # 150 queues: 0.0675 s modelled
    interval = adapter.suggested_interval(0.1)
    assert interval >= took * 19 * 0.9 > 0.1
    start = time.monotonic()
    await asyncio.sleep(interval)  # the poll cadence under test, not a sync
    snap = await adapter.poll()
    assert time.monotonic() - start >= interval
    assert 0 < snap.server["stats_share"] <= 0.06
    await adapter.close()


async def test_ceiling_forecast_from_queue_growth(starling, adapter) -> None:
    """Queue count against the ceiling and the time left at the current rate."""
    adapter.ceiling = 50
    client = QueueClient("127.0.0.1", starling.port)
    for n in range(10):
        assert await client.set(b"r%d" % n, b"x")
    first = await adapter.poll()
    assert first.server["ceiling_eta_seconds"] is None  # no rate yet
    for n in range(10, 20):
        assert await client.set(b"r%d" % n, b"x")
    snap = await adapter.poll()
    await client.close()
    elapsed = snap.at - first.at
    eta = snap.server["ceiling_eta_seconds"]
    assert snap.server["queue_count"] == 20 and snap.server["queue_ceiling"] == 50
    assert eta == pytest.approx(30 / (10 / elapsed), rel=0.01)


async def test_restore_reports_the_servers_real_cap(
    starling_factory: Callable[..., ServerThread],
) -> None:
    """At the descriptor cap a new queue is NOT STORED; restore says so."""
    server = starling_factory(max_fds=14)  # 9 reserved + 1 connection + 4 queues
    adapter = StarlingAdapter(server.url)
    for n in range(4):
        assert await adapter.restore(f"q{n}", _items([b"x"])) == 1
    with pytest.raises(ActionError, match="NOT STORED"):
        await adapter.restore("q4", _items([b"x"]))
    snap = await adapter.poll()
    assert snap.server["queue_count"] == 4
    await adapter.close()


async def _items(bodies: list[bytes]) -> AsyncIterator[Item]:
    for body in bodies:
        yield Item(body)


async def test_drain_saves_every_item_in_order_then_deletes(starling, adapter) -> None:
    """Values with CRLF, END or nothing come out whole; the queue is gone."""
    values = [b"one", b"a\r\nb", b"END", b"", b"last"]
    await fill(starling.port, b"jobs q", values)
    await fill(starling.port, b"other", [b"stay"])
    sink = ListSink()
    seen: list[int] = []
    assert await adapter.drain("jobs q", sink, progress=seen.append) == 5
    assert [i.body for i in sink.items] == values and seen[-1] == 5
    assert by_name(await adapter.poll()) == {"other": 1}


async def test_drain_with_a_limit_keeps_the_rest(starling, adapter) -> None:
    """A limited drain takes that many and leaves the queue loaded."""
    await fill(starling.port, b"jobs", [b"1", b"2", b"3"])
    sink = ListSink()
    assert await adapter.drain("jobs", sink, limit=2) == 2
    assert by_name(await adapter.poll()) == {"jobs": 1}


async def test_failed_drain_file_puts_the_item_back(starling, adapter) -> None:
    """If the sink fails, the item in hand returns to the queue: none lost."""
    await fill(starling.port, b"jobs", [b"1", b"2", b"3"])
    sink = ListSink(fail_at=2)
    with pytest.raises(ActionError, match="put back"):
        await adapter.drain("jobs", sink)
    assert [i.body for i in sink.items] == [b"1"]
    assert by_name(await adapter.poll()) == {"jobs": 2}


async def test_family_purge_deletes_exactly_its_members(starling, adapter) -> None:
    """Members go, a member changed since the preview stays, look-alikes stay."""
    members = [f"report_workers:generate:{n:032x}" for n in range(1, 6)]
    lookalikes = ["report_workers:generate", "report_workers:generate:keep",
                  "report_workers__generate"]  # fmt: skip
    for name in members + lookalikes:
        await fill(starling.port, name.encode(), [b"DONE"])
    preview = {s.name: s for s in (await adapter.poll()).queues}
    await fill(starling.port, members[0].encode(), [b"again"])
    result = await adapter.purge(members, {m: preview[m] for m in members})
    assert result.deleted == members[1:] and result.items == 4
    assert "changed since the preview" in result.skipped[members[0]]
    left = by_name(await adapter.poll())
    assert sorted(left) == sorted([members[0], *lookalikes])


async def test_restore_sets_items_back_in_order(starling, adapter) -> None:
    """Restored items come back out in the order they were given."""
    assert await adapter.restore("back", _items([b"1", b"2", b"3"])) == 3
    client = QueueClient("127.0.0.1", starling.port)
    assert [await client.get(b"back") for _ in range(4)] == [b"1", b"2", b"3", None]
    await client.close()


async def test_peek_is_refused_with_a_reason(adapter) -> None:
    """Starling has no non-destructive read; peeking must not pop."""
    assert not adapter.can_peek
    with pytest.raises(ActionError, match="non-destructive"):
        await adapter.peek("jobs", 5)


def test_bad_url_is_one_clear_error() -> None:
    """A bad port is a TargetError, not a traceback."""
    with pytest.raises(TargetError, match="bad port"):
        StarlingAdapter("starling://127.0.0.1:99999")


async def test_unreachable_server_is_a_target_error() -> None:
    """Nothing listening: connect fails with one clear line."""
    adapter = StarlingAdapter("kestrel://127.0.0.1:1", {"connect_timeout": 2})
    with pytest.raises(TargetError, match="cannot connect"):
        await adapter.connect()


def test_kestrel_stats_use_waiters_and_skip_unknown_lines() -> None:
    """Kestrel's longer per-queue blocks parse; waiters become consumers."""
    raw = (
        b"STAT uptime 5\r\nSTAT queue_creates 2\r\nSTAT something odd\r\n"
        b"STAT queue_jobs_items 3\r\nSTAT queue_jobs_bytes 30\r\n"
        b"STAT queue_jobs_total_items 9\r\nSTAT queue_jobs_expired_items 1\r\n"
        b"STAT queue_jobs_waiters 2\r\nSTAT queue_jobs_open_transactions 1\r\n"
        b"STAT queue_jobs_total_items 4\r\nSTAT queue_jobs_total_bytes 8\r\n"
        b"STAT queue_jobs_total_total_items 4\r\nEND\r\n"
    )
    parsed = parse_stats(raw)
    fields = {q.name: q.fields for q in parsed.queues}
    assert fields["jobs"]["waiters"] == 2 and fields["jobs"]["total_items"] == 9
    assert fields["jobs_total"] == {"items": 4, "bytes": 8, "total_items": 4}
    assert parsed.globals["uptime"] == "5"


async def test_fresh_connection_at_the_cap_times_out_but_ours_still_works(
    starling_factory: Callable[..., ServerThread],
) -> None:
    """At the descriptor cap a new connection is never served: a fresh adapter
    fails with one clear line while the long-lived one keeps polling."""
    server = starling_factory(max_fds=13)  # 9 + our adapter + filler + 2 queues
    ours = StarlingAdapter(server.url)
    await ours.connect()
    await fill(server.port, b"q1", [b"x"])
    deadline = time.monotonic() + 5
    while server.call(lambda: server.server.qc.connections) != 1:  # fill's is gone
        assert time.monotonic() < deadline, "filler connection never released"
        await asyncio.sleep(0.01)
    client = QueueClient("127.0.0.1", server.port)
    assert await client.set(b"q2", b"x")  # the filler connection stays open
    fresh = StarlingAdapter(server.url, {"timeout": 0.5})
    with pytest.raises(TargetError, match="no reply in time"):
        await fresh.poll()
    await fresh.close()
    assert by_name(await ours.poll()) == {"q1": 1, "q2": 1}
    await client.close()
    await ours.close()


@pytest.mark.parametrize("name", ["names", "restart", "workling_leak"])
def test_parse_recorded_stats_with_duplicate_keys(name: str) -> None:
    """Every stats reply recorded from the real server parses name by name."""
    doc = json.loads((FOLDER / f"{name}.json").read_text())
    for step in doc["steps"]:
        if step["send"] != "stats\r\n":
            continue
        raw = step["recv"].encode("latin-1")
        parsed = parse_stats(raw)
        names = [
            line[11:].rpartition(" ")[0][:-6]
            for line in step["recv"].split("\r\n")
            if line.startswith("STAT queue_")
        ][::5]
        assert [q.name for q in parsed.queues] == names and not parsed.unknown
        assert len(parsed.globals) == 18


def test_names_recording_keeps_colliding_keys_apart() -> None:
    """jobs, jobs_total and jobs_expired keep their own numbers."""
    doc = json.loads((FOLDER / "names.json").read_text())
    raw = [s for s in doc["steps"] if s["send"] == "stats\r\n"][-1]["recv"]
    fields = {q.name: q.fields for q in parse_stats(raw.encode("latin-1")).queues}
    assert fields["jobs"]["expired_items"] == 0 and fields["jobs"]["total_items"] == 1
    assert fields["jobs_expired"]["items"] == 1 and fields["a b"]["total_items"] == 2
    assert len(fields) == 6 and fields["a b"]["logsize"] == 21


def test_memcacheq_queue_lines_become_queues() -> None:
    """MemcacheQ's ``stats queue`` gives in/out counts per queue."""
    parsed = parse_stats(b"STAT pid 1\r\nEND\r\n")
    _add_memcacheq(parsed, b"STAT mails 10/7\r\nSTAT odd line\r\nEND\r\n")
    assert [(q.name, q.fields) for q in parsed.queues] == [
        ("mails", {"items": 3, "total_items": 10})
    ]


def test_server_command_line_rejects_a_bad_port() -> None:
    """``python -m qwatch.starling --port 70000``: one line, non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", "qwatch.starling", "--port", "70000"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "not a TCP port" in done.stderr.strip().splitlines()[-1]


async def test_closing_packet_takes_late_items_before_the_delete(
    starling: ServerThread,
) -> None:
    """The drain's last packet gets what a producer slipped in, then deletes;
    only items beyond the gets it carries would go with the queue."""
    await fill(starling.port, b"late", [b"a", b"b", b"c"])
    client = QueueClient("127.0.0.1", starling.port)
    try:
        assert await client.gets_then_delete(b"late", 64) == [b"a", b"b", b"c"]
        await fill(starling.port, b"flood", [b"%d" % i for i in range(5)])
        assert await client.gets_then_delete(b"flood", 3) == [b"0", b"1", b"2"]
        names = {q.name for q in parse_stats(await client.stats()).queues}
    finally:
        await client.close()
    assert not names & {"late", "flood"}


def test_time_options_read_durations_like_the_rest_of_qwatch() -> None:
    """'500ms' and '2s' are times; numbers still mean seconds."""
    adapter = StarlingAdapter(
        "starling://127.0.0.1:22122",
        {"timeout": "500ms", "connect_timeout": "2s", "queue_ceiling": 50},
    )
    assert (adapter.client.timeout, adapter.client.connect_timeout) == (0.5, 2.0)
    assert adapter.ceiling == 50
    adapter = StarlingAdapter("starling://127.0.0.1:22122", {"timeout": 3})
    assert adapter.client.timeout == 3.0


@pytest.mark.parametrize(
    ("url", "options", "fault"),
    [
        (
            "starling://h:22122",
            {"timeot": "1s"},
            "options.timeot: unknown key; did you mean 'timeout'?",
        ),
        (
            "starling://h:22122",
            {"flavour": "x"},
            "options.flavour: unknown key; known: connect_timeout, "
            "max_stats_share, queue_ceiling, timeout",
        ),
        (
            "starling://h:22122",
            {"timeout": "soon"},
            "options.timeout: 'soon' is not a duration; try 60s, 2m or 1h",
        ),
        (
            "starling://h:22122",
            {"max_stats_share": 2},
            "options.max_stats_share: expected a number between 0 and 1, got 2",
        ),
        (
            "kestrel://h:22133",
            {"queue_ceiling": 0},
            "options.queue_ceiling: expected a whole number >= 1, got 0",
        ),
        (
            "starling://h:22122?timeout=1s",
            {},
            "query key 'timeout': not read from the URL; set it in the target's "
            "options in qwatch.toml",
        ),
        (
            "starling://h:22122?x=1",
            {},
            "query key 'x': unknown; this URL takes no query keys (options go in "
            "qwatch.toml)",
        ),
    ],
)
def test_unknown_keys_and_bad_values_are_named(
    url: str, options: dict[str, object], fault: str
) -> None:
    """No option is silently ignored; each fault names its key in one line."""
    with pytest.raises(TargetError) as caught:
        adapter_for(url, options)
    assert str(caught.value) == f"{url}: {fault}"
