"""Ctrl-C on ``qwatch check`` is "interrupted" (130), never a verdict's code."""

from __future__ import annotations

import json
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


def test_a_check_too_short_for_a_leak_says_so(
    redis_server_url: str, tmp_path: Path
) -> None:
    """--for 2s with a 60 s window cannot call LEAK: the all-clear carries a
    warning, in the text and in the JSON."""
    args = [*CLI, "check", "--for", "2s", redis_server_url]
    env = cli_env(tmp_path / "audit.log")
    text = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith("warning: ") and "LEAK needs about 50 s" in first
    done = subprocess.run(
        [*args[:-2], "3s", "--json", "--window", "2s", "--interval", "1s", args[-1]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert json.loads(done.stdout)["warnings"] == []
