"""Options shared by the commands that watch targets."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from qwatch.config import load_config
from qwatch.layers import Settings, read_env, resolve, settings_from
from qwatch.targets import TargetSpec, parse_duration

if TYPE_CHECKING:
    from qwatch.alerts import Alerts
    from qwatch.hooks import Hooks
    from qwatch.poller import Watch

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
            "--interval",
            callback=duration,
            default=None,
            help="Time between polls, e.g. 5s (default 5s; servers may stretch it).",
        ),
        click.option(
            "--window",
            callback=duration,
            default=None,
            help="History a growth verdict looks back over (default 60s).",
        ),
        click.option(
            "--stall-after",
            callback=duration,
            default=None,
            help="Time without consumption before STALL (default 30s).",
        ),
        click.option(
            "--pattern",
            "patterns",
            multiple=True,
            metavar="GLOB",
            help="Extra family pattern, e.g. 'rpc-reply-*' (repeatable).",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="qwatch.toml to read (also QWATCH_CONFIG).",
        ),
        click.option(
            "--log-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write the log here (the dashboard never prints).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def hook_options(func: F) -> F:
    """--on-alert and --webhook, for every command that raises alerts."""
    options = [
        click.option(
            "--on-alert", default=None, metavar="COMMAND",
            help="Run COMMAND (no shell) for each new leak and each clear; "
            "details in QWATCH_ALERT_* variables.",
        ),
        click.option(
            "--webhook", default=None, metavar="URL",
            help="POST each new leak and each clear to URL as JSON (retried).",
        ),
        click.option(
            "--hook-timeout", callback=duration, default=None,
            help="Time a hook command or webhook request may take (default 10s).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


SETTINGS_ORDER = (
    "Settings: flags, then QWATCH_* environment variables, then qwatch.toml "
    "(--config or QWATCH_CONFIG, else ./qwatch.toml, else the user config "
    "folder), each over the next."
)
"""The precedence sentence every command's --help carries."""


def state_dir() -> Path:
    """``$XDG_STATE_HOME/qwatch`` (else ``~/.local/state/qwatch``), created."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    folder = Path(base) / "qwatch"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_hooks(settings: Settings) -> Hooks | None:
    """The run's hooks, started; None when neither hook is set."""
    from qwatch.hooks import Hooks
    from qwatch.hooks_delivery import CommandHook, Deliverer, WebhookHook

    deliverers: list[Deliverer] = []
    if settings.on_alert:
        deliverers.append(CommandHook(settings.on_alert, settings.hook_timeout))
    if settings.webhook:
        deliverers.append(WebhookHook(settings.webhook, settings.hook_timeout))
    if not deliverers:
        return None
    state = state_dir() / "hooks-sent.json"
    return Hooks(deliverers, settings.hook_rate, settings.hook_repeat, state)


def make_alerts(run: Run) -> Alerts:
    """Alerts with the config's silences; a leak clears only after a whole
    verdict window off LEAK, so one wobbling poll does not page twice."""
    from qwatch.alerts import Alerts

    window = max((spec.thresholds.window for spec in run.specs), default=0.0)
    return Alerts(run.settings.config.silences, clear_after=window)


def alert_on_polls(watches: Sequence[Watch], alerts: Alerts) -> None:
    """After every poll that worked, turn that target's rows into alerts."""

    def polled(watch: Watch) -> None:
        if watch.status.error is None:
            alerts.observe(watch.status.name, watch.tracker.rows())

    for watch in watches:
        watch.listeners.append(polled)


def hook_wait(settings: Settings) -> float:
    """How long a command may wait at exit for alerts still being delivered:
    one webhook with every retry."""
    return 4 * settings.hook_timeout + 7.0


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


def setup_logging(
    path: Path | None, default: Path | None = None, stderr: bool = False
) -> None:
    """Send qwatch's log to a file (or stderr); nothing ever goes to stdout."""
    target = path or default
    handler: logging.Handler
    if target is not None:
        handler = logging.FileHandler(target)
    elif stderr:
        handler = logging.StreamHandler()
    else:
        logging.getLogger("qwatch").addHandler(logging.NullHandler())
        return
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("qwatch")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
