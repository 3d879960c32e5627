"""Drain files, the audit log and family matching: the parts that need no server."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qwatch.adapters.base import ActionError, Item

from qwatch import audit
from qwatch.actions import Guard, ReadOnlyError, is_family_pattern, is_member
from qwatch.drainfile import DrainWriter, read_header, read_items, summarize

URL = "redis://:s3cret@127.0.0.1:6379/0"
UUID = "6f1c2b3a-1111-4a2b-8c3d-0123456789ab"

ODD_BODIES = [
    b"plain text",
    "unicode: \u00e9\u4e2d\U0001f600".encode(),
    b"\xff\xfe\x00binary\x80",
    b"",
    b"line\nbreaks\r\nand \x00 nul",
    bytes(range(256)),
]


@pytest.fixture(autouse=True)
def private_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes its own audit log, never the user's."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv(audit.ENV, str(path))
    return path


async def write_file(path: Path, items: list[Item]) -> None:
    with DrainWriter(path, URL, "jobs") as sink:
        for item in items:
            await sink.write(item)


async def test_bodies_and_meta_round_trip_byte_for_byte(tmp_path: Path) -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    items = [
        Item(b, {"score": 1.5, "raw": b"\x00\xff", "at": when}) for b in ODD_BODIES
    ]
    path = tmp_path / "d.jsonl"
    await write_file(path, items)
    back = list(read_items(path))
    assert [i.body for i in back] == ODD_BODIES
    assert back[2].meta == {"score": 1.5, "raw": b"\x00\xff", "at": when}


async def test_header_masks_the_password_and_names_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    await write_file(path, [Item(b"x")])
    head = read_header(path)
    assert head["queue"] == "jobs"
    assert "s3cret" not in path.read_text()
    assert head["source"] == "redis://:***@127.0.0.1:6379/0"


async def test_text_bodies_stay_readable_and_binary_is_marked(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    await write_file(path, [Item(b"hello"), Item(b"\xff")])
    lines = [json.loads(x) for x in path.read_text().splitlines()[1:]]
    assert lines[0]["body"] == "hello" and "encoding" not in lines[0]
    assert lines[1] == {"body": "/w==", "encoding": "base64", "meta": {}}


async def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("precious\n")
    with pytest.raises(ActionError, match="already exists"):
        DrainWriter(path, URL, "jobs")
    assert path.read_text() == "precious\n"


@pytest.mark.parametrize("cut", [1, 5, 12])
async def test_a_torn_last_line_is_skipped(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "d.jsonl"
    await write_file(path, [Item(b"one"), Item(b"two-two-two")])
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_start + cut])
    assert [i.body for i in read_items(path)] == [b"one"]
    summary = summarize(path)
    assert (summary.items, summary.torn) == (1, True)


async def test_a_damaged_middle_line_stops_the_read(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    await write_file(path, [Item(b"one"), Item(b"two"), Item(b"three")])
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'{"body": "tw'
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ActionError, match="line 3 is damaged"):
        summarize(path)


def test_a_file_that_is_not_a_drain_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ActionError, match="not a qwatch drain file"):
        summarize(path)
    with pytest.raises(ActionError, match="cannot read"):
        summarize(tmp_path / "missing.jsonl")


async def test_each_item_is_on_disk_when_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with DrainWriter(path, URL, "jobs") as sink:
        await sink.write(Item(b"first"))
        # Read through a separate descriptor while the writer is still open.
        assert [i.body for i in read_items(path)] == [b"first"]
        assert sink.count == 1


def test_audit_entries_append_with_secrets_masked(private_audit: Path) -> None:
    audit.record("purge", URL, "jobs", 3, file="x.jsonl", items=9)
    audit.record("drain", URL, "jobs", 5)
    entries = [json.loads(x) for x in private_audit.read_text().splitlines()]
    assert [e["action"] for e in entries] == ["purge", "drain"]
    assert entries[0]["target"] == "redis://:***@127.0.0.1:6379/0"
    assert entries[0]["count"] == 3 and entries[0]["items"] == 9
    assert entries[0]["file"].endswith("x.jsonl")
    assert "s3cret" not in private_audit.read_text()


def test_audit_log_defaults_to_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(audit.ENV)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert audit.audit_path() == tmp_path / "state" / "qwatch" / "audit.jsonl"


def test_an_unwritable_audit_log_stops_the_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(audit.ENV, str(blocker / "audit.jsonl"))
    with pytest.raises(ActionError, match="cannot write the audit log"):
        Guard(URL).check("purge", "jobs")


def test_read_only_guard_refuses_and_records(private_audit: Path) -> None:
    with pytest.raises(ReadOnlyError, match=r"read-only .*purge refused"):
        Guard(URL, read_only=True).check("purge", "jobs")
    entry = json.loads(private_audit.read_text())
    assert (entry["action"], entry["outcome"]) == ("purge", "refused")


@pytest.mark.parametrize(
    ("pattern", "name", "member"),
    [
        ("celery-task-meta-{uuid}", "celery-task-meta-" + UUID, True),
        ("celery-task-meta-{uuid}", "celery-task-meta-x", False),
        ("celery-task-meta-{uuid}", "celery-task-meta-{uuid}", False),
        ("celery-task-meta-{uuid}", "celery", False),
        ("celery-task-meta-{uuid}", "other-" + UUID, False),
        ("reply-{hex}", "reply-0123456789abcdef0123", True),
        ("reply-{hex}", "reply-0123456789abcdef0123-extra", False),
        ("rpc-reply-*", "rpc-reply-anything", True),
        ("rpc-reply-*", "rpc-request-1", False),
    ],
)  # fmt: skip
def test_family_membership_is_exact(pattern: str, name: str, member: bool) -> None:
    assert is_member(pattern, name) is member


def test_only_patterns_count_as_families() -> None:
    assert is_family_pattern("celery-task-meta-{uuid}")
    assert is_family_pattern("rpc-*")
    assert not is_family_pattern("celery")
    assert not is_family_pattern("queue1")


def test_audit_file_is_created_private(private_audit: Path) -> None:
    audit.record("peek", URL, "jobs", 1)
    assert private_audit.stat().st_mode & 0o077 == 0 or os.name != "posix"
