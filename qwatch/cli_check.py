"""``qwatch check``: headless, for cron and monitoring systems."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from qwatch.check import format_text, report, watch_for
from qwatch.cli_common import duration, load_run, setup_logging, target_options
from qwatch.targets import build_watch


@click.command()
@target_options
@click.option(
    "--for",
    "seconds",
    callback=duration,
    default="60s",
    show_default=True,
    help="How long to watch before judging.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(
    targets: tuple[str, ...],
    config_path: Path | None,
    log_file: Path | None,
    seconds: float,
    as_json: bool,
    **flags: object,
) -> None:
    """Watch TARGETs for a while, print verdicts, exit 0 OK, 1 BACKLOG or
    STALL, 2 LEAK, 3 a target could not be read (a LEAK outranks it).

    TARGETs are URLs or names from qwatch.toml. Settings: flags, then QWATCH_*
    environment variables, then qwatch.toml (--config, ./qwatch.toml, then
    the user config folder)."""
    setup_logging(log_file)
    run = load_run(targets, config_path, **flags)
    watches = [build_watch(spec) for spec in run.specs]
    asyncio.run(watch_for(watches, seconds))
    result = report(watches, seconds)
    click.echo(json.dumps(result, indent=2) if as_json else format_text(result))
    raise click.exceptions.Exit(result["exit_code"])
