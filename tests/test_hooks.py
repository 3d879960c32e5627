"""Hooks: a command and a webhook hear of each new leak once, with its details;
failures are reported and never stop the run; nothing blocks the poller.

The leaks are real (a throwaway redis-server, the Starling-speaking server);
the webhook endpoint is a small HTTP server started by the test.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from fixtures_redis import wait_until
from qwatch.adapters.redis import RedisAdapter
from qwatch.adapters.starling import StarlingAdapter

from qwatch.alerts import Alert, Alerts
from qwatch.hooks import HookFailure, Hooks
from qwatch.hooks_delivery import CommandHook, WebhookHook
from qwatch.poller import Watch
from qwatch.settings import Thresholds
from qwatch.starling.workload import WorklingPlan, demo_target
from qwatch.tracker import Tracker
from qwatch.verdicts import Verdict

FAMILY = "celery-task-meta-{uuid}"
TH = Thresholds(window=2.0, stall_after=60.0, min_growth=5, min_members=3)

RECORDER = """
import json, os, sys
keep = {k: v for k, v in os.environ.items() if k.startswith("QWATCH_ALERT_")}
with open(sys.argv[1], "a", encoding="utf-8") as out:
    out.write(json.dumps(keep) + "\\n")
"""


class Receiver:
    """A local HTTP endpoint that records JSON bodies.

    ``statuses`` are answered in turn (the last one repeats); while ``hold``
    is set the handler waits, as a stuck endpoint would.
    """

    def __init__(self, statuses: tuple[int, ...] = (200,)) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses = list(statuses)
        self.hold = threading.Event()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(size)))
                receiver.arrived.set()
                while receiver.hold.is_set():
                    time.sleep(0.01)
                status = receiver.statuses[
                    min(len(receiver.bodies), len(receiver.statuses)) - 1
                ]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet: the test reads bodies, not logs."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/alert"

    def close(self) -> None:
        """Stop serving."""
        self.hold.clear()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook endpoint answering 200."""
    got = Receiver()
    yield got
    got.close()


def recorder(tmp_path: Path) -> tuple[str, Path]:
    """A command line that appends its QWATCH_ALERT_* variables to a file."""
    script = tmp_path / "record.py"
    script.write_text(RECORDER, encoding="utf-8")
    out = tmp_path / "calls.jsonl"
    return shlex.join([sys.executable, str(script), str(out)]), out


def calls(out: Path) -> list[dict[str, str]]:
    """What the command was called with, one dict per call."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def alert(name: str = "a-{id}", cleared: bool = False, target: str = "t") -> Alert:
    """A hand-made alert for the pure delivery tests."""
    verdict = Verdict.OK if cleared else Verdict.LEAK
    return Alert(time.time(), target, name, True, verdict, "+9 members in 60 s",
                 cleared=cleared, kind="string", depth=9, members=9)  # fmt: skip


async def poll_until(watch: Watch, check: Any, limit: int = 200) -> None:
    """Poll every 0.2 s until ``check()`` holds, at most ``limit`` polls."""
    for _ in range(limit):
        await watch.poll_once()
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met after {limit} polls")


async def test_a_redis_leak_reaches_command_and_webhook_once(
    redis_db: tuple[str, aioredis.Redis], receiver: Receiver, tmp_path: Path
) -> None:
    """Result keys piling up: one firing call each, with the family's details,
    however many polls keep seeing it."""
    url, client = redis_db
    command, out = recorder(tmp_path)
    hooks = Hooks([CommandHook(command, 10), WebhookHook(receiver.url, 10)])
    alerts = Alerts(clear_after=TH.window)
    alerts.listeners.append(hooks)
    watch = Watch("cache", RedisAdapter(url), Tracker("cache", TH), 0.2)
    watch.listeners.append(lambda w: alerts.observe("cache", w.tracker.rows()))
    stop = asyncio.Event()

    async def leak() -> None:
        while not stop.is_set():
            await client.set(f"celery-task-meta-{uuid.uuid4()}", '{"status": "OK"}')
            await asyncio.sleep(0.02)

    writer = asyncio.create_task(leak())
    try:
        await poll_until(watch, lambda: calls(out) and receiver.bodies)
        for _ in range(10):  # the leak goes on; nothing more may be sent
            await watch.poll_once()
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await writer
        await watch.adapter.close()
    assert hooks.close(10)
    (call,) = calls(out)
    (body,) = receiver.bodies
    assert call["QWATCH_ALERT_STATE"] == body["state"] == "firing"
    assert call["QWATCH_ALERT_TARGET"] == body["target"] == "cache"
    assert call["QWATCH_ALERT_NAME"] == body["name"] == FAMILY
    assert call["QWATCH_ALERT_TYPE"] == body["type"] == "family"
    assert call["QWATCH_ALERT_VERDICT"] == body["verdict"] == "LEAK"
    assert call["QWATCH_ALERT_KIND"] == body["kind"] == "string"
    assert "0 read or gone" in call["QWATCH_ALERT_REASON"]
    assert int(call["QWATCH_ALERT_MEMBERS"]) == body["members"] >= 3
    assert json.loads(call["QWATCH_ALERT_JSON"]) == body
    assert hooks.stats["on-alert"].delivered == hooks.stats["webhook"].delivered == 1


async def test_a_starling_workling_leak_reaches_the_webhook(receiver: Receiver) -> None:
    """The return-store family on the Starling-speaking server is delivered
    once, named by its pattern; the healthy job queue never is."""
    hooks = Hooks([WebhookHook(receiver.url, 10)])
    alerts = Alerts(clear_after=6.0)
    alerts.listeners.append(hooks)
    plan = WorklingPlan(reader_stops_at=None)
    async with demo_target(plan) as (url, _):
        th = Thresholds(window=6.0, stall_after=3.0)
        watch = Watch("starling", StarlingAdapter(url), Tracker("starling", th), 0.5)
        watch.listeners.append(lambda w: alerts.observe("starling", w.tracker.rows()))
        try:
            await poll_until(watch, lambda: receiver.bodies, limit=150)
            for _ in range(5):
                await watch.poll_once()
                await asyncio.sleep(0.2)
        finally:
            await watch.adapter.close()
    assert hooks.close(10)
    (body,) = receiver.bodies
    assert body["name"] == "report_workers:generate:{hex}"
    assert body["target"] == "starling" and body["verdict"] == "LEAK"
    assert body["members"] >= 3 and body["type"] == "family"


def test_a_failing_command_is_reported_and_not_raised(tmp_path: Path) -> None:
    """Exit 3 with a message: listeners hear one line, the stats count it."""
    command = shlex.join(
        [
            sys.executable,
            "-c",
            "import sys; print('boom', file=sys.stderr); sys.exit(3)",
        ]
    )
    hooks = Hooks([CommandHook(command, 10)])
    heard: list[HookFailure] = []
    hooks.failure_listeners.append(heard.append)
    hooks(alert())
    assert hooks.close(30)
    (failure,) = heard
    assert failure.line == "on-alert hook failed for a-{id}: exit 3: boom"
    assert hooks.stats["on-alert"].failed == 1
    assert hooks.stats["on-alert"].last_error == "exit 3: boom"


def test_a_missing_command_is_reported(tmp_path: Path) -> None:
    """A command that does not exist is a failure, not a crash."""
    hooks = Hooks([CommandHook(str(tmp_path / "no-such-hook"), 5)])
    heard: list[HookFailure] = []
    hooks.failure_listeners.append(heard.append)
    hooks(alert())
    assert hooks.close(30)
    assert heard[0].error == (
        f"cannot run '{tmp_path / 'no-such-hook'}': No such file or directory"
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_slow_command_is_killed_with_what_it_started(tmp_path: Path) -> None:
    """Past the timeout the hook's whole process group goes, grandchildren too."""
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    hooks = Hooks([CommandHook(shlex.join([sys.executable, "-c", script]), 1.0)])
    heard: list[HookFailure] = []
    hooks.failure_listeners.append(heard.append)
    hooks(alert())
    assert hooks.close(60)
    assert heard[0].error == "timed out after 1 s; killed"
    child = int(pid_file.read_text())
    wait_until(lambda: not _alive(child), timeout=10)


def test_webhook_retries_server_errors_with_backoff() -> None:
    """500, 503, then 200: delivered on the third try, waits doubling."""
    got = Receiver(statuses=(500, 503, 200))
    waits: list[float] = []
    try:
        hook = WebhookHook(got.url, 5, backoff=0.5, sleep=waits.append)
        hook.deliver(alert())
    finally:
        got.close()
    assert len(got.bodies) == 3
    assert waits == [0.5, 1.0]


def test_webhook_gives_up_on_client_errors_at_once() -> None:
    """A 404 will not get better: one try, reported as HTTP 404."""
    got = Receiver(statuses=(404,))
    hooks = Hooks([WebhookHook(got.url, 5, backoff=0.01)])
    heard: list[HookFailure] = []
    hooks.failure_listeners.append(heard.append)
    try:
        hooks(alert())
        assert hooks.close(30)
    finally:
        got.close()
    assert len(got.bodies) == 1
    assert heard[0].error == "HTTP 404"


def test_webhook_to_nobody_fails_after_every_try() -> None:
    """Connection refused is retried, then reported with the number of tries."""
    waits: list[float] = []
    hook = WebhookHook("http://127.0.0.1:1/x", 2, attempts=3, sleep=waits.append)
    with pytest.raises(Exception) as caught:
        hook.deliver(alert())
    assert str(caught.value).startswith("ConnectError: ")
    assert str(caught.value).endswith("(after 3 tries)")
    assert waits == [1.0, 2.0]


def test_taking_an_alert_never_waits_for_delivery() -> None:
    """While the endpoint is stuck on the first alert, more alerts are taken
    at once: the caller (the poller) never waits for a delivery."""
    got = Receiver()
    got.hold.set()
    hooks = Hooks([WebhookHook(got.url, 30)])
    try:
        hooks(alert("first-{id}"))
        assert got.arrived.wait(10)
        for i in range(5):
            hooks(alert(f"more-{i}-{{id}}"))
        assert got.hold.is_set() and len(got.bodies) == 1
    finally:
        got.hold.clear()
        assert hooks.close(30)
        got.close()
    assert [b["name"] for b in got.bodies][:2] == ["first-{id}", "more-0-{id}"]
    assert len(got.bodies) == 6


def test_deduplicated_across_runs_until_it_clears(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A second process does not send the same open leak again; a clear is
    sent for a leak that was sent, and after it the leak may fire again."""
    state = tmp_path / "sent.json"
    first = Hooks([WebhookHook(receiver.url, 5)], state=state)
    first(alert("x-{id}"))
    first(alert("x-{id}"))
    assert first.close(30)
    second = Hooks([WebhookHook(receiver.url, 5)], state=state)
    second(alert("x-{id}"))
    second(alert("never-sent-{id}", cleared=True))
    second(alert("x-{id}", cleared=True))
    second(alert("x-{id}"))
    assert second.close(30)
    states = [(b["name"], b["state"]) for b in receiver.bodies]
    assert states == [("x-{id}", "firing"), ("x-{id}", "cleared"), ("x-{id}", "firing")]


def test_rate_limited_per_hook_and_the_drop_reported_once(receiver: Receiver) -> None:
    """At most ``rate`` a minute; the rest are dropped, counted and reported."""
    hooks = Hooks([WebhookHook(receiver.url, 5)], rate=2)
    heard: list[HookFailure] = []
    hooks.failure_listeners.append(heard.append)
    for i in range(5):
        hooks(alert(f"leak-{i}-{{id}}"))
    assert hooks.close(30)
    assert len(receiver.bodies) == 2
    assert hooks.stats["webhook"].dropped == {"rate": 3}
    assert [f.error for f in heard] == ["over 2 a minute, alert dropped"]


def test_a_listener_that_raises_does_not_stop_delivery(receiver: Receiver) -> None:
    """A broken failure listener is logged; the next alert still goes out."""
    hooks = Hooks([WebhookHook(receiver.url, 5)], rate=1)

    def broken(failure: HookFailure) -> None:
        raise RuntimeError("listener bug")

    hooks.failure_listeners.append(broken)
    hooks(alert("one-{id}"))
    hooks(alert("two-{id}"))  # over the rate: reported to the broken listener
    assert hooks.close(30)
    assert [b["name"] for b in receiver.bodies] == ["one-{id}"]
