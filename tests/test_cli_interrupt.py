"""Ctrl-C on ``qwatch check`` is "interrupted" (130), never a verdict's code."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from test_actions_helpers import CLI, cli_env


def test_ctrl_c_during_check_exits_130(tmp_path: Path) -> None:
    """A server that accepts and never answers holds the poll; SIGINT then
    ends the run with one line and 130, not 1 (WARNING) or a traceback."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(30)
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [*CLI, "check", "--for", "60s", f"redis://127.0.0.1:{port}/0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(tmp_path / "audit.log"),
        )
        conn, _ = server.accept()  # qwatch is polling: the condition we wait for
        with conn:
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["qwatch: interrupted"]
    assert "Traceback" not in err
