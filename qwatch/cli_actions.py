"""``qwatch drain | purge | peek | restore``: operator actions from a shell.

Progress goes to stderr, results to stdout. Ctrl-C cancels cleanly: the item
in flight finishes, nothing is lost, and the result says how far it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from qwatch import actions
from qwatch.adapters import adapter_for
from qwatch.adapters.base import ActionError, Adapter
from qwatch.cli_common import duration, load_run, setup_logging
from qwatch.config import Config
from qwatch.drainfile import ensure_new, summarize
from qwatch.layers import read_env
from qwatch.targets import TargetSpec

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

CANCELLED_EXIT = 130
DRY_RUN_LINES = 20
"""Members a dry run lists by name; the rest are counted."""


def action_options(func: F) -> F:
    """Options every action command takes."""
    options = [
        click.option(
            "--read-only", is_flag=True,
            help="Refuse every action (also QWATCH_READ_ONLY=1, or read_only in "
            "qwatch.toml); it can only add read-only, never lift it.",
        ),
        click.option(
            "--config", "config_path",
            type=click.Path(dir_okay=False, path_type=Path), default=None,
            help="qwatch.toml to read (also QWATCH_CONFIG).",
        ),
        click.option(
            "--log-file", type=click.Path(dir_okay=False, path_type=Path),
            default=None, help="Write the log here.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def resolve_target(
    text: str, read_only: bool, config_path: Path | None = None
) -> tuple[TargetSpec, actions.Guard]:
    """The target TARGET names (a config name or a URL) and its guard.

    Settings go through the same layers as every command (flags, then
    ``QWATCH_*``, then qwatch.toml). A URL typed by hand that a config target
    also names gets that target's read-only and production marks, so typing
    the URL is no way round them.
    """
    run = load_run((text,), config_path, read_only=read_only)
    spec, config = run.specs[0], run.settings.config
    twin = _twin(spec, config)
    if twin is not None:
        spec = replace(
            spec,
            read_only=spec.read_only or bool(twin[1].get("read_only")),
            production=spec.production or bool(twin[1].get("production")),
        )
    why = _why_read_only(spec, config, read_only, twin)
    guard = actions.Guard(spec.url, spec.read_only, spec.production, why, spec.name)
    return spec, guard


def _twin(spec: TargetSpec, config: Config) -> tuple[str, dict[str, Any]] | None:
    """The config target with the same server and database as a typed URL."""
    if spec.name:
        return spec.name, config.targets[spec.name]
    mine = _where(spec.url)
    for name, values in config.targets.items():
        if _where(str(values["url"])) == mine:
            return name, values
    return None


def _where(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    return (
        parts.scheme.lower(), (parts.hostname or "").lower(), parts.port,
        parts.path.rstrip("/") or "/",
    )  # fmt: skip


def _why_read_only(
    spec: TargetSpec,
    config: Config,
    flag: bool,
    twin: tuple[str, dict[str, Any]] | None,
) -> str:
    """What made the target read-only, said when an action is refused."""
    if flag:
        return "--read-only"
    if read_env(os.environ).get("read_only"):
        return "QWATCH_READ_ONLY"
    if config.settings.get("read_only"):
        return f"read_only in {config.where}"
    name = twin[0] if twin else spec.label
    return f"read_only for target {name} in {config.where}"


@contextlib.asynccontextmanager
async def connected(spec: TargetSpec) -> AsyncIterator[Adapter]:
    """A connected adapter, closed on the way out."""
    adapter = adapter_for(spec.url, spec.options)
    await adapter.connect()
    try:
        yield adapter
    finally:
        await adapter.close()


def run_cancellable(make: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run an action; the first Ctrl-C asks it to stop after the item in
    flight, a second one abandons it."""

    async def main() -> T:
        cancel = asyncio.Event()
        task = asyncio.ensure_future(make(cancel))
        loop = asyncio.get_running_loop()

        def interrupted() -> None:
            if cancel.is_set():
                task.cancel()
            cancel.set()

        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, interrupted)
        try:
            return await task
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        finally:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(main())


def badge(spec: TargetSpec) -> str:
    """How the target is named in prompts, marked when it is production."""
    return f"[PRODUCTION] {spec.label}" if spec.production else spec.label


@click.command()
@click.argument("target")
@click.argument("queue")
@click.option(
    "--to", "path", type=click.Path(dir_okay=False, path_type=Path),
    default=None, help="Drain file to create (default drain-QUEUE-TIME.jsonl).",
)  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N.")
@action_options
def drain(
    target: str,
    queue: str,
    path: Path | None,
    limit: int | None,
    read_only: bool,
    config_path: Path | None,
    log_file: Path | None,
) -> None:
    """Move items from QUEUE into a file; each leaves the server only once
    it is safely on disk."""
    setup_logging(log_file)
    spec, guard = resolve_target(target, read_only, config_path)
    guard.check("drain", queue)
    path = path or actions.default_drain_path(queue)
    ensure_new(path)

    async def work(cancel: asyncio.Event) -> actions.DrainOutcome:
        async with connected(spec) as adapter:
            total = await _depth(adapter, queue, limit)
            with ProgressBar(f"drain {queue} on {badge(spec)}", total) as bar:
                return await actions.drain(
                    adapter, queue, path, guard, limit, bar.update, cancel,
                    offload=False,
                )  # fmt: skip

    out = run_cancellable(work)
    where = f"to {out.path}" if out.count else "(nothing there; no file written)"
    click.echo(f"drained {out.count} items from {queue} on {badge(spec)} {where}")
    if out.cancelled:
        click.echo("cancelled: the rest is still on the server", err=True)
        raise click.exceptions.Exit(CANCELLED_EXIT)


async def _depth(adapter: Adapter, queue: str, limit: int | None) -> int | None:
    """How many items the bar expects, or None when the server will not say
    quickly."""
    try:
        snap = await actions.full_snapshot(adapter, timeout=10.0)
    except ActionError:
        return limit
    depth = next((s.depth for s in snap.queues if s.name == queue), None)
    if depth is None:
        return limit
    return min(depth, limit) if limit else depth


@click.command()
@click.argument("target")
@click.argument("queue", required=False)
@click.option(
    "--family",
    "pattern",
    default=None,
    metavar="PATTERN",
    help="Purge every member of a family, e.g. 'celery-task-meta-{uuid}'.",
)
@click.option("--dry-run", is_flag=True, help="List what would go; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask to type the name.")
@click.option(
    "--expire",
    callback=duration,
    default=None,
    metavar="DURATION",
    help="Give members a TTL instead of deleting them (result keys).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=actions.BATCH,
    show_default=True,
    help="Names per server call.",
)
@action_options
def purge(
    target: str,
    queue: str | None,
    pattern: str | None,
    dry_run: bool,
    yes: bool,
    expire: float | None,
    batch: int,
    read_only: bool,
    config_path: Path | None,
    log_file: Path | None,
) -> None:
    """Delete QUEUE, or every member of a family; shows the count first."""  # fmt: skip
    setup_logging(log_file)
    if (queue is None) == (pattern is None):
        raise click.UsageError("give either QUEUE or --family PATTERN")
    what = pattern or queue or ""
    spec, guard = resolve_target(target, read_only, config_path)

    if not dry_run:
        guard.check("purge" if expire is None else "expire", what)

    async def work(cancel: asyncio.Event) -> actions.PurgeOutcome | None:
        async with connected(spec) as adapter:
            plan = await actions.plan_purge(adapter, what, pattern is not None)
            _show_plan(plan, spec, dry_run, expire is not None)
            if dry_run or not _confirmed(plan, yes, expire):
                return None
            with ProgressBar(
                f"purge {what} on {badge(spec)}", len(plan.names), "names"
            ) as bar:
                return await actions.purge(
                    adapter, plan, guard, bar.update, cancel, expire, batch
                )

    out = run_cancellable(work)
    if out is not None:
        _show_purge(out, expire)


def _show_plan(
    plan: actions.PurgePlan, spec: TargetSpec, listing: bool, expiring: bool
) -> None:
    kind = "family" if plan.family else "queue"
    click.echo(
        f"{badge(spec)}: {kind} {plan.what}: {len(plan.names):,} queues, "
        f"{plan.items:,} items"
    )
    if listing:
        # A family of 40,000 must not flood the terminal.
        for name in plan.names[:DRY_RUN_LINES]:
            click.echo(f"  {name}  ({plan.expected[name].depth:,} items)")
        more = len(plan.names) - DRY_RUN_LINES
        if more > 0:
            click.echo(f"  ... and {more:,} more")
        click.echo("dry run: nothing changed")
    elif plan.can_expire and not expiring:
        click.echo("  these look like result keys: --expire 1h would set a TTL instead")


def _confirmed(plan: actions.PurgePlan, yes: bool, expire: float | None) -> bool:
    if yes:
        return True
    verb = "expire" if expire is not None else "delete"
    typed = click.prompt(
        f"Type {plan.what} to {verb} {len(plan.names)} queues", default="",
        show_default=False, err=True,
    )  # fmt: skip
    if typed.strip() != plan.what:
        raise ActionError("not confirmed; nothing purged")
    return True


def _show_purge(out: actions.PurgeOutcome, expire: float | None) -> None:
    result = out.result
    verb = "expired" if expire is not None else "purged"
    click.echo(f"{verb} {len(result.deleted)} queues ({result.items} items)")
    for name, why in sorted(result.skipped.items()):
        click.echo(f"  skipped {name}: {why}")
    if out.cancelled:
        click.echo(f"cancelled: {out.untouched} queues left untouched", err=True)
        raise click.exceptions.Exit(CANCELLED_EXIT)


@click.command()
@click.argument("target")
@click.argument("queue")
@click.option("-n", "count", type=click.IntRange(min=1), default=10,
              show_default=True, help="Items to show.")  # fmt: skip
@action_options
def peek(
    target: str,
    queue: str,
    count: int,
    read_only: bool,
    config_path: Path | None,
    log_file: Path | None,
) -> None:
    """Show the first items of QUEUE without taking them."""
    setup_logging(log_file)
    spec, guard = resolve_target(target, read_only, config_path)

    guard.check("peek", queue)

    async def work(cancel: asyncio.Event) -> list[Any]:
        async with connected(spec) as adapter:
            if adapter.peek_side_effect and adapter.can_peek:
                click.echo(f"note: {adapter.peek_side_effect}", err=True)
            return await actions.peek(adapter, queue, count, guard)

    items = run_cancellable(work)
    for line in actions.describe(items):
        click.echo(line)
    click.echo(f"{len(items)} items shown from {queue} on {badge(spec)}", err=True)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("target")
@click.argument("queue", required=False)
@action_options
def restore(
    file: Path,
    target: str,
    queue: str | None,
    read_only: bool,
    config_path: Path | None,
    log_file: Path | None,
) -> None:
    """Put the items of a drain FILE back, in order, into QUEUE (default:
    the queue they came from)."""
    setup_logging(log_file)
    spec, guard = resolve_target(target, read_only, config_path)
    summary = summarize(file)
    into = queue or str(summary.header.get("queue") or "")
    guard.check("restore", into or "?")

    async def work(cancel: asyncio.Event) -> actions.RestoreOutcome:
        async with connected(spec) as adapter:
            with ProgressBar(
                f"restore {file.name} to {badge(spec)}", summary.items
            ) as bar:
                return await actions.restore(
                    adapter, file, guard, queue, bar.update, cancel
                )

    out = run_cancellable(work)
    click.echo(
        f"restored {out.count} of {out.in_file} items from {file} to {out.queue} "
        f"on {badge(spec)}"
    )
    if out.returned:
        click.echo(
            f"  first put back {out.returned} items a stopped drain had parked "
            f"on the server"
        )
    if out.torn:
        click.echo("  skipped a torn last line: a killed drain was writing it and "
                   "never counted it as saved")  # fmt: skip
    if out.count < out.in_file:
        raise click.exceptions.Exit(CANCELLED_EXIT if out.count else 1)


class RateColumn(ProgressColumn):
    """Items per second, as rich measures them."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else "")


class ProgressBar:
    """A progress bar with count and rate on stderr; stdout stays for results.

    Args:
        total: items expected, or None for a bar without an end.
    """

    def __init__(self, label: str, total: int | None, unit: str = "items") -> None:
        console = Console(stderr=True)
        self._bar = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(),
            MofNCompleteColumn(), RateColumn(unit), TimeElapsedColumn(),
            console=console, disable=not console.is_terminal,
        )  # fmt: skip
        self._task = self._bar.add_task(label, total=total)

    def update(self, done: int) -> None:
        """Called by the action with the running count."""
        self._bar.update(self._task, completed=done)

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()
