"""The action layer on real servers: restore round trips, exact family purges,
skip-changed, cancel and expire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from qwatch.adapters.base import Adapter
from test_actions_helpers import (  # noqa: F401 - fixtures
    Backend,
    bodies,
    connected,
    rabbit_backend,
    redis_backend,
    starling_backend,
)

from qwatch import actions, audit
from qwatch.actions import Guard

UUIDS = [f"6f1c2b3a-1111-4a2b-8c3d-{i:012x}" for i in range(5)]
MEMBERS = [f"celery-task-meta-{u}" for u in UUIDS]
OTHER_FAMILY = [f"report-{i:032x}" for i in range(1, 4)]
LOOK_ALIKES = ["celery-task-meta-x", "celery", *OTHER_FAMILY]
FAMILY = "celery-task-meta-{uuid}"


@pytest.fixture(params=["redis", "rabbit", "starling"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn."""
    found: Backend = request.getfixturevalue(f"{request.param}_backend")
    return found


@pytest.fixture(autouse=True)
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private audit log for each test."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv(audit.ENV, str(path))
    return path


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Await ``check`` until truthy; RabbitMQ's API lags its queues by seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.2)
    return value


async def plan_when(
    adapter: Adapter, what: str, family: bool, names: list[str], items: int
) -> actions.PurgePlan:
    """The plan, once the server's numbers show what the test put there."""

    async def ready() -> actions.PurgePlan | None:
        try:
            plan = await actions.plan_purge(adapter, what, family)
        except actions.ActionError:
            return None
        return plan if plan.names == names and plan.items == items else None

    found: actions.PurgePlan = await eventually(ready)
    return found


async def test_restore_round_trips_byte_for_byte(
    backend: Backend, tmp_path: Path
) -> None:
    original = bodies(300, seed=7)
    await backend.fill("jobs", original)
    await backend.fill("copy", [])
    path = tmp_path / "jobs.jsonl"
    guard = Guard(backend.url)
    async with connected(backend) as adapter:
        drained = await actions.drain(adapter, "jobs", path, guard)
        assert (drained.count, drained.cancelled) == (300, False)
        assert await backend.items("jobs") == []
        done = await actions.restore(adapter, path, guard, "copy")
        assert (done.count, done.in_file, done.queue) == (300, 300, "copy")
        assert await backend.items("copy") == original
        again = await actions.restore(adapter, path, guard)
    assert again.queue == "jobs"
    assert await backend.items("jobs") == original


async def test_drain_limit_takes_from_the_head(
    backend: Backend, tmp_path: Path
) -> None:
    original = bodies(40, seed=3)
    await backend.fill("jobs", original)
    path = tmp_path / "some.jsonl"
    async with connected(backend) as adapter:
        out = await actions.drain(adapter, "jobs", path, Guard(backend.url), limit=15)
    assert out.count == 15
    assert await backend.items("jobs") == original[15:]


async def fill_family(backend: Backend) -> None:
    for index, name in enumerate(MEMBERS):
        await backend.fill(name, [f"result {index} {n}".encode() for n in range(2)])
    for name in LOOK_ALIKES:
        await backend.fill(name, [f"keep {name}".encode()] * 3)


async def test_family_purge_touches_only_members(
    backend: Backend, audit_log: Path
) -> None:
    await fill_family(backend)
    async with connected(backend) as adapter:
        plan = await plan_when(adapter, FAMILY, True, MEMBERS, 10)
        out = await actions.purge(adapter, plan, Guard(backend.url))
    assert sorted(out.result.deleted) == MEMBERS
    assert (out.result.items, out.result.skipped, out.cancelled) == (10, {}, False)
    left = await backend.depths()
    assert {n: left[n] for n in LOOK_ALIKES} == dict.fromkeys(LOOK_ALIKES, 3)
    assert all(left.get(name, 0) == 0 for name in MEMBERS)
    entries = [json.loads(x) for x in audit_log.read_text().splitlines()]
    assert [e["outcome"] for e in entries] == ["started", "done"]
    assert entries[-1]["count"] == 5 and entries[-1]["queue"] == FAMILY


async def test_a_member_changed_since_the_preview_is_skipped(backend: Backend) -> None:
    await fill_family(backend)
    async with connected(backend) as adapter:
        plan = await plan_when(adapter, FAMILY, True, MEMBERS, 10)
        await backend.fill(MEMBERS[2], [b"late result"])
        out = await actions.purge(adapter, plan, Guard(backend.url))
    assert list(out.result.skipped) == [MEMBERS[2]]
    assert sorted(out.result.deleted) == sorted(set(MEMBERS) - {MEMBERS[2]})
    assert (await backend.depths())[MEMBERS[2]] == 3


async def test_a_queue_purge_empties_only_that_queue(backend: Backend) -> None:
    await fill_family(backend)
    async with connected(backend) as adapter:
        plan = await plan_when(adapter, "celery", False, ["celery"], 3)
        out = await actions.purge(adapter, plan, Guard(backend.url))
    assert out.result.deleted == ["celery"]
    left = await backend.depths()
    assert left.get("celery", 0) == 0
    assert left["celery-task-meta-x"] == 3 and left[MEMBERS[0]] == 2


async def test_a_plain_name_is_not_a_family(backend: Backend) -> None:
    await fill_family(backend)
    async with connected(backend) as adapter:
        with pytest.raises(actions.ActionError, match="not a family pattern"):
            await actions.plan_purge(adapter, "celery", True)
        with pytest.raises(actions.ActionError, match="no queue named"):
            await actions.plan_purge(adapter, "nothing-here", False)


async def test_cancel_stops_a_family_purge_between_batches(
    redis_backend: Backend,  # noqa: F811
) -> None:
    names = sorted(f"reply-{i:032x}" for i in range(1, 51))
    for name in names:
        await redis_backend.fill(name, [b"r"])
    cancel = asyncio.Event()
    async with connected(redis_backend) as adapter:
        plan = await actions.plan_purge(adapter, "reply-{hex}", True)
        out = await actions.purge(
            adapter, plan, Guard(redis_backend.url), lambda n: cancel.set(), cancel,
            batch=10,
        )  # fmt: skip
    assert out.cancelled and out.untouched == 40
    assert len(out.result.deleted) == 10
    assert len(await redis_backend.depths()) == 40


async def test_result_keys_can_expire_instead_of_delete(
    redis_backend: Any,  # noqa: F811
) -> None:
    client = redis_backend.client
    for name in MEMBERS:
        await client.set(name, b'{"status": "SUCCESS"}')
    await client.rpush("celery", b"work")
    async with connected(redis_backend) as adapter:
        plan = await actions.plan_purge(adapter, FAMILY, True)
        assert plan.can_expire
        out = await actions.purge(adapter, plan, Guard(redis_backend.url), expire=3600)
    assert sorted(out.result.deleted) == MEMBERS
    ttls = [await client.ttl(n) for n in MEMBERS]
    assert all(0 < ttl <= 3600 for ttl in ttls)
    assert await client.ttl("celery") == -1


async def test_a_work_list_family_is_not_offered_expiry(
    redis_backend: Backend,  # noqa: F811
) -> None:
    await fill_family(redis_backend)
    async with connected(redis_backend) as adapter:
        plan = await actions.plan_purge(adapter, FAMILY, True)
    assert not plan.can_expire
