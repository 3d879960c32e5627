"""The Prometheus exporter: output the text parser accepts, bounded series."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import redis
import redis.asyncio as aioredis
from fixtures_redis import free_port, wait_until
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from qwatch.adapters.redis import RedisAdapter
from test_app_fakes import DeadAdapter, ManyAdapter

from qwatch.exporter import Exporter, series_count
from qwatch.poller import Watch
from qwatch.settings import Thresholds
from qwatch.tracker import Tracker

TH = Thresholds(window=2.0, stall_after=60.0)
FAMILY = "celery-task-meta-{uuid}"


def scrape(exporter: Exporter) -> str:
    """What GET /metrics returns."""
    return generate_latest(exporter.registry()).decode()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name, parsed by prometheus-client's own text parser."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


async def add_results(client: aioredis.Redis, count: int) -> None:
    """``count`` never-read result keys, in pipelined batches."""
    for start in range(0, count, 500):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(500, count - start)):
            pipe.set(f"celery-task-meta-{uuid.uuid4()}", '{"status": "OK"}')
        await pipe.execute()


async def poll_all_keys(watch: Watch, client: aioredis.Redis, family: bool) -> None:
    """Poll until the tracker has seen every key (SCAN walks in steps)."""
    total = await client.dbsize()
    for _ in range(200):
        await watch.poll_once()
        members = [r.members for r in watch.tracker.rows() if r.is_family]
        snap = watch.tracker.last
        whole = not family or (members and members[0] == total - 3)
        if snap is not None and snap.complete and whole:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the tracker never saw every key")


async def test_series_stay_flat_while_a_family_grows_by_thousands(
    redis_db: tuple[str, aioredis.Redis],
) -> None:
    """A family is one series: 10 members or 5,010, the same sample count,
    and the output parses with Prometheus's text parser."""
    url, client = redis_db
    await client.rpush("celery", "job")
    await client.rpush("default", "job", "job")
    await client.set("config", "x")
    await add_results(client, 10)
    exporter = Exporter(max_queues=50)
    watch = Watch("cache", RedisAdapter(url), Tracker("cache", TH), 0.1)
    watch.listeners.append(exporter.update)
    try:
        await poll_all_keys(watch, client, family=True)
        await watch.poll_once()  # rates need two polls: count their series too
        before = scrape(exporter)
        await add_results(client, 5000)
        await poll_all_keys(watch, client, family=True)
        after = scrape(exporter)
    finally:
        await watch.adapter.close()
    assert series_count(after) == series_count(before)
    got = samples(after)
    members = {
        labels["family"]: value for labels, value in got["qwatch_family_members"]
    }
    assert members == {FAMILY: 5010.0}
    depths = {labels["queue"]: value for labels, value in got["qwatch_queue_depth"]}
    assert depths == {"celery": 1.0, "default": 2.0, "config": 1.0}
    assert got["qwatch_target_up"] == [({"target": "cache"}, 1.0)]
    assert got["qwatch_poll_errors_total"] == [({"target": "cache"}, 0.0)]
    verdicts = {
        (labels["name"], labels["verdict"]): value
        for labels, value in got["qwatch_verdict"]
    }
    assert len(verdicts) == 4 * 4
    assert sum(v for (name, _), v in verdicts.items() if name == FAMILY) == 1.0


async def test_plain_queues_are_capped_and_the_rest_counted() -> None:
    """1,000 plainly named queues with max_queues=100: 100 exported, 900 counted
    as left out; the count of series does not follow the server."""
    exporter = Exporter(max_queues=100)
    watch = Watch("many", ManyAdapter(1000), Tracker("many", TH), 0.05)
    watch.listeners.append(exporter.update)
    await watch.poll_once()
    got = samples(scrape(exporter))
    assert len(got["qwatch_queue_depth"]) == 100
    assert got["qwatch_queues_tracked"] == [({"target": "many"}, 1000.0)]
    assert got["qwatch_queues_not_exported"] == [({"target": "many"}, 900.0)]
    assert len(got["qwatch_verdict"]) == 400


async def test_a_dead_target_has_up_zero_and_counted_errors() -> None:
    """Polls that fail count as errors; up is 0; the other target is served."""
    exporter = Exporter()
    dead = Watch("dead", DeadAdapter("fake://dead"), Tracker("dead", TH), 0.05)
    many = Watch("many", ManyAdapter(3), Tracker("many", TH), 0.05)
    for watch in (dead, many):
        watch.listeners.append(exporter.update)
    for _ in range(3):
        await dead.poll_once()
    await many.poll_once()
    got = samples(scrape(exporter))
    up = {labels["target"]: value for labels, value in got["qwatch_target_up"]}
    assert up == {"dead": 0.0, "many": 1.0}
    errors = {labels["target"]: v for labels, v in got["qwatch_poll_errors_total"]}
    assert errors == {"dead": 3.0, "many": 0.0}
    assert len(got["qwatch_queue_depth"]) == 3


def test_qwatch_serve_exposes_metrics_and_stops_on_sigterm(
    redis_server_url: str, tmp_path: Path
) -> None:
    """The real command: /metrics answers with parseable text naming the
    target; SIGTERM ends it with exit 0."""
    port = free_port()
    qwatch = str(Path(sys.executable).parent / "qwatch")
    proc = subprocess.Popen(
        [qwatch, "serve", redis_server_url, "--listen", f"127.0.0.1:{port}",
         "--interval", "0.5s", "--config", str(tmp_path / "none.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        done = proc.poll()
        assert done is None, proc.communicate()
        proc.kill()
    finally:
        proc.wait(10)
    # --config naming a missing file is one line and exit 3, not a server.
    assert proc.returncode in (3, -signal.SIGKILL)
    proc = subprocess.Popen(
        [qwatch, "serve", redis_server_url, "--listen", f"127.0.0.1:{port}",
         "--interval", "0.5s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def metrics() -> str:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                return ""
            return text if "qwatch_polls_total" in text else ""

        text = wait_until(metrics, timeout=60, every=0.2)
        got = samples(text)
        assert got["qwatch_target_up"][0][0] == {"target": redis_server_url}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert out == ""
    assert f"serving http://127.0.0.1:{port}/metrics" in err


def test_serve_logs_each_new_leak_without_any_hook(
    redis_server_url: str, tmp_path: Path
) -> None:
    """Headless with no hook configured, a new LEAK still reaches the log."""
    port = free_port()
    log_file = tmp_path / "serve.log"
    url = redis_server_url.rsplit("/", 1)[0] + "/9"
    qwatch = str(Path(sys.executable).parent / "qwatch")
    proc = subprocess.Popen(
        [qwatch, "serve", url, "--listen", f"127.0.0.1:{port}", "--interval",
         "0.5s", "--window", "3s", "--log-file", str(log_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = redis.Redis.from_url(url)
    made: list[str] = []
    try:

        def leak_logged() -> bool:
            for _ in range(10):  # the writer: result keys nobody reads
                made.append(f"celery-task-meta-{uuid.uuid4()}")
                client.set(made[-1], "{}")
            text = log_file.read_text() if log_file.exists() else ""
            return "LEAK" in text and "celery-task-meta-{uuid}" in text

        wait_until(leak_logged, timeout=60, every=0.1)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        for start in range(0, len(made), 500):  # only what this test made
            client.delete(*made[start : start + 500])
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0
