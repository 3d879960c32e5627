"""``qwatch [TARGET...]``: the dashboard."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from qwatch.cli_common import (
    SETTINGS_ORDER,
    Run,
    hook_options,
    load_run,
    make_alerts,
    setup_logging,
    start_hooks,
    state_dir,
    target_options,
)
from qwatch.config import ConfigError, user_config_path
from qwatch.hooks import HookFailure, Hooks
from qwatch.layers import Settings
from qwatch.targets import build_watch

if TYPE_CHECKING:
    from qwatch.app.main import QwatchApp, SilenceHook

log = logging.getLogger(__name__)


def default_log_path() -> Path:
    """``$XDG_STATE_HOME/qwatch/qwatch.log``: the dashboard owns the terminal,
    so its log must go somewhere that is not the screen."""
    return state_dir() / "qwatch.log"


def silence_file(settings: Settings) -> Path:
    """Where a silence set from the dashboard is saved: the config file the
    run read, else the user's own (a silence is one operator's choice)."""
    return settings.config.path or user_config_path()


def open_dashboard(run: Run) -> None:
    """Run the dashboard on the run's targets until the operator quits."""
    from qwatch.app.main import QwatchApp
    from qwatch.app.status import TargetFlags

    flags = {
        spec.label: TargetFlags(read_only=spec.read_only, production=spec.production)
        for spec in run.specs
    }
    settings = run.settings
    watches = [build_watch(spec) for spec in run.specs]
    app = QwatchApp(watches, alerts=make_alerts(run), flags=flags)
    app.on_silence = saving_silences(app, silence_file(settings))
    hooks = start_hooks(settings)
    if hooks is not None:
        wire_hooks(app, hooks)
    try:
        app.run()
    finally:
        if hooks is not None:
            hooks.close(settings.hook_timeout)


def wire_hooks(app: QwatchApp, hooks: Hooks) -> None:
    """Alerts the dashboard raises go to the hooks; failures come back as
    notifications (the hooks' threads are not the app's)."""
    app.alerts.listeners.append(hooks)

    def failed(failure: HookFailure) -> None:
        # RuntimeError: the app is not running (yet, or any more); the log has it.
        with contextlib.suppress(RuntimeError):
            app.call_from_thread(
                app.notify, failure.line, title="hook failed", severity="error"
            )

    hooks.failure_listeners.append(failed)


def saving_silences(app: QwatchApp, path: Path) -> SilenceHook:
    """An ``on_silence`` hook: silence in memory, then save it to ``path``."""
    from qwatch.config_write import save_silence

    def silence(target: str, pattern: str, seconds: float | None) -> None:
        entry = app.alerts.silence(target, pattern, seconds)
        try:
            save_silence(path, entry)
        except ConfigError as exc:
            log.error("%s", exc)
            app.notify(str(exc), title="silence not saved", severity="error")
        else:
            log.info("saved silence of %s on %s to %s", pattern, target, path)

    return silence


@click.command(
    help="Open the dashboard on TARGETs (URLs or names from qwatch.toml; with "
    "none, the file's targets). " + SETTINGS_ORDER + " The log goes to "
    "--log-file, else $XDG_STATE_HOME/qwatch/qwatch.log. Silences set with "
    "m/M are saved to the config file."
)
@target_options
@hook_options
@click.option(
    "--read-only", is_flag=True, default=None,
    help="Hide every action: watch only (also QWATCH_READ_ONLY=1).",
)  # fmt: skip
def watch(
    targets: tuple[str, ...],
    config_path: Path | None,
    log_file: Path | None,
    **flags: object,
) -> None:
    setup_logging(log_file, default_log_path())
    run = load_run(targets, config_path, **flags)
    open_dashboard(run)
