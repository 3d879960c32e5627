"""The shipped Celery workload stops when its time is up and says what it did."""

from __future__ import annotations

import re
import subprocess
import sys


def test_spawned_workload_stops_after_its_time() -> None:
    """--for 2 ends by itself (a swallowed cancel once kept it running) and
    reports results written and jobs pushed and popped."""
    done = subprocess.run(
        [sys.executable, "-m", "qwatch.celery_workload", "--spawn", "--for", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.match(r"redis://127\.0\.0\.1:\d+/0$", done.stdout.strip())
    counts = re.search(r"(\d+) results, (\d+) with TTL, (\d+) jobs pushed", done.stderr)
    assert counts is not None, done.stderr
    assert int(counts[1]) >= 50 and int(counts[3]) >= 20
