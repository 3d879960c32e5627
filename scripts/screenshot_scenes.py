"""Screenshots of the real dashboard, each against a server started here.

Run through ``scripts/screenshots``, which makes sure the tools are there.
Every scene drives :class:`qwatch.app.main.QwatchApp` with Textual's Pilot,
saves an SVG with ``App.save_screenshot`` and turns it into a PNG with
``rsvg-convert``. Nothing here touches a server it did not start: Redis is a
throwaway ``redis-server`` on a free port, Starling is the in-package server
on a free port, and the purge scene is cancelled before anything is purged.

    python scripts/screenshot_scenes.py [--out DIR] [--only SCENE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis
from textual.pilot import Pilot

from qwatch.app.actions import PurgeScreen
from qwatch.app.help import HelpScreen
from qwatch.app.lines import key_parts
from qwatch.app.main import QwatchApp
from qwatch.app.status import TargetFlags
from qwatch.app.table import QueueTable
from qwatch.celery_workload import CeleryWorkload, throwaway_redis
from qwatch.settings import Thresholds
from qwatch.starling.workload import WorklingPlan, demo_target
from qwatch.targets import TargetSpec, build_watch
from qwatch.tracker import Row

SIZE = (160, 45)
"""Terminal columns and lines of every screenshot."""
ZOOM = 0.75
"""PNG scale: 160 columns come out about 1,480 pixels wide."""
SCENES = ("dashboard-redis", "purge-confirm", "dashboard-starling", "help")

REDIS_FAMILY = "celery-task-meta-{uuid}"
TTL_FAMILY = "shortlived:celery-task-meta-{uuid}"
REDIS_TH = Thresholds(window=10.0, stall_after=60.0)
"""A 10 s window instead of 60 s, so the leak is called within seconds."""
LEVEL = 300.0
"""Members a minute a levelled-off family may still move by (it gains 3,000
a minute while climbing)."""
REDIS_HISTORY = 20
"""Polls of history before the Redis shot, so the chart has a slope."""

STARLING_FAMILY = "report_workers:generate:{hex}"
STARLING_TH = Thresholds(window=10.0, stall_after=4.0)
STARLING_PLAN = WorklingPlan(reader_stops_at=6.0, reader_resumes_at=None)
"""The mail reader stops after 6 s and never comes back: a STALL beside the
leak. The defaults (stop at 60 s) are the live demo's pacing."""
MAIL_QUEUE = STARLING_PLAN.mail_queue
STARLING_HISTORY = 15

WAIT = 120.0
"""Longest wait for any condition; a scene that needs more has failed."""


class SceneFailed(Exception):
    """A condition was not met in time; the message says which."""


async def until(pilot: Pilot[None], check: Callable[[], object], what: str) -> None:
    """Let the app run until ``check()`` is truthy, at most :data:`WAIT` s."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise SceneFailed(f"{what}: not seen within {WAIT:.0f} s")
        await pilot.pause(0.1)


def names(app: QwatchApp) -> list[str]:
    """The names on the table's lines, top to bottom."""
    table = app.query_one(QueueTable)
    return [key_parts(row.key.value or "")[3] for row in table.ordered_rows]


def row_of(app: QwatchApp, name: str) -> Row | None:
    """The row behind the line called ``name``, if it is shown."""
    for entry in app.table.entries.values():
        if entry.row.name == name:
            return entry.row
    return None


def verdict_of(app: QwatchApp, name: str) -> str | None:
    """The verdict of the line called ``name``, if it is shown."""
    row = row_of(app, name)
    return None if row is None else row.verdict.value


def levelled_off(app: QwatchApp, name: str) -> bool:
    """True once a TTL family is OK, its keys expiring about as fast as they
    come: its steady state."""
    row = row_of(app, name)
    if row is None or row.verdict.value != "OK":
        return False
    return (row.rate_out or 0) > 0 and abs(row.change_per_min or 0) < LEVEL


def select(app: QwatchApp, name: str) -> bool:
    """Put the cursor on ``name``; True once the detail pane has its history.

    Called in every wait step, since a re-sort may move the line.
    """
    table = app.table
    if name not in names(app):
        return False
    index = names(app).index(name)
    if table.cursor_row != index:
        table.move_cursor(row=index, animate=False)
    entry = table.selected()
    if entry is None or entry.row.name != name:
        return False
    view = app.views.get(entry.target)
    return view is not None and view.focus == name and len(view.points) >= 2


class Shooter:
    """Saves SVGs with the app's own screenshot call and converts them."""

    def __init__(self, out: Path, work: Path) -> None:
        self.out = out
        self.work = work
        self.taken: list[Path] = []

    async def shoot(self, pilot: Pilot[None], name: str) -> None:
        """Settle the screen, save ``name``.svg, write ``name``.png."""
        await pilot.pause(0.5)  # let the last view's repaint land
        svg = Path(pilot.app.save_screenshot(f"{name}.svg", str(self.work)))
        # librsvg drops the non-breaking spaces that open a text run unless
        # told to keep whitespace, which glues neighbouring cells together.
        text = svg.read_text(encoding="utf-8")
        svg.write_text(text.replace("<svg ", '<svg xml:space="preserve" ', 1))
        png = self.out / f"{name}.png"
        subprocess.run(
            ["rsvg-convert", "--zoom", str(ZOOM), "-o", str(png), str(svg)], check=True
        )
        self.taken.append(png)
        print(f"screenshots: {png} ({png.stat().st_size // 1024} KiB)")


@contextlib.asynccontextmanager
async def celery_outage() -> AsyncIterator[str]:
    """A throwaway redis-server with the Celery result-key leak running on it."""
    with throwaway_redis() as url:
        await _ping(url)
        workload = CeleryWorkload(url)
        task = asyncio.create_task(workload.run(), name="celery workload")
        try:
            yield url
        finally:
            workload.stop()
            await task


async def _ping(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    try:
        while True:
            with contextlib.suppress(OSError, aioredis.ConnectionError):
                if await client.ping():
                    return
            if time.monotonic() > deadline:
                raise SceneFailed(f"{url} did not answer within 10 s")
            await asyncio.sleep(0.05)  # the server is starting: bounded retry
    finally:
        await client.aclose()


async def redis_scenes(shooter: Shooter, wanted: set[str]) -> None:
    """The Celery outage: LEAK family selected; then the purge confirm."""
    async with celery_outage() as url:
        spec = TargetSpec(url=url, name="celery", interval=1.0, thresholds=REDIS_TH)
        flags = {"celery": TargetFlags(production=True)}
        app = QwatchApp([build_watch(spec)], flags=flags)
        async with app.run_test(size=SIZE) as pilot:
            # The TTL family climbs until its first keys expire (20 s), then
            # levels off; wait for that, so the shot shows the steady state.
            await until(
                pilot,
                lambda: (
                    verdict_of(app, REDIS_FAMILY) == "LEAK"
                    and levelled_off(app, TTL_FAMILY)
                ),
                "Redis LEAK beside the TTL family levelled off",
            )
            await until(
                pilot,
                lambda: (
                    select(app, REDIS_FAMILY)
                    and len(app.views["celery"].points) >= REDIS_HISTORY
                ),
                "Redis family history in the detail pane",
            )
            if "dashboard-redis" in wanted:
                await shooter.shoot(pilot, "dashboard-redis")
            if "purge-confirm" in wanted:
                await purge_confirm(shooter, pilot, app)


async def purge_confirm(shooter: Shooter, pilot: Pilot[None], app: QwatchApp) -> None:
    """P on the family: count shown, name typed, then cancelled (never run)."""
    await pilot.press("P")
    await until(pilot, lambda: isinstance(app.screen, PurgeScreen), "purge screen")
    screen = app.screen
    count = screen.query_one("#count")
    await until(pilot, lambda: "items will go" in str(count.render()), "purge count")
    await pilot.click("#confirm")
    await pilot.press(*REDIS_FAMILY)
    go = screen.query_one("#go")
    await until(pilot, lambda: not go.disabled, "purge button enabled")
    await shooter.shoot(pilot, "purge-confirm")
    await pilot.press("escape")
    await until(pilot, lambda: app.screen is app.screen_stack[0], "purge cancelled")


async def starling_scenes(shooter: Shooter, wanted: set[str]) -> None:
    """The Workling leak beside a stalled mail queue; then the help screen."""
    async with demo_target(STARLING_PLAN) as (url, _workload):
        spec = TargetSpec(
            url=url, name="starling", interval=1.0, thresholds=STARLING_TH
        )
        app = QwatchApp([build_watch(spec)])
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot,
                lambda: (
                    verdict_of(app, STARLING_FAMILY) == "LEAK"
                    and verdict_of(app, MAIL_QUEUE) == "STALL"
                ),
                "Starling LEAK and STALL",
            )
            await until(
                pilot,
                lambda: (
                    select(app, STARLING_FAMILY)
                    and len(app.views["starling"].points) >= STARLING_HISTORY
                ),
                "Starling family history in the detail pane",
            )
            if "dashboard-starling" in wanted:
                await shooter.shoot(pilot, "dashboard-starling")
            if "help" in wanted:
                await pilot.press("question_mark")
                await until(
                    pilot, lambda: isinstance(app.screen, HelpScreen), "help screen"
                )
                await shooter.shoot(pilot, "help")


async def main_async(out: Path, wanted: set[str]) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="qwatch-shots-") as folder:
        work = Path(folder)
        # Actions from the purge scene must never reach the operator's own log.
        os.environ["QWATCH_AUDIT_LOG"] = str(work / "audit.jsonl")
        shooter = Shooter(out, work)
        if wanted & {"dashboard-redis", "purge-confirm"}:
            await redis_scenes(shooter, wanted)
        if wanted & {"dashboard-starling", "help"}:
            await starling_scenes(shooter, wanted)
        return shooter.taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--only", nargs="+", choices=SCENES, default=list(SCENES))
    args = parser.parse_args(argv)
    if shutil.which("rsvg-convert") is None:
        print("screenshots: rsvg-convert missing (apt-get install librsvg2-bin)",
              file=sys.stderr)  # fmt: skip
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(main_async(args.out, set(args.only)))
    except SceneFailed as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
