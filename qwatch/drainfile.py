"""Drain files: JSON Lines holding the items a drain took off a server.

The first line is a header naming the source (password masked), the queue, the
time and the qwatch version. Every further line is one item: its body as text
when it is valid UTF-8, else base64 with ``"encoding": "base64"``, and ``meta``
with what the server knew of it. Each line is written, flushed and fsynced
before the adapter may remove the item from the server, so a drain killed at
any moment leaves at most one torn last line, which readers skip (that item was
never removed from the server).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from qwatch import __version__
from qwatch.adapters.base import ActionError, Item, mask_url

log = logging.getLogger(__name__)

# Tags for meta values JSON cannot hold; named so no adapter's own tagging
# (RabbitMQ's "$bytes", "$time") is mistaken for ours.
BYTES_TAG = "$qwatch.bytes"
TIME_TAG = "$qwatch.time"

FORMAT = "qwatch-drain/1"
"""The header's ``format`` value; readers refuse anything else."""


class DrainWriter:
    """An :class:`~qwatch.adapters.base.ItemSink` writing a new drain file.

    Args:
        path: the file to create; an existing file is never overwritten.
        source: the target URL (masked before it is written).
        queue: the queue being drained.
        sync: fsync each item; only benchmarks turn this off.
        offload: fsync in a worker thread, so a dashboard's event loop never
            waits on the disk; a CLI, whose loop has nothing else to do,
            saves the thread hop (about a quarter of an fsync) by not.
    """

    def __init__(
        self,
        path: Path,
        source: str,
        queue: str,
        sync: bool = True,
        *,
        offload: bool = True,
    ) -> None:
        self.path = path
        self.count = 0
        self.sync = sync
        self.offload = offload
        try:
            self._file: IO[bytes] = open(path, "xb")  # noqa: SIM115 - kept open
        except FileExistsError:
            raise ActionError(f"{path} already exists; choose another file") from None
        except OSError as exc:
            raise ActionError(f"cannot create {path}: {exc.strerror}") from None
        self._put(_line(header(source, queue)))
        if sync:
            _sync_folder(path.parent)

    async def write(self, item: Item) -> None:
        """Append one item; returns only when it is on disk.

        Raises:
            ActionError: the disk refused it (full, gone); the item is not
                saved and the drain must leave it on the server.
        """
        line = _line(encode_item(item))
        try:
            if self.offload:
                await asyncio.to_thread(self._put, line)
            else:
                self._put(line)
        except OSError as exc:
            raise ActionError(
                f"cannot write {self.path}: {exc.strerror or exc}; "
                f"{self.count} items saved, the rest stay on the server"
            ) from None
        self.count += 1

    def _put(self, line: bytes) -> None:
        self._file.write(line)
        self._file.flush()
        if self.sync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if not self._file.closed:
            self._file.close()

    def discard(self) -> None:
        """Close and remove the file; only for a drain that saved no item."""
        self.close()
        if self.count == 0:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> DrainWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sync_folder(folder: Path) -> None:
    """fsync the folder, so the new file's name survives a power cut too."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Limitation: some filesystems cannot open a folder to sync it.
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_new(path: Path) -> None:
    """Fail early, before any server is touched, when ``path`` is taken.

    Raises:
        ActionError: the file exists or its folder does not.
    """
    if path.exists():
        raise ActionError(f"{path} already exists; choose another file")
    if not path.parent.is_dir():
        raise ActionError(f"cannot create {path}: no folder {path.parent}")


def header(source: str, queue: str) -> dict[str, Any]:
    """The first line of a drain file."""
    return {
        "format": FORMAT,
        "source": mask_url(source),
        "queue": queue,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "unix_time": time.time(),
        "qwatch": __version__,
    }


def encode_item(item: Item) -> dict[str, Any]:
    """One item as a JSON-ready dict; the body survives byte for byte."""
    try:
        out: dict[str, Any] = {"body": item.body.decode("utf-8")}
    except UnicodeDecodeError:
        out = {"body": base64.b64encode(item.body).decode(), "encoding": "base64"}
    out["meta"] = _plain(item.meta)
    return out


def decode_item(data: dict[str, Any]) -> Item:
    """The item a line of a drain file holds.

    Raises:
        ValueError: the line is not a drain item.
    """
    body = data["body"]
    if not isinstance(body, str):
        raise ValueError("body is not a string")
    if data.get("encoding") == "base64":
        raw = base64.b64decode(body, validate=True)
    elif "encoding" in data:
        raise ValueError(f"unknown encoding {data['encoding']!r}")
    else:
        raw = body.encode("utf-8")
    meta = _typed(data.get("meta") or {})
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    return Item(raw, meta)


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _plain(value: Any) -> Any:
    """Meta made JSON-safe, tagging bytes and times so they read back typed."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {BYTES_TAG: base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):
        return {TIME_TAG: value.isoformat()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # Limitation: other types (Decimal in AMQP headers) come back as strings.
    return str(value)


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        tag, raw = next(iter(value.items()), (None, None))
        if len(value) == 1 and isinstance(raw, str):
            if tag == BYTES_TAG:
                return base64.b64decode(raw)
            if tag == TIME_TAG:
                return datetime.fromisoformat(raw)
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return value


@dataclass(slots=True)
class DrainSummary:
    """What a drain file holds, found by reading it all once."""

    path: Path
    header: dict[str, Any]
    items: int
    torn: bool
    """The last line was cut short by a kill and will be skipped."""


def summarize(path: Path) -> DrainSummary:
    """Check a whole drain file before anything is restored from it.

    Raises:
        ActionError: the file is missing, not a drain file, or damaged before
            its last line.
    """
    count, torn = 0, False
    for entry in _entries(path):
        if entry is None:
            torn = True
        else:
            count += 1
    return DrainSummary(path, read_header(path), count, torn)


def read_header(path: Path) -> dict[str, Any]:
    """The header line of a drain file.

    Raises:
        ActionError: the file is missing or is not a drain file.
    """
    with _open(path) as file:
        first = file.readline()
    try:
        data = json.loads(first)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ActionError(f"{path} is not a qwatch drain file")
    return data


def read_items(path: Path) -> Iterator[Item]:
    """The items of a drain file in order, skipping a torn last line."""
    read_header(path)
    for entry in _entries(path):
        if entry is not None:
            yield entry


async def aread_items(path: Path) -> AsyncIterator[Item]:
    """:func:`read_items` for :meth:`Adapter.restore`, which takes an async
    iterator."""
    for item in read_items(path):
        yield item


def _entries(path: Path) -> Iterator[Item | None]:
    """Items by line; None for a torn last line (no newline, or unreadable)."""
    with _open(path) as file:
        file.readline()
        number = 1
        for raw in file:
            number += 1
            try:
                yield decode_item(json.loads(raw))
                continue
            except (ValueError, KeyError, TypeError) as exc:
                problem = exc
            if raw.endswith(b"\n") or file.read(1):
                raise ActionError(f"{path}: line {number} is damaged ({problem})")
            log.warning("%s: skipping torn last line %d", path, number)
            yield None


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror}") from None
