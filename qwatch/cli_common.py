"""Options shared by the commands that watch targets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from qwatch.adapters.base import TargetError
from qwatch.settings import Thresholds
from qwatch.targets import TargetSpec, find_local, parse_duration, parse_url

F = TypeVar("F", bound=Callable[..., Any])


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Click callback turning ``60s`` or ``2m`` into seconds."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def target_options(func: F) -> F:
    """TARGET arguments plus the settings every watching command takes."""
    options = [
        click.argument("targets", nargs=-1, metavar="[TARGET]..."),
        click.option(
            "--interval", callback=duration, default=None,
            help="Time between polls, e.g. 5s (default 5s; servers may stretch it).",
        ),
        click.option(
            "--window", callback=duration, default=None,
            help="History a growth verdict looks back over (default 60s).",
        ),
        click.option(
            "--stall-after", callback=duration, default=None,
            help="Time without consumption before STALL (default 30s).",
        ),
        click.option(
            "--pattern", "patterns", multiple=True, metavar="GLOB",
            help="Extra family pattern, e.g. 'rpc-reply-*' (repeatable).",
        ),
        click.option(
            "--log-file", type=click.Path(dir_okay=False, path_type=Path),
            default=None, help="Write the log here (the dashboard never prints).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_specs(
    targets: tuple[str, ...],
    interval: float | None,
    window: float | None,
    stall_after: float | None,
    patterns: tuple[str, ...] = (),
) -> list[TargetSpec]:
    """Turn command-line targets and flags into target specs.

    Raises:
        TargetError: a URL is malformed, or none was given and none answered.
    """
    urls = [parse_url(t) for t in targets] or [find_local()]
    th = Thresholds()
    changes: dict[str, Any] = {}
    if window is not None:
        changes["window"] = window
    if stall_after is not None:
        changes["stall_after"] = stall_after
    try:
        th = Thresholds(**{**_fields(th), **changes})
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    return [
        TargetSpec(url=u, interval=interval or 5.0, thresholds=th, patterns=patterns)
        for u in urls
    ]


def _fields(th: Thresholds) -> dict[str, Any]:
    return {name: getattr(th, name) for name in th.__slots__}


def setup_logging(path: Path | None, default: Path | None = None) -> None:
    """Send qwatch's log to a file; nothing ever goes to stdout."""
    target = path or default
    if target is None:
        logging.getLogger("qwatch").addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(target)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("qwatch")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
