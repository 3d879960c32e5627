"""One target's state: every queue's history, its families and their verdicts.

The tracker is fed snapshots and hands out rows; the dashboard, ``qwatch
check`` and the exporter all read the same rows, so they always agree.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import translate

from qwatch.families import Families
from qwatch.history import History, Point
from qwatch.model import Kind, Sample, Snapshot
from qwatch.settings import Thresholds
from qwatch.verdicts import Facts, Judgement, Verdict, judge

TREND_POINTS = 30
"""Depths kept for a row's sparkline."""


@dataclass(slots=True)
class Row:
    """One line of the dashboard: a queue, or a family folded into one."""

    target: str
    name: str
    """The queue name, or the family pattern."""
    kind: str
    depth: int
    """Items held (summed over members for a family)."""
    verdict: Verdict
    reason: str
    since: float
    """When the current verdict began."""
    members: int | None = None
    """Member count; None for a plain queue."""
    change_per_min: float | None = None
    """Change of depth (members, for a family) per minute over the window."""
    rate_in: float | None = None
    rate_out: float | None = None
    consumers: int | None = None
    trend: list[int] = field(default_factory=list)
    sample: Sample | None = None

    @property
    def is_family(self) -> bool:
        """True for a family row."""
        return self.members is not None


@dataclass(slots=True)
class _Family:
    members: set[str] = field(default_factory=set)
    added: int = 0
    gone: int = 0
    read: float = 0.0
    history: History | None = None
    newest: tuple[int, int] = (0, 0)
    """Of the members that appeared at the last poll that had any: how many
    carry a TTL, and how many there were. What the producer does now decides
    whether the family is bounded, not keys an operator expired by hand."""


class Tracker:
    """Keeps a bounded history for each queue and family of one target."""

    def __init__(
        self,
        target: str,
        thresholds: Thresholds | None = None,
        families: Families | None = None,
        ignore: Iterable[str] = (),
    ) -> None:
        self.target = target
        self.ignore = _matcher(ignore)
        """Names never tracked (config ``ignore``), or None to keep all."""
        self.th = thresholds or Thresholds()
        self.families = families or Families()
        self.queues: dict[str, History] = {}
        self._absent: dict[str, float] = {}
        """Names not present on the server, with when they went."""
        self._unreported: dict[str, float] = {}
        """Names the last snapshots did not list at all, with since when."""
        self._fams: dict[str, _Family] = {}
        self._since: dict[str, tuple[Verdict, float]] = {}
        self._judged: dict[str, Judgement] = {}
        self.last: Snapshot | None = None

    def update(self, snap: Snapshot) -> None:
        """Fold one poll's snapshot into the histories and verdicts."""
        counting = snap.complete and not snap.restarted
        reported, seen, moved = self._record(snap)
        self._age_out(reported, seen, snap.at)
        self._update_families(snap.at, moved, counting)
        self._judge_all(snap.at, reported)
        self.last = snap

    def forget(self, name: str) -> None:
        """Judge the queue or family ``name`` afresh from the next poll.

        Called after qwatch itself drained or purged it: what the operator
        took out is not a consumer, and a leak that goes on must come back
        as LEAK, not as a STALL of a reader that never was.
        """
        if name in self._fams:
            # Members are learnt again, uncounted, from the next poll on.
            self._fams[name] = _Family(history=History(self.th.history))
            key = "f:" + name
        elif name in self.queues:
            del self.queues[name]  # the next poll sees it as new
            key = "q:" + name
        else:
            return
        self._since.pop(key, None)
        self._judged.pop(key, None)

    def _record(self, snap: Snapshot) -> tuple[set[str], set[str], dict[str, float]]:
        """Add each sample; return names reported, names present, and each
        non-zero outflow."""
        reported: set[str] = set()
        seen: set[str] = set()
        moved: dict[str, float] = {}
        limit = self.th.history
        queues = self.queues
        ignored = self.ignore
        for sample in snap.queues:
            if ignored is not None and ignored(sample.name):
                continue
            reported.add(sample.name)
            history = queues.get(sample.name)
            if history is None:
                history = queues[sample.name] = History(limit)
                history.add(sample, snap.at)
            else:
                out = history.points[-1].flow_out
                history.add(sample, snap.at)
                if history.points[-1].flow_out != out:
                    moved[sample.name] = history.points[-1].flow_out - out
            if sample.present:
                seen.add(sample.name)
        return reported, seen, moved

    def _age_out(self, reported: set[str], seen: set[str], now: float) -> None:
        """Forget queues unreported for two windows, so memory tracks the server.

        A queue the adapter still reports as gone (Redis deletes empty lists)
        is remembered, at depth 0, for as long as the adapter reports it.
        """
        for name in self.queues.keys() - seen:
            self._absent.setdefault(name, now)
        for name in seen & self._absent.keys():
            del self._absent[name]
        for name in self.queues.keys() - reported:
            first = self._unreported.setdefault(name, now)
            if now - first > 2 * self.th.window:
                del self.queues[name]
                del self._unreported[name]
                self._absent.pop(name, None)
                self.families.forget(name)
        for name in reported & self._unreported.keys():
            del self._unreported[name]

    def _update_families(
        self, now: float, moved: dict[str, float], counting: bool
    ) -> None:
        groups: dict[str, set[str]] = defaultdict(set)
        items: dict[str, int] = defaultdict(int)
        pattern_of = self.families.pattern
        absent = self._absent
        for name, history in self.queues.items():
            if name in absent:
                continue
            pattern = pattern_of(name)
            if pattern != name:
                groups[pattern].add(name)
                items[pattern] += history.points[-1].depth
        for pattern, names in groups.items():
            fam = self._fams.get(pattern)
            if fam is None and len(names) < self.th.min_members:
                continue
            if fam is None:
                fam = self._fams[pattern] = _Family(history=History(self.th.history))
            read = sum(moved[n] for n in moved.keys() & names) if moved else 0.0
            self._step_family(fam, pattern, names, items[pattern], read, now, counting)
        for pattern in self._fams.keys() - groups.keys():
            self._step_family(self._fams[pattern], pattern, set(), 0, 0, now, counting)

    def _step_family(
        self,
        fam: _Family,
        pattern: str,
        names: set[str],
        items: int,
        read: float,
        now: float,
        counting: bool,
    ) -> None:
        fresh = names - fam.members
        if not counting:
            # Discovery is still walking (or the server restarted): a rising
            # count is us finding members, not the server making them.
            fam.history = History(self.th.history)
        elif fam.history is not None and fam.history.points:
            fam.added += len(fresh)
            fam.gone += len(fam.members - names)
            fam.read += read
        if fresh:
            expiring = sum(1 for n in fresh if _expires(self.queues[n].last))
            fam.newest = (expiring, len(fresh))
        fam.members = names
        assert fam.history is not None
        fam.history.add(
            Sample(
                name=pattern,
                kind=Kind.OTHER,
                depth=len(names),
                total_in=fam.added,
                total_out=fam.gone + round(fam.read),
                info={"items": items},
            ),
            now,
        )

    def _judge_all(self, now: float, reported: set[str]) -> None:
        judged: dict[str, Judgement] = {}
        hidden = self._hidden(reported)
        for name, history in self.queues.items():
            if name not in hidden:
                facts = _facts(history, self._leaking("q:" + name))
                judged["q:" + name] = judge(history.points, self.th, facts)
        for pattern, fam in self._fams.items():
            assert fam.history is not None
            facts = self._family_facts(fam, self._leaking("f:" + pattern))
            judged["f:" + pattern] = judge(fam.history.points, self.th, facts)
        for key, judgement in judged.items():
            old = self._since.get(key)
            if old is None or old[0] != judgement.verdict:
                began = judgement.began
                self._since[key] = (judgement.verdict, now if began is None else began)
        for key in self._since.keys() - judged.keys():
            del self._since[key]
        self._judged = judged

    def _leaking(self, key: str) -> bool:
        held = self._since.get(key)
        return held is not None and held[0] is Verdict.LEAK

    def _hidden(self, reported: set[str]) -> set[str]:
        """Names with no row of their own: family members, queues the server
        no longer lists, and vanished one-offs of a family."""
        hidden = {n for fam in self._fams.values() for n in fam.members}
        hidden.update(self.queues.keys() - reported)
        pattern_of = self.families.pattern
        for name in self._absent:
            if pattern_of(name) in self._fams:
                hidden.add(name)
        return hidden

    def _family_facts(self, fam: _Family, leaking: bool = False) -> Facts:
        samples = [s for n in fam.members if (s := self.queues[n].last) is not None]
        expiring = sum(1 for s in samples if _expires(s))
        new_expiring, new = fam.newest
        if new:
            bounded = new_expiring * 2 >= new
        else:
            bounded = bool(samples) and expiring * 2 >= len(samples)
        return Facts(
            bounded=bounded,
            unit="members",
            gone_word="read or gone",
            expiring=expiring,
            leaking=leaking,
        )

    def family_of(self, name: str) -> str | None:
        """The family pattern ``name`` is folded into, if any."""
        pattern = self.families.pattern(name)
        fam = self._fams.get(pattern)
        return pattern if fam is not None and name in fam.members else None

    def rows(self) -> list[Row]:
        """Queues outside families, and one row per family, worst first."""
        rows = [self._queue_row(key[2:]) for key in self._judged if key[0] == "q"]
        rows += [self._family_row(key[2:]) for key in self._judged if key[0] == "f"]
        rows.sort(key=lambda r: (r.verdict.rank, -(r.members or 0), -r.depth, r.name))
        return rows

    def points_of(self, name: str) -> list[Point]:
        """A copy of the history of a family or queue, oldest first."""
        fam = self._fams.get(name)
        history = fam.history if fam is not None else self.queues.get(name)
        return list(history.points) if history is not None else []

    def member_rows(self, pattern: str) -> list[Row]:
        """The members of one family, deepest first."""
        fam = self._fams.get(pattern)
        names: Iterable[str] = fam.members if fam else ()
        rows = [self._queue_row(n, judge_now=True) for n in names]
        rows.sort(key=lambda r: (-r.depth, r.name))
        return rows

    def _queue_row(self, name: str, judge_now: bool = False) -> Row:
        history = self.queues[name]
        sample = history.last
        assert sample is not None
        if judge_now:
            judgement = judge(history.points, self.th, _facts(history))
        else:
            judgement = self._judged["q:" + name]
        row = _row_from(self.target, name, history.points, self.th, judgement)
        row.kind = sample.kind.value
        row.since = self._since.get("q:" + name, (judgement.verdict, 0.0))[1]
        row.consumers = sample.consumers
        row.sample = sample
        if sample.rate_in is not None:
            row.rate_in = sample.rate_in
        if sample.rate_out is not None:
            row.rate_out = sample.rate_out
        return row

    def _family_row(self, pattern: str) -> Row:
        fam = self._fams[pattern]
        assert fam.history is not None and fam.history.last is not None
        judgement = self._judged["f:" + pattern]
        row = _row_from(self.target, pattern, fam.history.points, self.th, judgement)
        info = fam.history.last.info or {}
        row.depth = int(info.get("items", 0))
        row.members = len(fam.members)
        row.kind = _family_kind(self.queues[n].last for n in fam.members)
        row.since = self._since["f:" + pattern][1]
        return row


def _expires(sample: Sample | None) -> bool:
    return sample is not None and (sample.ttl is not None or sample.bounded)


def _facts(history: History, leaking: bool = False) -> Facts:
    return Facts(
        consumed_before=history.consumed_before,
        bounded=_expires(history.last),
        leaking=leaking,
    )


def _row_from(
    target: str, name: str, points: list[Point], th: Thresholds, judgement: Judgement
) -> Row:
    now = points[-1]
    start = now
    for point in reversed(points):
        start = point
        if point.t <= now.t - th.window:
            break
    span = now.t - start.t
    row = Row(target, name, "", now.depth, judgement.verdict, judgement.reason, now.t)
    row.trend = [p.depth for p in points[-TREND_POINTS:]]
    if span > 0:
        row.change_per_min = (now.depth - start.depth) * 60 / span
        row.rate_in = (now.flow_in - start.flow_in) / span
        row.rate_out = (now.flow_out - start.flow_out) / span
    return row


def _family_kind(samples: Iterable[Sample | None]) -> str:
    for sample in samples:
        if sample is not None:
            return sample.kind.value
    return Kind.OTHER.value


def _matcher(patterns: Iterable[str]) -> Callable[[str], object] | None:
    """One compiled test for many fnmatch patterns: ignore lists are checked
    against every name of every poll."""
    parts = [translate(p) for p in patterns]
    return re.compile("|".join(parts)).match if parts else None
