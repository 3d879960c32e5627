"""``qwatch [TARGET...]``: the dashboard."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import click

from qwatch.alerts import Alerts, Silence
from qwatch.cli_common import load_run, setup_logging, target_options
from qwatch.targets import TargetSpec, build_watch


def default_log_path() -> Path:
    """``$XDG_STATE_HOME/qwatch/qwatch.log``: the dashboard owns the terminal,
    so its log must go somewhere that is not the screen."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    folder = Path(base) / "qwatch"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "qwatch.log"


def open_dashboard(specs: list[TargetSpec], silences: Iterable[Silence] = ()) -> None:
    """Run the dashboard on ``specs`` until the operator quits."""
    from qwatch.app.main import QwatchApp
    from qwatch.app.status import TargetFlags

    flags = {
        spec.label: TargetFlags(read_only=spec.read_only, production=spec.production)
        for spec in specs
    }
    alerts = Alerts(silences)
    app = QwatchApp([build_watch(spec) for spec in specs], alerts=alerts, flags=flags)
    app.run()


@click.command()
@target_options
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
    """Open the dashboard on TARGETs (URLs or names from qwatch.toml).

    Settings: flags, then QWATCH_* environment variables, then qwatch.toml
    (--config, ./qwatch.toml, then the user config folder). The log goes to
    --log-file, else $XDG_STATE_HOME/qwatch/qwatch.log."""
    setup_logging(log_file, default_log_path())
    run = load_run(targets, config_path, **flags)
    open_dashboard(run.specs, run.settings.config.silences)
