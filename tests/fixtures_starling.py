"""Starling fixtures: our Starling-speaking server on a free port.

``starling`` runs it in-process on a background thread (fast, restartable,
inspectable); ``starling_process`` runs ``python -m qwatch.starling`` as a real
process, so a restart there changes the pid like a real one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qwatch.starling import ServerThread, StarlingServer


class ShiftClock:
    """Wall-clock time plus an offset a test may move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def starling_factory(tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    """Starts servers with chosen settings; each gets its own journal folder."""
    started: list[ServerThread] = []

    def make(**settings: Any) -> ServerThread:
        folder = tmp_path / f"journal{len(started)}"
        folder.mkdir()
        settings.setdefault("journal_dir", str(folder))
        thread = ServerThread(StarlingServer("127.0.0.1", 0, **settings)).start()
        started.append(thread)
        return thread

    yield make
    for thread in started:
        thread.stop()


@pytest.fixture
def starling(starling_factory: Callable[..., ServerThread]) -> ServerThread:
    """One in-process server with default settings."""
    return starling_factory()


class StarlingProcess:
    """``python -m qwatch.starling`` on a journal folder, restartable."""

    def __init__(self, journal: Path, *extra: str) -> None:
        self.journal = journal
        self.extra = extra
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Launch and wait for the line that gives the port."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qwatch.starling", "--port", str(self.port),
             "--journal", str(self.journal), *self.extra],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, f"server did not start: {line!r}"
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        """SIGTERM, as the recordings' launcher did."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def restart(self) -> None:
        """Stop, then start on the same port and journal."""
        self.stop()
        self.start()


@pytest.fixture
def starling_process(tmp_path: Path) -> Iterator[StarlingProcess]:
    """A server in a child process with its own journal folder."""
    folder = tmp_path / "journal"
    folder.mkdir()
    server = StarlingProcess(folder)
    server.start()
    yield server
    server.stop()
    assert os.path.isdir(folder)
