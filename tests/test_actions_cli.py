"""``qwatch drain | purge | peek | restore`` as a real process on real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_actions_helpers import (  # noqa: F401 - fixtures
    Backend,
    arun_cli,
    bodies,
    rabbit_backend,
    redis_backend,
)

UUIDS = [f"6f1c2b3a-1111-4a2b-8c3d-{i:012x}" for i in range(3)]
MEMBERS = [f"celery-task-meta-{u}" for u in UUIDS]
FAMILY = "celery-task-meta-{uuid}"


@pytest.fixture
async def filled(redis_backend: Backend) -> Backend:  # noqa: F811
    """A work list, a result family and a look-alike."""
    await redis_backend.fill("jobs", bodies(20, seed=1))
    for name in [*MEMBERS, "celery-task-meta-x"]:
        await redis_backend.fill(name, [b"result"])
    return redis_backend


def one_line_error(err: str, *words: str) -> None:
    """Bad input says so in one line, never with a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], err


@pytest.mark.parametrize("how", ["flag", "env"])
async def test_read_only_refuses_every_action(
    filled: Backend, tmp_path: Path, how: str
) -> None:
    before = await filled.depths()
    audit_log = tmp_path / "audit.jsonl"
    drained = tmp_path / "d.jsonl"
    assert (await arun_cli(["drain", filled.url, "jobs", "--to", str(drained),
                            "--limit", "3"], audit_log)).returncode == 0  # fmt: skip
    commands = [
        ["drain", filled.url, "jobs", "--to", str(tmp_path / "x.jsonl")],
        ["purge", filled.url, "jobs", "--yes"],
        ["purge", filled.url, "--family", FAMILY, "--yes"],
        ["purge", filled.url, "--family", FAMILY, "--yes", "--expire", "1h"],
        ["peek", filled.url, "jobs"],
        ["restore", str(drained), filled.url, "jobs"],
    ]
    for args in commands:
        if how == "flag":
            done = await arun_cli([*args, "--read-only"], audit_log)
        else:
            done = await _with_env(args, audit_log)
        assert done.returncode == 3, (args, done.stderr)
        one_line_error(done.stderr, "read-only", "refused")
    after = await filled.depths()
    assert after == {**before, "jobs": 17}
    assert not (tmp_path / "x.jsonl").exists()
    entries = [json.loads(x) for x in audit_log.read_text().splitlines()]
    refused = [e["action"] for e in entries if e["outcome"] == "refused"]
    assert refused == ["drain", "purge", "purge", "expire", "peek", "restore"]


async def _with_env(args: list[str], audit_log: Path, value: str = "1") -> Any:
    import asyncio
    import subprocess

    from test_actions_helpers import CLI, cli_env

    env = {**cli_env(audit_log), "QWATCH_READ_ONLY": value}
    return await asyncio.to_thread(
        subprocess.run, [*CLI, *args], capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip


async def test_dry_run_of_a_large_family_lists_twenty_and_counts_the_rest(
    redis_backend: Backend,  # noqa: F811
    tmp_path: Path,
) -> None:
    names = [f"celery-task-meta-6f1c2b3a-2222-4a2b-8c3d-{i:012x}" for i in range(45)]
    for name in names:
        await redis_backend.fill(name, [b"result"])
    done = await arun_cli(
        ["purge", redis_backend.url, "--family", FAMILY, "--dry-run"], tmp_path / "a"
    )
    assert done.returncode == 0, done.stderr
    listed = [n for n in names if n in done.stdout]
    assert len(listed) == 20
    assert "  ... and 25 more" in done.stdout
    assert "45 queues, 45 items" in done.stdout


async def test_dry_run_lists_members_and_changes_nothing(
    filled: Backend, tmp_path: Path
) -> None:
    before = await filled.depths()
    done = await arun_cli(
        ["purge", filled.url, "--family", FAMILY, "--dry-run"], tmp_path / "a"
    )
    assert done.returncode == 0, done.stderr
    assert "3 queues, 3 items" in done.stdout
    for name in MEMBERS:
        assert name in done.stdout
    assert "celery-task-meta-x" not in done.stdout
    assert await filled.depths() == before


async def test_purge_with_no_answer_does_nothing(
    filled: Backend, tmp_path: Path
) -> None:
    """End of input at the prompt (cron, a closed pipe) is not a yes, and
    exits 3, not 1, which a monitoring system would read as WARNING."""
    before = await filled.depths()
    args = ["purge", filled.url, "--family", FAMILY]
    done = await arun_cli(args, tmp_path / "a", stdin="")
    assert done.returncode == 3
    one_line_error(done.stderr.splitlines()[-1], "no answer", "nothing done")
    assert await filled.depths() == before


async def test_purge_asks_for_the_pattern_to_be_typed(
    filled: Backend, tmp_path: Path
) -> None:
    args = ["purge", filled.url, "--family", FAMILY]
    wrong = await arun_cli(args, tmp_path / "a", stdin="celery-task-meta-*\n")
    assert wrong.returncode == 3
    one_line_error(wrong.stderr.splitlines()[-1], "not confirmed")
    assert set(MEMBERS) <= set(await filled.depths())
    right = await arun_cli(args, tmp_path / "a", stdin=FAMILY + "\n")
    assert right.returncode == 0, right.stderr
    assert "purged 3 queues (3 items)" in right.stdout
    left = await filled.depths()
    assert not set(MEMBERS) & set(left)
    assert left["celery-task-meta-x"] == 1 and left["jobs"] == 20


async def test_peek_shows_the_head_and_leaves_it(
    filled: Backend, tmp_path: Path
) -> None:
    done = await arun_cli(["peek", filled.url, "jobs", "-n", "2"], tmp_path / "a")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith('1. {"task": "t", "id": 0}')
    assert len(done.stdout.splitlines()) == 2
    assert (await filled.depths())["jobs"] == 20


async def test_drain_then_restore_reports_counts(
    filled: Backend, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.jsonl"
    audit_log = tmp_path / "a"
    drained = await arun_cli(
        ["drain", filled.url, "jobs", "--to", str(path)], audit_log
    )
    assert drained.returncode == 0, drained.stderr
    assert f"drained 20 items from jobs on {filled.url} to {path}" in drained.stdout
    assert "jobs" not in await filled.depths()
    again = await arun_cli(["drain", filled.url, "jobs", "--to", str(path)], audit_log)
    one_line_error(again.stderr, "already exists")
    restored = await arun_cli(["restore", str(path), filled.url], audit_log)
    assert restored.returncode == 0, restored.stderr
    assert "restored 20 of 20 items" in restored.stdout
    assert await filled.items("jobs") == bodies(20, seed=1)


async def test_bad_input_is_one_line(filled: Backend, tmp_path: Path) -> None:
    not_drain = tmp_path / "x.jsonl"
    not_drain.write_text("hello\n")
    cases = [
        (["purge", filled.url, "nothing", "--yes"], "no queue named"),
        (["purge", filled.url, "--family", "celery", "--yes"], "not a family"),
        (["purge", filled.url], "either QUEUE or --family"),
        (["restore", str(not_drain), filled.url], "not a qwatch drain file"),
        (["restore", str(tmp_path / "none"), filled.url], "cannot read"),
        (["peek", "redis://127.0.0.1:1/0", "jobs"], ""),
        (["drain", "nope://x", "jobs"], "unknown scheme"),
    ]
    for args, words in cases:
        done = await arun_cli(args, tmp_path / "a")
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        one_line_error(done.stderr, words)


@pytest.fixture
def config(filled: Backend, tmp_path: Path) -> Path:
    """A qwatch.toml naming the test server twice: once read-only production,
    once production only."""
    path = tmp_path / "qwatch.toml"
    path.write_text(
        f'[targets.prod]\nurl = "{filled.url}"\nread_only = true\n'
        f"production = true\n\n"
        f'[targets.stage]\nurl = "{filled.url.rsplit("/", 1)[0]}/15"\n'
        f"production = true\n"
    )
    return path


async def test_config_read_only_holds_by_name_url_and_against_env(
    filled: Backend, tmp_path: Path, config: Path
) -> None:
    """read_only from the config refuses by target name and by its URL typed
    by hand; QWATCH_READ_ONLY=0 cannot lift it."""
    audit_log = tmp_path / "a"
    for word in ("prod", filled.url):
        done = await arun_cli(
            ["drain", word, "jobs", "--config", str(config)], audit_log
        )
        assert done.returncode == 3, done.stdout
        one_line_error(done.stderr, "read-only", f"target prod in {config}")
    done = await _with_env(
        ["peek", "prod", "jobs", "--config", str(config)], audit_log, "0"
    )
    assert done.returncode == 3
    one_line_error(done.stderr, "read-only")
    assert (await filled.depths())["jobs"] == 20


async def test_production_is_badged_and_the_flag_only_adds_read_only(
    filled: Backend, tmp_path: Path, config: Path
) -> None:
    audit_log = tmp_path / "a"
    args = ["purge", "stage", "jobs", "--dry-run", "--config", str(config)]
    done = await arun_cli(args, audit_log)
    assert done.returncode == 3  # DB 15 has no jobs list
    one_line_error(done.stderr, "no queue named")
    listed = await arun_cli(
        ["purge", "prod", "jobs", "--dry-run", "--config", str(config)], audit_log
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("[PRODUCTION] prod: queue jobs: 1 queues")
    refused = await arun_cli(
        ["drain", "stage", "jobs", "--read-only", "--config", str(config)], audit_log
    )
    assert refused.returncode == 3
    one_line_error(refused.stderr, "stage is read-only (--read-only)")


async def test_ctrl_c_stops_a_drain_after_the_item_in_flight(
    redis_backend: Backend,  # noqa: F811
    tmp_path: Path,
) -> None:
    """SIGINT cancels: exit 130, the file holds what left the server, the
    rest is still queued, nothing is parked in a holding key."""
    import asyncio
    import signal
    import subprocess

    from test_actions_helpers import CLI, cli_env

    original = bodies(5000, seed=11)
    await redis_backend.fill("jobs", original)
    path = tmp_path / "jobs.jsonl"
    proc = subprocess.Popen(
        [*CLI, "drain", redis_backend.url, "jobs", "--to", str(path)],
        env=cli_env(tmp_path / "a"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    for _ in range(6000):
        if path.exists() and path.read_bytes().count(b"\n") > 50:
            break
        assert proc.poll() is None, proc.communicate()
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 130, err
    from qwatch.drainfile import read_items

    saved = [item.body for item in read_items(path)]
    assert f"drained {len(saved)} items" in out and "cancelled" in err
    assert 0 < len(saved) < 5000
    assert saved + await redis_backend.items("jobs") == original
    assert "qwatch:drain:jobs" not in await redis_backend.depths()
