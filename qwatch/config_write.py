"""Saving a silence into qwatch.toml without disturbing the rest of the file.

tomlkit keeps the operator's comments, order and layout; only one
``[[silence]]`` table is added (and silences that have run out are dropped).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Table

from qwatch.alerts import Silence
from qwatch.config import ConfigError


def save_silence(path: Path, silence: Silence) -> None:
    """Append ``silence`` to the config at ``path`` (created when missing).

    Raises:
        ConfigError: the file cannot be read, parsed or written (one line).
    """
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        doc = tomlkit.parse(text)
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(f"{path}: cannot add the silence: {exc}") from None
    entries = doc.get("silence")
    if entries is None:
        entries = tomlkit.aot()
        doc.append("silence", entries)
    if not isinstance(entries, AoT | Array):
        raise ConfigError(f"{path}: silence: expected a list, cannot add to it")
    _drop_expired(entries, time.time())
    entries.append(_entry(silence, isinstance(entries, AoT)))
    _write(path, tomlkit.dumps(doc))


def _entry(silence: Silence, table: bool) -> Table | dict[str, object]:
    item = tomlkit.table() if table else tomlkit.inline_table()
    item["pattern"] = silence.pattern
    if silence.target != "*":
        item["target"] = silence.target
    if silence.until is not None:
        # Whole seconds in UTC: what an operator reads and edits comfortably.
        moment = datetime.fromtimestamp(int(silence.until), UTC)
        item["until"] = moment
    return item


def _drop_expired(entries: AoT | Array, now: float) -> None:
    for index in reversed(range(len(entries))):
        until = entries[index].get("until") if hasattr(entries[index], "get") else None
        if isinstance(until, datetime) and until.timestamp() <= now:
            del entries[index]


def _write(path: Path, text: str) -> None:
    """Write beside and rename, so a crash never leaves half a config."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot save the silence: {exc.strerror}") from None
