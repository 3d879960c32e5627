"""Name families: ids fold, words stay."""

from __future__ import annotations

import uuid

import pytest

from qwatch.families import Families, pattern_of

MD5 = "0f343b0931126a20f133d67c2b018a3b"


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        (f"celery-task-meta-{uuid.uuid4()}", "celery-task-meta-{uuid}"),
        (f"report_workers:generate:{MD5}", "report_workers:generate:{hex}"),
        (f"rq:job:{uuid.uuid4().hex}", "rq:job:{hex}"),
        ("amq.gen-JzTY20BRgKO-HjmUJj0wLg", "amq.gen-{id}"),
        ("return-40213", "return-{n}"),
        ("bull:mail:1234:lock", "bull:mail:{n}:lock"),
        ("celery", "celery"),
        ("celery-task-meta-x", "celery-task-meta-x"),
        ("jobs_total", "jobs_total"),
        ("a b", "a b"),
        ("deadbeef", "deadbeef"),
        ("my_long_queue_name_here", "my_long_queue_name_here"),
    ],
)
def test_pattern_of(name: str, pattern: str) -> None:
    assert pattern_of(name) == pattern


def test_explicit_pattern_wins_and_lookalikes_stay_out() -> None:
    fams = Families(["rpc-reply-*"])
    assert fams.pattern("rpc-reply-alpha") == "rpc-reply-*"
    assert fams.matches("celery-task-meta-{uuid}", f"celery-task-meta-{uuid.uuid4()}")
    assert not fams.matches("celery-task-meta-{uuid}", "celery-task-meta-x")
    assert not fams.matches("celery-task-meta-{uuid}", "celery-task-meta-{uuid}")
