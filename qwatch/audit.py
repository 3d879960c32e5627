"""The local audit log: one JSON line per operator action, append-only.

It lives at ``$QWATCH_AUDIT_LOG``, else ``$XDG_STATE_HOME/qwatch/audit.jsonl``,
else ``~/.local/state/qwatch/audit.jsonl``. Targets are written with their
password masked. Each entry is also logged at INFO.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qwatch.adapters.base import ActionError, mask_url

log = logging.getLogger(__name__)

ENV = "QWATCH_AUDIT_LOG"


def audit_path() -> Path:
    """Where the audit log is, by the order in the module docstring."""
    given = os.environ.get(ENV)
    if given:
        return Path(given).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(state).expanduser() / "qwatch" / "audit.jsonl"


def ensure_writable() -> Path:
    """Check, before an action starts, that its audit entry can be written.

    Raises:
        ActionError: the log cannot be created or appended to; the action
            must not go ahead unrecorded.
    """
    path = audit_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    except OSError as exc:
        raise ActionError(
            f"cannot write the audit log {path}: {exc.strerror}"
        ) from None
    return path


def record(
    action: str,
    target: str,
    queue: str,
    count: int,
    *,
    outcome: str = "done",
    file: Path | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Append one entry and log it at INFO; returns the entry.

    Args:
        action: drain, purge, expire, peek or restore.
        target: the target URL; its password is masked here.
        queue: the queue name or family pattern.
        count: items (or names, for a purge) the action handled.
        outcome: done, cancelled, refused or failed.
        file: the drain file read or written, if any.
    """
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "action": action,
        "target": mask_url(target),
        "queue": queue,
        "count": count,
        "outcome": outcome,
    }
    if file is not None:
        entry["file"] = str(Path(file).resolve())
    entry.update(extra)
    log.info(
        "%s of %s on %s %s: %d%s",
        action, queue, entry["target"], outcome, count,
        f", file {entry['file']}" if file is not None else "",
    )  # fmt: skip
    _append(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
    return entry


def _append(line: str) -> None:
    path = ensure_writable()
    # One write on an O_APPEND descriptor: concurrent qwatch processes never
    # interleave inside each other's lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
