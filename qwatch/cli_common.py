"""Options shared by the commands that watch targets."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from qwatch.config import load_config
from qwatch.layers import Settings, read_env, resolve, settings_from
from qwatch.targets import TargetSpec, parse_duration

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
            "--config", "config_path",
            type=click.Path(dir_okay=False, path_type=Path), default=None,
            help="qwatch.toml to read (also QWATCH_CONFIG).",
        ),
        click.option(
            "--log-file", type=click.Path(dir_okay=False, path_type=Path),
            default=None, help="Write the log here (the dashboard never prints).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclass(frozen=True, slots=True)
class Run:
    """What a watching command needs once every settings layer is applied."""

    settings: Settings
    specs: list[TargetSpec]


def load_run(
    targets: tuple[str, ...],
    config_path: Path | None = None,
    **flags: Any,
) -> Run:
    """Targets and settings from flags over ``QWATCH_*`` over qwatch.toml.

    ``targets`` may name config targets or be URLs; ``flags`` are the
    command's own options, None (or empty) where not given.

    Raises:
        ConfigError: the file, a variable or a flag is wrong (one line).
        TargetError: a URL is malformed, or none was given and none answered.
    """
    env_path = os.environ.get("QWATCH_CONFIG")
    path = config_path or (Path(env_path) if env_path else None)
    config = load_config(path)
    env = read_env(os.environ)
    return Run(settings_from(config, env, flags), resolve(targets, config, env, flags))


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
