"""One status line per target: connected, last poll, errors, server facts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import Static

from qwatch.poller import TargetStatus

FACT_LIMIT = 5
"""Server facts shown on the status line; the detail pane lists more."""


@dataclass(frozen=True, slots=True)
class TargetFlags:
    """How a target was configured: badges on screen, and whether it acts."""

    read_only: bool = False
    """No drain or purge from the dashboard."""
    production: bool = False
    """Shown with a PROD badge so nobody mistakes it for staging."""


class TargetLine(Static):
    """The status of one target, refreshed after each poll and every second."""

    def __init__(self, name: str, flags: TargetFlags, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = name
        self.flags = flags
        self.status: TargetStatus | None = None
        self.server: dict[str, Any] = {}

    def on_mount(self) -> None:
        """Show "connecting" until the first poll ends."""
        self.redraw()

    def show(self, status: TargetStatus, server: dict[str, Any]) -> None:
        """Take a newer status and server facts."""
        self.status = status
        self.server = server
        self.redraw()

    def redraw(self) -> None:
        """Re-render; called each second too, so countdowns move."""
        self.update(describe(self.target, self.flags, self.status, self.server))


def describe(
    name: str,
    flags: TargetFlags,
    status: TargetStatus | None,
    server: dict[str, Any],
    now: float | None = None,
) -> Text:
    """The status line's text."""
    now = time.time() if now is None else now
    text = Text(no_wrap=True, overflow="ellipsis")
    if flags.production:
        text.append(" PROD ", "bold white on red")
        text.append(" ")
    if flags.read_only:
        text.append(" read-only ", "bold black on yellow")
        text.append(" ")
    if status is None:
        text.append("○ ", "dim")
        text.append(name, "bold")
        text.append("  connecting…", "dim")
        return text
    if status.error is not None:
        _failing(text, status, now)
    else:
        _working(text, status, now)
    _facts(text, server)
    return text


def _working(text: Text, status: TargetStatus, now: float) -> None:
    text.append("● ", "green")
    text.append(status.name, "bold")
    if status.label != status.name:
        text.append(f" {status.label}", "dim")
    clock = _clock(status.last_poll)
    took = "-" if status.poll_time is None else f"{status.poll_time:.2f} s"
    text.append(f"  last poll {clock} took {took}")
    text.append(f"  every {status.interval:g} s", "dim")
    if status.next_poll is not None:
        text.append(f"  next in {max(0.0, status.next_poll - now):.0f} s", "dim")


def _failing(text: Text, status: TargetStatus, now: float) -> None:
    text.append("✖ ", "bold red")
    text.append(status.name, "bold")
    if status.label != status.name:
        text.append(f" {status.label}", "dim")
    text.append(f"  {status.error}", "red")
    if status.next_poll is not None:
        wait = max(0.0, status.next_poll - now)
        text.append(f"  retry in {wait:.0f} s", "bold")
        text.append(f" ({status.failures} failed)", "dim")
    if status.last_poll is not None:
        text.append(f"  last good poll {_clock(status.last_poll)}", "dim")


def _facts(text: Text, server: dict[str, Any]) -> None:
    shown = [(k, v) for k, v in server.items() if isinstance(v, str | int | float)][
        :FACT_LIMIT
    ]
    for key, value in shown:
        text.append(f"  {key} ", "dim")
        text.append(_fmt(value))


def _fmt(value: str | int | float) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return value


def _clock(at: float | None) -> str:
    return "-" if at is None else time.strftime("%H:%M:%S", time.localtime(at))
