"""``qwatch demo``: the Workling leak replayed on an in-process server, watched.

Nothing to install and no config file: a Starling-speaking server starts on a
free local port, the Workling workload runs against it, and the dashboard (or,
with ``--check``, the headless check) watches it like any other target.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click

from qwatch.check import format_text, report, watch_for
from qwatch.cli_common import Run, duration, make_alerts, setup_logging
from qwatch.cli_watch import default_log_path
from qwatch.config import Config
from qwatch.layers import read_env, resolve, settings_from
from qwatch.starling.workload import Workling, WorklingPlan, demo_target
from qwatch.targets import build_watch

if TYPE_CHECKING:
    from qwatch.app.main import QwatchApp

DEMO_NAME = "demo"
"""The target's name on screen and in reports."""

CHECK_SECONDS = 90.0
"""Default ``--for``: the default 60 s window needs 45 s of a family's history
before it calls LEAK, and the family forms a poll or two in."""

# At 20 jobs/s the server reaches Starling's 4,086-queue ceiling about 200 s
# in, as the real one did: the family stops growing but stays LEAK (nothing
# was ever read) and the status line says the server is full.

START_TIMEOUT = 30.0
"""Seconds the background server may take to start, or to stop."""


def demo_run(url: str, **flags: Any) -> Run:
    """The run for the demo server: built-in defaults, then ``QWATCH_*``, then
    ``flags`` (None where not given).

    qwatch.toml is not read: its targets are not the demo's, and a missing or
    broken file must not spoil a first look.

    Raises:
        ConfigError: a ``QWATCH_*`` variable or a flag is wrong (one line).
    """
    config = Config()
    env = read_env(os.environ)
    spec = resolve((url,), config, env, flags)[0]
    named = dataclasses.replace(spec, name=DEMO_NAME)
    return Run(settings_from(config, env, flags), [named])


def demo_app(run: Run) -> QwatchApp:
    """The dashboard on the demo's target; silences stay in memory, since
    saving them would write the demo into the user's config file."""
    from qwatch.app.main import QwatchApp
    from qwatch.app.status import TargetFlags

    flags = {spec.label: TargetFlags(read_only=spec.read_only) for spec in run.specs}
    watches = [build_watch(spec) for spec in run.specs]
    return QwatchApp(watches, alerts=make_alerts(run), flags=flags)


class BackgroundDemo:
    """:func:`demo_target` on a thread and event loop of its own.

    The dashboard's loop belongs to Textual and is not running yet when the
    app is built, while the app needs the server's URL to be built. Use as a
    context manager: entering starts server and workload, leaving stops both.

    Args:
        plan: the workload's rates and timings; the demo's defaults when None.
    """

    def __init__(self, plan: WorklingPlan | None = None) -> None:
        self.plan = plan
        self.url: str | None = None
        self.workload: Workling | None = None
        self.error: BaseException | None = None
        """Why the server or the workload could not run, if it could not."""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        # Daemon: a stop that times out must not keep the process alive.
        self._thread = threading.Thread(
            target=self._main, name="qwatch-demo", daemon=True
        )

    @property
    def running(self) -> bool:
        """True while the thread, and so the server, is alive."""
        return self._thread.is_alive()

    def __enter__(self) -> BackgroundDemo:
        self._thread.start()
        self._ready.wait(START_TIMEOUT)
        if self.url is None:
            self.stop()
            if isinstance(self.error, OSError):
                raise self.error
            raise OSError(f"the demo server did not start: {self.error or 'timeout'}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the workload and the server and wait for the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(START_TIMEOUT)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:
            # Kept for the caller: a thread's traceback would land on the TUI.
            self.error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with demo_target(self.plan) as (url, workload):
            self.url, self.workload = url, workload
            self._ready.set()
            await self._stop.wait()


async def check_demo(
    seconds: float, notice: Callable[[str], None], **flags: Any
) -> dict[str, Any]:
    """Watch the demo for ``seconds``; the report ``qwatch check`` would give.

    ``notice`` is called with the server's URL once it listens.
    """
    async with demo_target() as (url, _workload):
        run = demo_run(url, **flags)
        notice(url)
        watches = [build_watch(spec) for spec in run.specs]
        await watch_for(watches, seconds)
        return report(watches, seconds)


def _check(seconds: float | None, as_json: bool, flags: dict[str, Any]) -> None:
    seconds = seconds or CHECK_SECONDS

    def notice(url: str) -> None:
        click.echo(
            f"qwatch demo: Workling workload on {url}; judging after {seconds:g} s",
            err=True,
        )

    result = asyncio.run(check_demo(seconds, notice, **flags))
    click.echo(json.dumps(result, indent=2) if as_json else format_text(result))
    raise click.exceptions.Exit(result["exit_code"])


def _dashboard(flags: dict[str, Any]) -> None:
    with BackgroundDemo() as demo:
        assert demo.url is not None
        demo_app(demo_run(demo.url, **flags)).run()


@click.command(
    help="Start a Starling-speaking server on a free local port, replay the "
    "Workling workload on it (jobs at 20/s, each leaving a return-key queue "
    "nobody reads; a second queue whose reader pauses a minute in) and open "
    "the dashboard on it: the report_workers:generate:{hex} family turns LEAK "
    "within a minute. With --check, watch headless and exit as `qwatch check` "
    "does: 0 OK, 1 BACKLOG or STALL, 2 LEAK, 3 unreadable.\n\n"
    "Needs no server and reads no qwatch.toml. Settings: flags, then QWATCH_* "
    "environment variables, then built-in defaults. The dashboard's log goes "
    "to --log-file, else $XDG_STATE_HOME/qwatch/qwatch.log."
)
@click.option("--check", "headless", is_flag=True, help="Run headless and report.")
@click.option(
    "--for",
    "seconds",
    callback=duration,
    default=None,
    help=f"With --check: how long to watch (default {CHECK_SECONDS:g}s).",
)
@click.option("--json", "as_json", is_flag=True, help="With --check: print JSON.")
@click.option(
    "--interval",
    callback=duration,
    default=None,
    help="Time between polls, e.g. 5s (default 5s; at least 1s).",
)
@click.option(
    "--window",
    callback=duration,
    default=None,
    help="History a growth verdict looks back over (default 60s).",
)
@click.option(
    "--stall-after",
    callback=duration,
    default=None,
    help="Time without consumption before STALL (default 30s).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the log here (the dashboard never prints).",
)
def demo(
    headless: bool,
    seconds: float | None,
    as_json: bool,
    log_file: Path | None,
    **flags: Any,
) -> None:
    if not headless and (seconds is not None or as_json):
        raise click.UsageError("--for and --json need --check")
    if headless:
        setup_logging(log_file)
        _check(seconds, as_json, flags)
    else:
        setup_logging(log_file, default_log_path())
        _dashboard(flags)
