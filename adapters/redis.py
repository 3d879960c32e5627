"""Redis: every list, sorted set, set, hash, stream and plain key is a queue.

Keys are found with SCAN in bounded steps spread over polls, never KEYS, so a
server with 100,000 keys is never blocked for long; the first snapshots say
``complete=False`` until one full pass is done, and scanning carries on in
cycles to find new keys. Only read commands are sent while watching.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from qwatch.adapters.base import Adapter, TargetError
from qwatch.adapters.options import Option, Options, choice, text, whole
from qwatch.adapters.redis_actions import RedisActions
from qwatch.adapters.redis_keys import (
    KINDS,
    Columns,
    KeyState,
    Reading,
    bytes_cmd,
    read_bytes,
)
from qwatch.adapters.redis_wire import ReplyError, Wire, database, type_cmds

from qwatch.model import Kind, Sample, Snapshot

log = logging.getLogger(__name__)

SCAN_COUNT = 1000
"""COUNT hint per SCAN call: about a millisecond of server time each."""
SCAN_CALLS = 25
"""Most SCAN calls per poll, so discovery never holds a poll up for long."""
SERVER_FACTS = ("redis_version", "used_memory", "maxmemory", "maxmemory_policy")

OPTIONS: Options = {
    "scan_count": Option(whole(1), f"COUNT hint per SCAN call (default {SCAN_COUNT})."),
    "scan_calls": Option(whole(1), f"Most SCAN calls per poll (default {SCAN_CALLS})."),
}
"""Options from qwatch.toml. Never URL query keys: redis-py, which the actions
use, passes every query key to its connection and fails on unknown ones."""
URL_KEYS: Options = {
    "db": Option(whole(0), "The database, instead of the path's /N."),
    "ssl_ca_certs": Option(text, "CA file that signs the server's certificate."),
    "ssl_cert_reqs": Option(
        choice("none", "optional", "required"), "Check the server's certificate."
    ),
}
"""Query keys both the watching connection and redis-py read from the URL."""


class RedisAdapter(RedisActions, Adapter):
    """Watches one Redis database (the DB index in the URL, 0 by default).

    Options: ``scan_count`` and ``scan_calls`` bound discovery per poll.
    """

    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss")
    declared_options: ClassVar[Options | None] = OPTIONS
    url_keys: ClassVar[Options] = URL_KEYS

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.scan_count: int = self.options.get("scan_count", SCAN_COUNT)
        self.scan_calls: int = self.options.get("scan_calls", SCAN_CALLS)
        self.cols = Columns()
        self.keys: dict[bytes, KeyState] = {}
        self._wire: Wire | None = None
        self._new: list[bytes] = []
        self._refresh: list[KeyState] = []
        self._cursor = 0
        self._passes = 0
        self._scanned = 0
        self._run_id: Any = None

    @classmethod
    def check_target(cls, url: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options typed, and the database in the path checked."""
        checked = super().check_target(url, options)
        database(url)
        return checked

    async def connect(self) -> None:
        """Open the read connection and ask for CLIENT NO-TOUCH."""
        wire = Wire(self.url, self.label)
        await wire.connect()
        reply = await wire.call("CLIENT", "NO-TOUCH", "ON")
        # Redis < 7.2 has no NO-TOUCH: the idle bookkeeping in Reading
        # covers for it.
        self.cols.no_touch = not isinstance(reply, ReplyError)
        self._wire = wire

    async def close(self) -> None:
        """Close both connections; safe to call twice."""
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.close()
        await self.close_actions()

    async def poll(self) -> Snapshot:
        """One poll: server facts, a bounded SCAN step, then every known key."""
        if self._wire is None:
            await self.connect()
        assert self._wire is not None
        started, at = time.perf_counter(), time.time()
        try:
            server, restarted = await self._server(self._wire)
            await self._scan_step(self._wire)
            await self._learn_types(self._wire)
            await self._read_bytes(self._wire)
            queues = await self._read_all(self._wire, started)
        except BaseException:
            # A half-read pipeline leaves replies in flight: start afresh.
            await self.close()
            raise
        server.update(self._progress())
        return Snapshot(
            at=at,
            queues=queues,
            server=server,
            notes=list(self.cols.notes.values()),
            restarted=restarted,
            elapsed=time.perf_counter() - started,
            complete=self._passes > 0,
        )

    async def _server(self, wire: Wire) -> tuple[dict[str, Any], bool]:
        reply = await wire.call("INFO")
        if isinstance(reply, ReplyError):
            self.cols.notes["info"] = f"server facts not read: INFO refused ({reply})"
            return {"no_touch": self.cols.no_touch}, False
        facts = _info(reply)
        server: dict[str, Any] = {k: facts.get(k) for k in SERVER_FACTS}
        server["version"] = server.pop("redis_version")
        server["no_touch"] = self.cols.no_touch
        server["keys"] = _db_keys(facts.get(f"db{wire.db}"))
        run_id = facts.get("run_id")
        restarted = self._run_id is not None and run_id != self._run_id
        self._run_id = run_id
        if restarted:
            log.info("%s restarted: scanning again", self.label)
            self._cursor, self._passes, self._scanned = 0, 0, 0
        return server, restarted

    async def _scan_step(self, wire: Wire) -> None:
        """Up to ``scan_calls`` SCAN calls, carrying the cursor to the next poll."""
        known = self.keys
        for _ in range(self.scan_calls):
            reply = await wire.checked("SCAN", self._cursor, "COUNT", self.scan_count)
            self._cursor = int(reply[0])
            self._scanned += len(reply[1])
            self._new += [k for k in reply[1] if k not in known]
            if self._cursor == 0:
                self._passes += 1
                self._scanned = 0
                break

    async def _learn_types(self, wire: Wire) -> None:
        """TYPE, pipelined, for keys first seen (or changed type) since last poll."""
        fresh = list(dict.fromkeys(k for k in self._new if k not in self.keys))
        self._new = []
        if not fresh:
            return
        keys = iter(fresh)
        # Each batch of replies is learnt while the server answers the next.
        async for batch in wire.stream(type_cmds(fresh), len(fresh)):
            with _gc_paused():
                # The batch first: zip stops on it without taking a key.
                for name, key in zip(batch, keys, strict=False):
                    self._learn(key, name)

    def _learn(self, key: bytes, name: Any) -> None:
        if isinstance(name, ReplyError):
            raise TargetError(f"{self.label}: TYPE refused: {name}")
        if name != b"none":
            state = KeyState(key, KINDS.get(name, Kind.OTHER), self.cols)
            self.keys[key] = state
            if state.kind is Kind.STRING:
                self._refresh.append(state)

    async def _read_all(self, wire: Wire, started: float) -> list[Sample]:
        """One streamed pipeline over every known key, read as replies arrive."""
        states = list(self.keys.values())
        data = b"".join([st.cmds for st in states])
        total = sum(st.n for st in states)
        reading = Reading(self.cols, time.monotonic())
        queues: list[Sample] = []
        replies: list[Any] = []
        pos = k = 0
        with _gc_paused():
            async for batch in wire.stream(data, total):
                replies += batch
                k, pos = reading.consume(states, k, replies, pos, queues)
        self._after(reading)
        log.debug("read %d keys in %.3f s", len(states), time.perf_counter() - started)
        return queues

    async def _read_bytes(self, wire: Wire) -> None:
        """String sizes, for keys new or written to since they were last read."""
        refresh = [st for st in self._refresh if self.keys.get(st.key) is st]
        self._refresh = []
        if refresh:
            data = b"".join(bytes_cmd(st, self.cols) for st in refresh)
            replies = [
                r async for batch in wire.stream(data, len(refresh)) for r in batch
            ]
            self._refresh = read_bytes(refresh, replies, self.cols)

    def _after(self, reading: Reading) -> None:
        for st in reading.dead:
            if self.keys.get(st.key) is st:
                del self.keys[st.key]
        self._new += reading.retype
        self._refresh += reading.refresh
        if reading.repack:
            for st in self.keys.values():
                st.pack(self.cols)

    def _progress(self) -> dict[str, Any]:
        return {
            "known": len(self.keys),
            "scanned": self._scanned,
            "scan_passes": self._passes,
            "scan_cursor": self._cursor,
        }


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic GC while 100,000 samples or key states are made.

    Each burst of new samples otherwise sets off several full collections
    over every object the tracker holds, doubling the poll time.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _info(reply: bytes) -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in reply.decode(errors="replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            facts[name] = value.strip()
    return {k: _number(v) for k, v in facts.items()}


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def _db_keys(line: Any) -> int:
    """``keys=12,expires=0,avg_ttl=0`` -> 12; 0 for an empty database."""
    if not isinstance(line, str):
        return 0
    fields = dict(part.split("=", 1) for part in line.split(",") if "=" in part)
    return int(fields.get("keys", 0))
