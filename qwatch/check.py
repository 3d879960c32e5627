"""``qwatch check``: watch for a while, report verdicts, exit like a monitoring
plugin (0 OK, 1 BACKLOG or STALL, 2 LEAK, 3 a target could not be read).

A LEAK outranks an unreadable target: one dead server must not hide a leak on
another.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from qwatch import __version__
from qwatch.poller import Watch
from qwatch.tracker import Row
from qwatch.verdicts import Verdict

UNREADABLE = 3


async def watch_for(watches: Sequence[Watch], seconds: float) -> None:
    """Run every watch's poll loop for ``seconds``, then stop them all."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in watches]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def row_json(row: Row) -> dict[str, Any]:
    """One queue or family as the JSON report shows it."""
    out: dict[str, Any] = {
        "target": row.target,
        "name": row.name,
        "kind": row.kind,
        "verdict": row.verdict.value,
        "reason": row.reason,
        "since": round(row.since, 3),
        "change_per_min": _round(row.change_per_min),
        "rate_in": _round(row.rate_in),
        "rate_out": _round(row.rate_out),
    }
    if row.is_family:
        out["members"] = row.members
        out["items"] = row.depth
    else:
        out["depth"] = row.depth
        out["consumers"] = row.consumers
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report(watches: Sequence[Watch], seconds: float) -> dict[str, Any]:
    """The whole result of a check run, ready for ``json.dumps``."""
    targets: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    families: list[dict[str, Any]] = []
    for watch in watches:
        targets.append(_target_json(watch))
        for row in watch.tracker.rows():
            (families if row.is_family else queues).append(row_json(row))
    result = {
        "qwatch": __version__,
        "checked_at": round(time.time(), 3),
        "duration": seconds,
        "targets": targets,
        "queues": queues,
        "families": families,
    }
    result["exit_code"] = exit_code(result)
    return result


def _target_json(watch: Watch) -> dict[str, Any]:
    status = watch.status
    snap = watch.tracker.last
    readable = status.error is None and status.polls > 0
    return {
        "target": status.name,
        "url": status.label,
        "status": "ok" if readable else "error",
        "error": None if readable else (status.error or "never polled"),
        "polls": status.polls,
        "poll_time": _round(status.poll_time),
        "server": snap.server if snap else {},
        "notes": snap.notes if snap else [],
    }


def exit_code(result: dict[str, Any]) -> int:
    """0 all OK, 1 BACKLOG/STALL, 2 LEAK, 3 unreadable (a LEAK outranks it)."""
    verdicts = {r["verdict"] for r in result["queues"] + result["families"]}
    if Verdict.LEAK.value in verdicts:
        return 2
    if any(t["status"] != "ok" for t in result["targets"]):
        return UNREADABLE
    return max((Verdict(v).exit_code for v in verdicts), default=0)


def format_text(result: dict[str, Any]) -> str:
    """A plain-text report: targets, then every row that is not OK."""
    lines = []
    for target in result["targets"]:
        state = target["status"] if target["status"] == "ok" else target["error"]
        lines.append(f"{target['target']}: {state} ({target['polls']} polls)")
    rows = result["families"] + result["queues"]
    bad = [r for r in rows if r["verdict"] != "OK"]
    for row in sorted(bad, key=lambda r: Verdict(r["verdict"]).rank):
        size = (
            f"{row['members']:,} members"
            if "members" in row
            else f"{row['depth']:,} items"
        )
        lines.append(
            f"{row['verdict']:<8} {row['target']}  {row['name']}  "
            f"[{size}]  {row['reason']}"
        )
    ok = len(rows) - len(bad)
    lines.append(f"{len(bad)} not OK, {ok} OK; exit {result['exit_code']}")
    return "\n".join(lines)
