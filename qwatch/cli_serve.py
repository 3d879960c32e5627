"""``qwatch serve``: headless, exposes ``/metrics`` for Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from pathlib import Path

import click
from prometheus_client import start_http_server

from qwatch.cli_common import (
    SETTINGS_ORDER,
    alert_on_polls,
    hook_options,
    load_run,
    make_alerts,
    setup_logging,
    start_hooks,
    target_options,
)
from qwatch.exporter import Exporter
from qwatch.poller import Watch
from qwatch.targets import build_watch


@click.command(
    help="Watch TARGETs until stopped and serve their verdicts, depths and "
    "rates at http://HOST:PORT/metrics for Prometheus. Hooks fire as in the "
    "dashboard. Stops cleanly on SIGTERM or Ctrl-C.\n\n"
    "TARGETs are URLs or names from qwatch.toml; with none, the file's "
    "targets. " + SETTINGS_ORDER
)
@target_options
@hook_options
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="Where to serve /metrics (default 127.0.0.1:9721; QWATCH_LISTEN).",
)
@click.option(
    "--max-queues",
    type=click.IntRange(min=1),
    default=None,
    help="Most plain queues exported per target, worst first (default 200); "
    "a family is always one series.",
)
def serve(
    targets: tuple[str, ...],
    config_path: Path | None,
    log_file: Path | None,
    **flags: object,
) -> None:
    setup_logging(log_file, stderr=True)
    run = load_run(targets, config_path, **flags)
    settings = run.settings
    watches = [build_watch(spec) for spec in run.specs]
    alerts = make_alerts(run)
    hooks = start_hooks(settings)
    exporter = Exporter(settings.max_queues, hooks)
    for watch in watches:
        watch.listeners.append(exporter.update)
    # Alerts are judged even with no hook: each new LEAK is logged (stderr or
    # --log-file), so a headless run says what it found.
    alert_on_polls(watches, alerts)
    if hooks is not None:
        alerts.listeners.append(hooks)
    host, port = _split(settings.listen)
    try:
        server, _ = start_http_server(port, host, registry=exporter.registry())
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.listen}: {exc.strerror or exc}"
        ) from None
    names = ", ".join(w.status.name for w in watches)
    click.echo(
        f"qwatch: serving http://{settings.listen}/metrics for {names}", err=True
    )
    try:
        asyncio.run(_until_stopped(watches))
    finally:
        server.shutdown()
        if hooks is not None:
            hooks.close(settings.hook_timeout)


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


async def _until_stopped(watches: Sequence[Watch]) -> None:
    """Poll every target until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(w.run(stop) for w in watches), return_exceptions=True)
