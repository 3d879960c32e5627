"""Replays every recording of a real Starling 0.10 against our server, byte for byte.

The recordings (``tests/starling_transcripts``, copied from the shared spec
folder) hold exact bytes in and out. Volatile stats are masked as the spec's
README says; everything else must be equal. The launcher's readiness probe is
replayed too, and sleeps in a recording move the server's clock instead.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures_starling import ShiftClock

from qwatch.starling import ServerThread

FOLDER = Path(__file__).parent / "starling_transcripts"
QUIET = 0.4
"""Seconds of silence that stand for the recordings' "nothing came"."""
GRACE = 0.05
"""Seconds to wait after a reply looks complete, to catch extra bytes."""


def mask(text: str, volatile: set[str]) -> str:
    """Replace the values of volatile ``STAT`` lines with ``*``."""
    lines = text.split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith("STAT "):
            key = line[5:].rpartition(" ")[0]
            if key in volatile:
                lines[i] = f"STAT {key} *"
    return "\r\n".join(lines)


class Client:
    """One raw client connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send(self, data: bytes) -> None:
        if data:
            self.sock.sendall(data)

    def read_lines(self, count: int, limit: float = 20.0) -> bytes:
        """Read until ``count`` CRLFs arrived, then a short grace for extras."""
        got = bytearray()
        deadline = time.monotonic() + limit
        while got.count(b"\r\n") < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"reply incomplete after {limit} s: {got[-200:]!r}"
                )
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                break
            got += chunk
        return bytes(got) + self.silence(GRACE)

    def silence(self, seconds: float) -> bytes:
        """Whatever arrives within ``seconds`` (expected: nothing)."""
        self.sock.settimeout(seconds)
        try:
            return self.sock.recv(1 << 16)
        except TimeoutError:
            return b""

    def close(self) -> None:
        self.sock.close()


def probe(port: int) -> None:
    """The recordings' readiness probe: stats, read one line, close."""
    client = Client(port)
    client.send(b"stats\r\n")
    data = b""
    while b"\r\n" not in data:
        data += client.sock.recv(4096)
    client.close()


class Replay:
    """Drives one recording's steps against one server."""

    def __init__(self, server: ServerThread, clock: ShiftClock, doc: dict[str, Any]):
        self.server, self.clock, self.doc = server, clock, doc
        self.volatile = set(doc["volatile_stats"])
        self.conns: dict[int, Client] = {}

    def conn(self, number: int) -> Client:
        if number not in self.conns:
            self.conns[number] = Client(self.server.port)
        return self.conns[number]

    def prepare(self, step: dict[str, Any]) -> bytes:
        if step.get("restart_before"):
            for client in self.conns.values():
                client.close()
            self.conns.clear()
            self.server.restart()
            probe(self.server.port)
        if "closed_before" in step:
            self.conns.pop(step["closed_before"]).close()
        self.clock.offset += step.get("sleep_before", 0.0)
        send: str = step["send"]
        if "exptime_offset" in step:
            recorded = str(self.doc["clock_base"] + step["exptime_offset"])
            ours = str(int(self.clock()) + step["exptime_offset"])
            send = send.replace(recorded, ours)
        return send.encode("latin-1")

    def run(
        self, step: dict[str, Any], whole: Callable[[str], str] | None = None
    ) -> None:
        """Replay one step; ``whole`` rebuilds a truncated recording's full
        reply from its kept head, so that one too is compared byte for byte."""
        data = self.prepare(step)
        client = self.conn(step["conn"])
        client.send(data)
        want: str = step["recv"]
        if not want:
            got = client.silence(QUIET)
            assert got == b"", f"{step.get('note')}: expected silence, got {got!r}"
            return
        if step.get("recv_truncated"):
            self.check_truncated(client, step, whole)
            return
        got = client.read_lines(want.count("\r\n")).decode("latin-1")
        assert mask(got, self.volatile) == mask(want, self.volatile), step.get("note")

    def check_truncated(
        self,
        client: Client,
        step: dict[str, Any],
        whole: Callable[[str], str] | None,
    ) -> None:
        total = step["recv_total_lines"]
        got = client.read_lines(total).decode("latin-1")
        assert got.count("\r\n") == total
        head: str = step["recv"]
        kept = head.count("\r\n")
        ours = mask(got, self.volatile).split("\r\n")[:kept]
        assert ours == mask(head, self.volatile).split("\r\n")[:kept]
        if whole is not None:
            want = whole(head)
            # The rebuilt reply carries the recording's own volatile values, so
            # its length must be the recorded length: the rebuild is faithful.
            assert len(want.encode("latin-1")) == step["recv_total_bytes"]
            assert want.count("\r\n") == total
            assert mask(got, self.volatile) == mask(want, self.volatile)

    def close(self) -> None:
        for client in self.conns.values():
            client.close()


def load(name: str) -> dict[str, Any]:
    return json.loads((FOLDER / f"{name}.json").read_text())


@pytest.fixture
def replay(starling_factory: Callable[..., ServerThread]):  # type: ignore[no-untyped-def]
    """Builds a fresh server, probes it, and replays a recording on it."""
    made: list[Replay] = []

    def start(doc: dict[str, Any]) -> Replay:
        clock = ShiftClock()
        server = starling_factory(clock=clock)
        probe(server.port)
        made.append(Replay(server, clock, doc))
        return made[-1]

    yield start
    for one in made:
        one.close()


SMALL = ["basics", "names", "get_creates", "errors", "expiry", "framing", "restart",
         "workling_leak"]  # fmt: skip


def test_every_recording_is_replayed() -> None:
    """No recording is left out of the replays below."""
    assert {p.stem for p in FOLDER.glob("*.json")} == {*SMALL, "limit"}


@pytest.mark.parametrize("name", SMALL)
def test_recording_replays_byte_for_byte(name: str, replay) -> None:  # type: ignore[no-untyped-def]
    """Every reply equals the real server's after masking volatile stats."""
    doc = load(name)
    session = replay(doc)
    for step in doc["steps"]:
        session.run(step)


def test_restart_leaves_journals_as_recorded(replay) -> None:  # type: ignore[no-untyped-def]
    """Journal files end with the names and sizes the real server left."""
    doc = load("restart")
    session = replay(doc)
    for step in doc["steps"]:
        session.run(step)
    folder = Path(session.server.server.journal_dir)
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert sizes == {f["name"]: f["bytes"] for f in doc["journal_at_end"]["files"]}


def _fill_name(number: int) -> bytes:
    digest = hashlib.md5(str(number - 1).encode()).hexdigest()
    return f"report_workers:generate:{digest}".encode()


def test_limit_recording_with_the_real_descriptor_cap(replay) -> None:  # type: ignore[no-untyped-def]
    """Fill to 4,096 descriptors: the same sets fail, a new connection waits
    unserved until conn 1 closes, and the stats are as long as recorded."""
    doc = load("limit")
    session = replay(doc)
    value = b'\x04\x08I"\tDONE\x06:\x06ET'
    first_kept = doc["steps"][0]["set_number"]
    conn = session.conn(1)
    batch = b"".join(
        b"set %s 0 0 14\r\n%s\r\n" % (_fill_name(n), value)
        for n in range(1, first_kept)
    )
    conn.send(batch)
    assert conn.read_lines(first_kept - 1) == b"STORED\r\n" * (first_kept - 1)
    for step in doc["steps"]:
        if "set_number" in step:
            assert (
                step["send"]
                .encode("latin-1")
                .startswith(b"set " + _fill_name(step["set_number"]))
            )
        session.run(step, whole=lambda head: _whole_limit_stats(head, doc))
    folder = Path(session.server.server.journal_dir)
    assert len(list(folder.iterdir())) == doc["journal_at_end"]["count"]


def _whole_limit_stats(head: str, doc: dict[str, Any]) -> str:
    """The limit recording's full stats reply: its 18 global lines and first
    block as kept, then one untouched one-item queue per later fill set."""
    kept = "\r\n".join(head.split("\r\n")[: 18 + 5]) + "\r\n"
    fields = (("items", 1), ("total_items", 1), ("logsize", 23),
              ("expired_items", 0), ("age", 0))  # fmt: skip
    rest = "".join(
        f"STAT queue_{_fill_name(n).decode()}_{field} {value}\r\n"
        for n in range(2, doc["queues_created"] + 1)
        for field, value in fields
    )
    return kept + rest + "END\r\n"


SHARED = Path(__file__).parents[2] / "shared" / "starling"
"""The spec folder the recordings were copied from, when this checkout has it."""


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared spec folder (a clone)")
def test_copy_is_identical_to_the_shared_recordings() -> None:
    """tests/starling_transcripts holds the spec folder's files byte for byte."""
    theirs = {p.name: p.read_bytes() for p in (SHARED / "transcripts").iterdir()}
    theirs["README.md"] = (SHARED / "README.md").read_bytes()
    ours = {p.name: p.read_bytes() for p in FOLDER.iterdir()}
    assert ours == theirs


def test_delete_takes_the_rest_of_the_line_as_the_name(starling) -> None:  # type: ignore[no-untyped-def]
    """Starling's delete pattern is greedy: ``delete report 1`` drops the queue
    "report 1", never "report" (a family purge relies on it)."""
    client = Client(starling.port)
    client.send(b"set report 0 0 4\r\nkeep\r\nset report 1 0 0 1\r\nx\r\n")
    assert client.read_lines(2) == b"STORED\r\nSTORED\r\n"
    client.send(b"delete report 1\r\n")
    assert client.read_lines(1) == b"DELETED\r\n"
    client.send(b"get report\r\n")
    assert client.read_lines(3) == b"VALUE report 0 4\r\nkeep\r\nEND\r\n"
    client.close()


def test_get_drops_whitespace_only_past_250_characters(starling) -> None:  # type: ignore[no-untyped-def]
    """``get`` + 250 characters + spaces names the 250-character queue, as
    Starling's ``get (.{1,250})\\s*`` does; 251 other characters are an error."""
    name = b"n" * 250
    client = Client(starling.port)
    client.send(b"set %s 0 0 1\r\nv\r\nget %s  \r\nget %sx\r\n" % (name, name, name))
    want = b"STORED\r\nVALUE %s 0 1\r\nv\r\nEND\r\n" % name
    assert client.read_lines(5) == want + b"CLIENT_ERROR bad command line format\r\n"
    client.close()
