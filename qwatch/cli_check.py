"""``qwatch check``: headless, for cron and monitoring systems."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from qwatch.alerts import Alerts
from qwatch.check import exit_code, format_text, report, watch_for
from qwatch.cli_common import (
    SETTINGS_ORDER,
    alert_on_polls,
    duration,
    hook_options,
    hook_wait,
    load_run,
    make_alerts,
    setup_logging,
    start_hooks,
    target_options,
)
from qwatch.hooks import HookStats
from qwatch.targets import TargetSpec, build_watch


@click.command(
    help="Watch TARGETs for a while, print verdicts, exit 0 OK, 1 BACKLOG or "
    "STALL, 2 LEAK, 3 a target could not be read (a LEAK outranks it). "
    "Silenced queues are reported but do not change the exit code.\n\n"
    "TARGETs are URLs or names from qwatch.toml; with none, the file's "
    "targets. " + SETTINGS_ORDER
)
@target_options
@hook_options
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
    setup_logging(log_file)
    run = load_run(targets, config_path, **flags)
    watches = [build_watch(spec) for spec in run.specs]
    alerts = make_alerts(run)
    hooks = start_hooks(run.settings)
    if hooks is not None:
        alerts.listeners.append(hooks)
        alert_on_polls(watches, alerts)
        hooks.failure_listeners.append(
            lambda failure: click.echo(f"qwatch: {failure.line}", err=True)
        )
    asyncio.run(watch_for(watches, seconds))
    result = report(watches, seconds)
    result["warnings"] = too_short(run.specs, seconds)
    mark_silenced(result, alerts)
    if hooks is not None:
        if not hooks.close(hook_wait(run.settings)):
            click.echo("qwatch: hooks still busy at exit; some alerts unsent", err=True)
        result["hooks"] = {name: _stats(s) for name, s in hooks.stats.items()}
    click.echo(json.dumps(result, indent=2) if as_json else _text(result))
    raise click.exceptions.Exit(result["exit_code"])


def too_short(specs: Sequence[TargetSpec], seconds: float) -> list[str]:
    """Say so when the run was too short for a LEAK to be called at all:
    an early all-clear at 3 a.m. must not look like a real one."""
    warnings = []
    for spec in specs:
        th = spec.thresholds
        need = th.window * th.min_span_share + spec.interval
        if seconds < need:
            warnings.append(
                f"{spec.label}: watched {seconds:g} s, but LEAK needs about "
                f"{need:g} s of history (window {th.window:g} s); try --for "
                f"{need * 2:.0f}s or a shorter --window"
            )
    return warnings


def mark_silenced(result: dict[str, Any], alerts: Alerts) -> None:
    """Flag rows a config silence covers and judge the exit code without them:
    a leak silenced for good must stop paging from cron."""
    rows = result["queues"] + result["families"]
    for row in rows:
        if alerts.silenced(row["target"], row["name"]):
            row["silenced"] = True
    loud = {
        **result,
        "queues": [r for r in result["queues"] if not r.get("silenced")],
        "families": [r for r in result["families"] if not r.get("silenced")],
    }
    result["exit_code"] = exit_code(loud)


def _text(result: dict[str, Any]) -> str:
    warnings = [f"warning: {w}" for w in result.get("warnings", [])]
    shown = {
        **result,
        "queues": [_muted(r) for r in result["queues"]],
        "families": [_muted(r) for r in result["families"]],
    }
    return "\n".join([*warnings, format_text(shown)])


def _muted(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("silenced"):
        return {**row, "reason": row["reason"] + " (silenced)"}
    return row


def _stats(stats: HookStats) -> dict[str, Any]:
    return {
        "delivered": stats.delivered,
        "failed": stats.failed,
        "dropped": dict(stats.dropped),
        "last_error": stats.last_error,
    }
