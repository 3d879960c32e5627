"""Purge and drain from the dashboard, on a real redis-server."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from test_app_fakes import until

from qwatch import audit
from qwatch.app.actions import DrainScreen, PurgeScreen
from qwatch.app.lines import key_parts
from qwatch.app.main import QwatchApp
from qwatch.app.status import TargetFlags
from qwatch.app.table import QueueTable
from qwatch.drainfile import read_items
from qwatch.settings import Thresholds
from qwatch.targets import TargetSpec, build_watch

FAMILY = "celery-task-meta-{uuid}"
MEMBERS = [f"celery-task-meta-6f1c2b3a-1111-4a2b-8c3d-{i:012x}" for i in range(4)]
TH = Thresholds(window=3.0, stall_after=60.0, min_growth=3, min_members=3)


@pytest.fixture(autouse=True)
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private audit log for each test."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv(audit.ENV, str(path))
    return path


async def filled(client: aioredis.Redis) -> None:
    for name in MEMBERS:
        await client.set(name, b'{"status": "SUCCESS"}')
    await client.set("celery-task-meta-x", b"keep")
    await client.rpush("jobs", *[f"job {i}".encode() for i in range(30)])


def make_app(url: str, read_only: bool = False) -> QwatchApp:
    spec = TargetSpec(url=url, name="redis", interval=0.5, thresholds=TH)
    flags = {"redis": TargetFlags(read_only=read_only, production=True)}
    return QwatchApp([build_watch(spec)], flags=flags)


def select(app: QwatchApp, name: str) -> bool:
    """Put the cursor on the line named ``name``; False until it is shown."""
    table = app.query_one(QueueTable)
    for index, row in enumerate(table.ordered_rows):
        if key_parts(row.key.value or "")[3] == name:
            table.move_cursor(row=index)
            return True
    return False


async def test_family_purge_asks_for_the_pattern_and_spares_look_alikes(
    redis_db: tuple[str, aioredis.Redis],
) -> None:
    url, client = redis_db
    await filled(client)
    app = make_app(url)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: select(app, FAMILY), timeout=20)
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, PurgeScreen))
        screen = app.screen
        count = screen.query_one("#count")
        await until(pilot, lambda: "4 queues" in str(count.render()))
        assert "PRODUCTION" in str(screen.query_one(".prod").render())
        go = screen.query_one("#go")
        await pilot.click("#confirm")
        await pilot.press(*"celery-task-meta-*")
        assert go.disabled
        # What is typed in the modal is the confirmation, not the table filter.
        assert app.choices.filter == ""
        screen.query_one("#confirm").value = FAMILY
        await until(pilot, lambda: not go.disabled)
        await pilot.click("#go")
        await until(pilot, lambda: not isinstance(app.screen, PurgeScreen))
    assert [await client.exists(n) for n in MEMBERS] == [0] * 4
    assert await client.get("celery-task-meta-x") == b"keep"
    assert await client.llen("jobs") == 30


async def test_drain_from_the_dashboard_saves_every_item(
    redis_db: tuple[str, aioredis.Redis], tmp_path: Path
) -> None:
    url, client = redis_db
    await filled(client)
    path = tmp_path / "jobs.jsonl"
    app = make_app(url)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: select(app, "jobs"), timeout=20)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DrainScreen))
        app.screen.query_one("#path").value = str(path)
        await pilot.click("#go")
        await until(pilot, lambda: not isinstance(app.screen, DrainScreen))
    assert [i.body for i in read_items(path)] == [
        f"job {i}".encode() for i in range(30)
    ]
    assert await client.llen("jobs") == 0


async def test_read_only_target_opens_no_action(
    redis_db: tuple[str, aioredis.Redis],
) -> None:
    url, client = redis_db
    await filled(client)
    app = make_app(url, read_only=True)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(pilot, lambda: select(app, "jobs"), timeout=20)
        for key in ("P", "d", "p"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, PurgeScreen | DrainScreen)
        # Every target is read-only, so the footer offers no action at all.
        bindings = app.screen.active_bindings
        shown = {key for key, b in bindings.items() if b.binding.show}
        assert shown and not shown & {"p", "d", "P"}
    assert await client.llen("jobs") == 30
