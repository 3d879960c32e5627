"""``qwatch demo``: the Workling leak found with nothing installed, headless as a
real process and in the dashboard driven with Pilot."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_actions_helpers import CLI
from test_app_fakes import until

from qwatch.app.lines import key_parts
from qwatch.app.main import QwatchApp
from qwatch.app.table import QueueTable
from qwatch.cli_demo import DEMO_NAME, BackgroundDemo, demo_app, demo_run
from qwatch.starling.workload import WorklingPlan

FAMILY = "report_workers:generate:{hex}"
PLAN = WorklingPlan()
SHORT = ["--window", "3s", "--interval", "1s"]
"""Windows short enough that the leak is called in seconds, not a minute."""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``qwatch ARGS`` to the end, with no QWATCH_* settings of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_")}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=120
    )


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def test_check_reports_the_family_as_leak_and_exits_2() -> None:
    """Headless, the return-key family is LEAK, the job queue that is emptied
    as fast as it is filled is not, and the exit code is check's 2."""
    done = run_cli("demo", "--check", "--for", "7s", "--json", *SHORT)
    assert done.returncode == 2, done.stderr
    result = json.loads(done.stdout)
    assert result["exit_code"] == 2
    [target] = result["targets"]
    assert target["target"] == DEMO_NAME and target["status"] == "ok"
    assert target["url"].startswith("starling://127.0.0.1:")
    assert target["polls"] >= 5
    family = by_name(result["families"])[FAMILY]
    assert family["verdict"] == "LEAK"
    assert family["members"] >= 60 and "0 read" in family["reason"]
    queues = by_name(result["queues"])
    assert queues[PLAN.job_queue]["verdict"] != "LEAK"
    assert queues[PLAN.job_queue]["depth"] <= 1
    assert queues[PLAN.mail_queue]["verdict"] != "LEAK"
    assert "Traceback" not in done.stderr


def test_check_text_names_the_leak() -> None:
    """Without --json the plain report names the family and the exit code."""
    done = run_cli("demo", "--check", "--for", "7s", *SHORT)
    assert done.returncode == 2, done.stderr
    leaks = [line for line in done.stdout.splitlines() if line.startswith("LEAK")]
    assert len(leaks) == 1 and FAMILY in leaks[0]
    assert done.stdout.rstrip().endswith("exit 2")


def test_help_lists_the_options() -> None:
    done = run_cli("demo", "--help")
    assert done.returncode == 0, done.stderr
    for option in ("--check", "--for", "--json", "--window", "--interval"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--bogus"], ["--bogus"]),
        (["--json"], ["--check"]),
        (["--for", "10s"], ["--check"]),
        (["--check", "--for", "soon"], ["--for", "duration"]),
        (["--check", "--window", "-1s"], ["--window"]),
        (["starling://127.0.0.1:22122"], ["unexpected", "argument"]),
    ],
)
def test_bad_flags_give_one_line_and_exit_3(args: list[str], words: list[str]) -> None:
    """Bad input: one line naming the fault, exit 3, no traceback, no server."""
    done = run_cli("demo", *args)
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], done.stderr
    assert done.stdout == ""


def test_bad_environment_variable_is_one_line() -> None:
    """A wrong QWATCH_* setting stops the demo cleanly, in one line."""
    env = {**os.environ, "QWATCH_WINDOW": "soon"}
    done = subprocess.run(
        [*CLI, "demo", "--check", "--for", "5s"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "QWATCH_WINDOW" in lines[0], done.stderr


def _row(app: QwatchApp, name: str) -> tuple[str, str] | None:
    """(kind, verdict) of the table line called ``name``."""
    table = app.query_one(QueueTable)
    for line in table.ordered_rows:
        _, kind, _, shown = key_parts(line.key.value)
        if shown == name:
            return kind, table.get_row(line.key)[-1].plain
    return None


async def test_dashboard_shows_the_family_as_leak_then_stops_the_server() -> None:
    """The dashboard on the background demo: the family line appears, turns
    LEAK and is announced; quitting stops the workload and the server."""
    with BackgroundDemo() as demo:
        assert demo.url is not None and demo.workload is not None
        app = demo_app(demo_run(demo.url, interval=1.0, window=3.0))
        async with app.run_test(size=(170, 50)) as pilot:
            await until(pilot, lambda: _row(app, FAMILY) == ("f", "LEAK"), 30)
            assert app.bells == 1
            await until(pilot, lambda: _row(app, PLAN.job_queue) is not None)
            job = _row(app, PLAN.job_queue)
            assert job is not None and job[1] != "LEAK"
            status = app.lines[DEMO_NAME].status
            assert status is not None and status.error is None
        assert demo.workload.counts.jobs > 20 and demo.running
    assert not demo.running and demo.error is None
    parts = urlsplit(demo.url)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((parts.hostname, parts.port), 2).close()
