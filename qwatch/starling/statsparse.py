"""Reading a memcache-protocol queue server's ``stats`` reply, names intact.

Queue names may hold spaces, colons and underscores, and names ending in
``_total`` or ``_expired`` make duplicate keys, so the reply is never read as
key -> value. Starling lists five lines per queue; they are read in blocks of
five, each block's name checked. Other servers (Kestrel) list more fields per
queue; they are read line by line, a repeated field starting a new queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STARLING_FIELDS = ("items", "total_items", "logsize", "expired_items", "age")
KNOWN_FIELDS = frozenset(
    (*STARLING_FIELDS, "bytes", "mem_items", "mem_bytes", "discarded", "waiters",
     "open_transactions", "total_flushes", "create_time", "journal_size",
     "children", "canceled_items", "expired_in_flight")
)  # fmt: skip
"""Per-queue fields of Starling and Kestrel; other lines are kept as unknown."""
# One Starling block; the back-references make each block check its own name.
_BLOCK = re.compile(
    r"STAT queue_(.+)_items (\d+)\r\nSTAT queue_\1_total_items (\d+)\r\n"
    r"STAT queue_\1_logsize (\d+)\r\nSTAT queue_\1_expired_items (\d+)\r\n"
    r"STAT queue_\1_age (\d+)\r\n"
)


@dataclass(slots=True)
class QueueStats:
    """One queue's lines from a stats reply."""

    name: str
    """The name, decoded as Latin-1 so it turns back into the same bytes."""
    fields: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ServerStats:
    """A parsed stats reply."""

    globals: dict[str, str] = field(default_factory=dict)
    queues: list[QueueStats] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    """Lines that fit no known layout; shown, never fatal."""


def parse_stats(raw: bytes) -> ServerStats:
    """Parse a raw ``stats`` reply (``END`` line optional)."""
    text = raw.decode("latin-1")
    if text.endswith("END\r\n"):
        text = text[:-5]
    cut = 0 if text.startswith("STAT queue_") else text.find("\r\nSTAT queue_") + 2
    if cut == 1:  # no queue lines at all
        cut = len(text)
    out = ServerStats()
    for line in text[:cut].split("\r\n"):
        key, _, value = line[5:].rpartition(" ")
        if line.startswith("STAT ") and key:
            out.globals.setdefault(key, value)
        elif line:
            out.unknown.append(line)
    rest = text[cut:]
    if rest and not rest.endswith("\r\n"):
        rest += "\r\n"  # a reply cut short still parses as far as it goes
    if not _starling_blocks(rest, out):
        _by_field([line for line in rest.split("\r\n") if line], out)
    return out


def _starling_blocks(text: str, out: ServerStats) -> bool:
    """Blocks of five with matching names; False (nothing added) otherwise."""
    queues: list[QueueStats] = []
    pos, end = 0, len(text)
    match = _BLOCK.match
    while pos < end:
        found = match(text, pos)
        if found is None:
            return False
        name, *values = found.groups()
        fields = dict(zip(STARLING_FIELDS, map(int, values), strict=True))
        queues.append(QueueStats(name, fields))
        pos = found.end()
    out.queues.extend(queues)
    return True


def _by_field(lines: list[str], out: ServerStats) -> None:
    """Line by line: a queue starts at an ``_items`` line whose field the
    current queue already has (or that is not the current queue's)."""
    current: QueueStats | None = None
    for line in lines:
        key, _, value = line[5:].rpartition(" ")
        number = _int(value)
        if not line.startswith("STAT queue_") or number is None:
            out.unknown.append(line)
            continue
        rest = key[6:]
        if current is not None and rest.startswith(current.name + "_"):
            suffix = rest[len(current.name) + 1 :]
            if suffix in KNOWN_FIELDS and suffix not in current.fields:
                current.fields[suffix] = number
                continue
        if rest.endswith("_items") and len(rest) > 6:
            current = QueueStats(rest[:-6], {"items": number})
            out.queues.append(current)
        else:
            # Kestrel's server-wide queue_creates, queue_deletes, ...
            out.globals.setdefault(key, value)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return None
