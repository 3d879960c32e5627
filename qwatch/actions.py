"""Operator actions, one layer for the CLI and the dashboard.

Drain, purge, peek and restore go through here rather than straight to an
adapter, so both front ends get the same guards: a read-only target refuses
every action, a purge is planned (names and counts shown first) before it runs,
a family is expanded to exact member names and nothing else, and every action
lands in the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Protocol, runtime_checkable

from qwatch import audit
from qwatch.adapters.base import (
    ActionError,
    Adapter,
    Item,
    Progress,
    PurgeResult,
    mask_url,
)
from qwatch.drainfile import DrainWriter, aread_items, summarize
from qwatch.families import pattern_of
from qwatch.model import Kind, Sample, Snapshot

log = logging.getLogger(__name__)

BATCH = 500
"""Names per purge call: small enough that cancel answers quickly."""

DISCOVERY_TIMEOUT = 120.0
"""Seconds a plan may poll for before a server that walks its keyspace in
steps must have listed every queue."""

RESULT_KINDS = frozenset({Kind.STRING, Kind.HASH})
"""Member kinds of a result-key family (one value per task, nobody pops it):
for these, expiring instead of deleting is offered."""


_PLACEHOLDER = re.compile(r"\{(?:uuid|hex|id|n)\}")


class ReadOnlyError(ActionError):
    """The target is read-only; the action was refused."""


@dataclass(frozen=True, slots=True)
class Guard:
    """What a target allows, and where its actions are recorded."""

    target: str
    """The target URL; masked wherever it is shown."""
    read_only: bool = False
    production: bool = False
    why: str = "--read-only"
    """What made it read-only (a flag, a config profile), said on refusal."""
    name: str = ""
    """The target's name in qwatch.toml, if it has one."""

    @property
    def label(self) -> str:
        """The target's config name, else its URL with the password masked."""
        return self.name or mask_url(self.target)

    def check(self, action: str, queue: str) -> None:
        """Refuse ``action`` on a read-only target, recording the refusal.

        Raises:
            ReadOnlyError: the target is read-only.
        """
        if not self.read_only:
            audit.ensure_writable()
            return
        try:
            audit.record(action, self.target, queue, 0, outcome="refused")
        except ActionError as exc:
            log.warning("%s", exc)
        raise ReadOnlyError(f"{self.label} is read-only ({self.why}): {action} refused")


@dataclass(slots=True)
class PurgePlan:
    """What a purge would delete, shown before it runs."""

    what: str
    """The queue name, or the family pattern."""
    family: bool
    names: list[str]
    expected: dict[str, Sample] = field(default_factory=dict)
    """Each name's sample at planning time; changed members are skipped."""
    can_expire: bool = False
    """The adapter can set a TTL instead, and the members are result keys."""

    @property
    def items(self) -> int:
        """Items held by every name in the plan."""
        return sum(s.depth for s in self.expected.values())


@dataclass(slots=True)
class PurgeOutcome:
    """What a purge did."""

    result: PurgeResult
    cancelled: bool = False
    untouched: int = 0
    """Names never reached because the purge was cancelled."""


@dataclass(slots=True)
class DrainOutcome:
    """What a drain did."""

    queue: str
    path: Path
    count: int
    cancelled: bool = False


@dataclass(slots=True)
class RestoreOutcome:
    """What a restore wrote."""

    queue: str
    path: Path
    count: int
    in_file: int
    torn: bool = False
    """The file's last line was torn by a kill and was skipped."""
    returned: int = 0
    """Items a killed drain had parked on the server (Redis holding key),
    put back into the queue first."""


def is_glob(pattern: str) -> bool:
    """True for an fnmatch pattern such as ``celery-task-meta-*``."""
    return any(c in pattern for c in "*?[")


def is_family_pattern(pattern: str) -> bool:
    """True when ``pattern`` names a family: a glob, or holds ``{uuid}``-style
    placeholders."""
    return is_glob(pattern) or _PLACEHOLDER.search(pattern) is not None


def is_member(pattern: str, name: str) -> bool:
    """True when ``name`` belongs to the family ``pattern``, never to itself.

    A glob matches by fnmatch; a derived pattern (``celery-task-meta-{uuid}``)
    matches only names whose own derived pattern is exactly it, so
    ``celery-task-meta-x`` is not a member.
    """
    if name == pattern:
        return False
    if is_glob(pattern):
        return fnmatchcase(name, pattern)
    return pattern_of(name) == pattern


async def full_snapshot(
    adapter: Adapter, timeout: float = DISCOVERY_TIMEOUT
) -> Snapshot:
    """Poll until the snapshot lists every queue.

    Raises:
        ActionError: discovery did not finish within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        snap = await adapter.poll()
        if snap.complete:
            return snap
        if time.monotonic() > deadline:
            raise ActionError(f"{adapter.label}: discovery did not finish in time")


async def plan_purge(
    adapter: Adapter, what: str, family: bool, snap: Snapshot | None = None
) -> PurgePlan:
    """The exact names a purge of queue or family ``what`` would delete.

    Raises:
        ActionError: the queue is not there, the pattern is not a family
            pattern, or no member exists.
    """
    snap = snap or await full_snapshot(adapter)
    present = {s.name: s for s in snap.queues if s.present}
    if not family:
        if what not in present:
            raise ActionError(f"{adapter.label}: no queue named {what!r}")
        return PurgePlan(what, False, [what], {what: present[what]})
    if not is_family_pattern(what):
        raise ActionError(f"{what!r} is not a family pattern; purge it as a queue")
    names = sorted(n for n in present if is_member(what, n))
    if not names:
        raise ActionError(f"{adapter.label}: no queue matches the family {what!r}")
    expected = {n: present[n] for n in names}
    result_keys = all(s.kind in RESULT_KINDS for s in expected.values())
    return PurgePlan(what, True, names, expected, adapter.can_expire and result_keys)


async def purge(
    adapter: Adapter,
    plan: PurgePlan,
    guard: Guard,
    progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
    expire: float | None = None,
    batch: int = BATCH,
) -> PurgeOutcome:
    """Delete (or expire) exactly the plan's names, in batches.

    Raises:
        ActionError: refused (read-only, cannot expire) or failed.
    """
    action = "purge" if expire is None else "expire"
    guard.check(action, plan.what)
    if expire is not None and not adapter.can_expire:
        raise ActionError(f"{adapter.label}: cannot set a TTL here; purge instead")
    names = [n for n in plan.names if _belongs(plan, n)]
    if len(names) != len(plan.names):
        raise ActionError(f"plan for {plan.what!r} holds names outside the family")
    audit.record(action, guard.target, plan.what, len(names), outcome="started")
    outcome = PurgeOutcome(PurgeResult())
    try:
        await _purge_batches(
            adapter, plan, names, outcome, progress, cancel, expire, batch
        )
    except BaseException:
        _record_purge(action, guard, plan, outcome, "failed")
        raise
    _record_purge(
        action, guard, plan, outcome, "cancelled" if outcome.cancelled else "done"
    )
    return outcome


def _belongs(plan: PurgePlan, name: str) -> bool:
    """Checked again right before deleting: nothing outside the plan's queue
    or family may ever reach the adapter."""
    return is_member(plan.what, name) if plan.family else name == plan.what


async def _purge_batches(
    adapter: Adapter,
    plan: PurgePlan,
    names: list[str],
    outcome: PurgeOutcome,
    progress: Progress | None,
    cancel: asyncio.Event | None,
    expire: float | None,
    batch: int,
) -> None:
    done = 0
    for start in range(0, len(names), batch):
        if cancel is not None and cancel.is_set():
            break
        chunk = names[start : start + batch]
        expected = {n: plan.expected[n] for n in chunk if n in plan.expected}
        got = await adapter.purge(
            chunk, expected, _offset(progress, done), cancel, expire
        )
        _merge(outcome.result, got)
        done += len(chunk)
        if progress is not None:
            progress(done)
    _settle_cancel(outcome, len(names), cancel)


def _settle_cancel(
    outcome: PurgeOutcome, planned: int, cancel: asyncio.Event | None
) -> None:
    """Count names a cancel kept us from; adapters may list them as skipped."""
    result = outcome.result
    for name in [n for n, why in result.skipped.items() if why == "cancelled"]:
        del result.skipped[name]
    outcome.untouched = planned - len(result.deleted) - len(result.skipped)
    outcome.cancelled = outcome.untouched > 0 and cancel is not None and cancel.is_set()


def _offset(progress: Progress | None, done: int) -> Progress | None:
    if progress is None:
        return None
    return lambda n: progress(done + n)


def _merge(into: PurgeResult, got: PurgeResult) -> None:
    into.deleted.extend(got.deleted)
    into.skipped.update(got.skipped)
    into.items += got.items


def _record_purge(
    action: str, guard: Guard, plan: PurgePlan, outcome: PurgeOutcome, how: str
) -> None:
    result = outcome.result
    audit.record(
        action, guard.target, plan.what, len(result.deleted), outcome=how,
        items=result.items, skipped=len(result.skipped), family=plan.family,
    )  # fmt: skip


def default_drain_path(queue: str, folder: Path | None = None) -> Path:
    """``drain-<queue>-<time>.jsonl`` in ``folder`` (the working one)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", queue).strip("._") or "queue"
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    return (folder or Path.cwd()) / f"drain-{safe[:80]}-{stamp}.jsonl"


async def drain(
    adapter: Adapter,
    queue: str,
    path: Path,
    guard: Guard,
    limit: int | None = None,
    progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
    *,
    offload: bool = True,
) -> DrainOutcome:
    """Move up to ``limit`` items from ``queue`` into a new drain file.

    Each item is on disk before the adapter removes it from the server. A
    drain that saved nothing leaves no file behind. ``offload=False`` fsyncs
    on the event loop: faster, for callers with no screen to keep alive.

    Raises:
        ActionError: refused, the file exists, or the server failed.
    """
    guard.check("drain", queue)
    if not adapter.can_drain:
        raise ActionError(f"{adapter.label}: drain is not supported here")
    with DrainWriter(path, adapter.url, queue, offload=offload) as sink:
        # Recorded first, so even a drain killed outright leaves its file named.
        audit.record("drain", guard.target, queue, 0, outcome="started", file=path)
        try:
            count = await adapter.drain(queue, sink, limit, progress, cancel)
        except BaseException:
            # A file holding only its header would look like a drain that
            # saved something; with no item in it, it goes.
            sink.discard()
            kept = path if path.exists() else None
            audit.record(
                "drain", guard.target, queue, sink.count, outcome="failed", file=kept
            )
            raise
        if count != sink.count:
            log.warning("%s: drain said %d, file holds %d", adapter.label, count,
                        sink.count)  # fmt: skip
        # The file is the truth of what was saved.
        count = sink.count
        if count == 0:
            sink.discard()  # nothing was saved: leave no file to wonder about
    cancelled = cancel is not None and cancel.is_set()
    how = "cancelled" if cancelled else "done"
    kept = path if count else None
    audit.record("drain", guard.target, queue, count, outcome=how, file=kept)
    return DrainOutcome(queue, path, count, cancelled)


async def peek(adapter: Adapter, queue: str, count: int, guard: Guard) -> list[Item]:
    """Up to ``count`` items from the head of ``queue``.

    Read :attr:`Adapter.peek_side_effect` and tell the operator first.

    Raises:
        ActionError: refused or not supported.
    """
    guard.check("peek", queue)
    if not adapter.can_peek:
        why = f" ({adapter.peek_side_effect})" if adapter.peek_side_effect else ""
        raise ActionError(f"{adapter.label}: peek is not supported here{why}")
    items = await adapter.peek(queue, count)
    audit.record("peek", guard.target, queue, len(items))
    return items


async def restore(
    adapter: Adapter,
    path: Path,
    guard: Guard,
    queue: str | None = None,
    progress: Progress | None = None,
    cancel: asyncio.Event | None = None,
) -> RestoreOutcome:
    """Put a drain file back, in order, into ``queue`` (default: its own).

    The whole file is checked before the first item is written, so a damaged
    file restores nothing.

    Raises:
        ActionError: refused, the file is damaged, or the server failed.
    """
    summary = summarize(path)
    queue = queue or str(summary.header.get("queue") or "")
    if not queue:
        raise ActionError(f"{path} names no queue; give one")
    guard.check("restore", queue)
    items = _counted(aread_items(path), progress, cancel)
    returned = 0
    try:
        returned = await _return_held(adapter, queue)
        count = await adapter.restore(queue, items)
    except BaseException:
        audit.record(
            "restore", guard.target, queue, 0, outcome="failed", file=path,
            **_returned(returned),
        )  # fmt: skip
        raise
    how = "cancelled" if cancel is not None and cancel.is_set() else "done"
    audit.record(
        "restore", guard.target, queue, count, outcome=how, file=path,
        **_returned(returned),
    )  # fmt: skip
    return RestoreOutcome(queue, path, count, summary.items, summary.torn, returned)


def _returned(count: int) -> dict[str, int]:
    return {"returned": count} if count else {}


@runtime_checkable
class HoldsItems(Protocol):
    """An adapter whose drain parks items on the server while saving them."""

    async def return_held(self, queue: str) -> int:
        """Put parked items back into ``queue``; returns how many."""


async def _return_held(adapter: Adapter, queue: str) -> int:
    """A killed drain may have left items parked; a restore puts them back
    too, so restoring a killed drain's file leaves nothing stranded."""
    if not isinstance(adapter, HoldsItems):
        return 0
    return await adapter.return_held(queue)


async def _counted(
    items: AsyncIterator[Item],
    progress: Progress | None,
    cancel: asyncio.Event | None,
) -> AsyncIterator[Item]:
    """Pass items through, reporting progress and stopping on cancel."""
    done = 0
    async for item in items:
        if cancel is not None and cancel.is_set():
            return
        yield item
        done += 1
        if progress is not None:
            progress(done)


def describe(items: list[Item], width: int = 200) -> Iterator[str]:
    """One readable line per peeked item: body (cut to ``width``) and meta."""
    for index, item in enumerate(items, 1):
        try:
            body = item.body.decode("utf-8")
        except UnicodeDecodeError:
            body = f"<{len(item.body)} bytes, not text>"
        body = body if len(body) <= width else body[: width - 1] + "…"
        meta = f"  {item.meta}" if item.meta else ""
        yield f"{index}. {body}{meta}"
