"""Prometheus metrics from the same rows the dashboard and ``qwatch check`` read.

After each poll the loop freezes what it needs into a :class:`Frame`; a scrape
(on the HTTP server's thread) reads only frames, never a tracker that the
loop may be changing.

Cardinality stays bounded: a family is one series however many members it
has, and plain queues are capped per target at ``max_queues``, worst verdict
and deepest first; how many were left out is itself a metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from qwatch.hooks import Hooks
from qwatch.poller import Watch
from qwatch.tracker import Row
from qwatch.verdicts import Verdict


@dataclass(frozen=True, slots=True)
class Frame:
    """One target as of its last poll."""

    target: str
    up: bool
    polls: int
    errors: int
    poll_time: float | None
    last_poll: float | None
    queues: tuple[Row, ...] = ()
    families: tuple[Row, ...] = ()
    tracked: int = 0
    """Plain queues qwatch tracks on this target (outside families)."""
    left_out: int = 0
    """Plain queues not exported because of ``max_queues``."""


@dataclass(slots=True)
class _Counts:
    polls: int = 0
    errors: int = 0
    rows: tuple[list[Row], list[Row]] = field(default_factory=lambda: ([], []))


class Exporter:
    """A prometheus-client collector over every watched target.

    Args:
        max_queues: most plain queues per target to export.
        hooks: the run's hooks, whose counts are exported too.
    """

    def __init__(self, max_queues: int = 200, hooks: Hooks | None = None) -> None:
        self.max_queues = max_queues
        self.hooks = hooks
        self.frames: dict[str, Frame] = {}
        self._counts: dict[str, _Counts] = {}

    def registry(self) -> CollectorRegistry:
        """A registry holding only this exporter (no process metrics)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def update(self, watch: Watch) -> None:
        """Freeze ``watch``'s state after a poll (a Watch listener)."""
        status = watch.status
        counts = self._counts.setdefault(status.name, _Counts())
        counts.polls += 1
        if status.error is not None:
            counts.errors += 1
        else:
            rows = watch.tracker.rows()
            families = [r for r in rows if r.is_family]
            counts.rows = ([r for r in rows if not r.is_family], families)
        queues, families = counts.rows
        # Replacing the whole frame is one reference swap: a scrape sees the
        # old frame or the new one, never half of each.
        self.frames[status.name] = Frame(
            target=status.name,
            up=status.error is None,
            polls=counts.polls,
            errors=counts.errors,
            poll_time=status.poll_time,
            last_poll=status.last_poll,
            queues=tuple(queues[: self.max_queues]),
            families=tuple(families),
            tracked=len(queues),
            left_out=max(0, len(queues) - self.max_queues),
        )

    def collect(self) -> Iterator[Metric]:
        """Every metric, built from the frames at scrape time."""
        frames = list(self.frames.values())
        yield from _target_metrics(frames)
        yield from _queue_metrics(frames)
        yield from _family_metrics(frames)
        yield _verdicts(frames)
        if self.hooks is not None:
            yield from _hook_metrics(self.hooks)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _target_metrics(frames: list[Frame]) -> Iterator[Metric]:
    up = _gauge("qwatch_target_up", "1 when the last poll worked.", ["target"])
    took = _gauge(
        "qwatch_poll_duration_seconds", "How long the last poll took.", ["target"]
    )
    last = _gauge(
        "qwatch_last_poll_timestamp_seconds", "When the last poll worked.", ["target"]
    )
    polls = CounterMetricFamily("qwatch_polls", "Polls tried.", labels=["target"])
    errors = CounterMetricFamily(
        "qwatch_poll_errors", "Polls that failed.", labels=["target"]
    )
    tracked = _gauge(
        "qwatch_queues_tracked", "Plain queues outside families.", ["target"]
    )
    left = _gauge(
        "qwatch_queues_not_exported",
        "Plain queues left out by max_queues (least urgent first).",
        ["target"],
    )
    for f in frames:
        labels = [f.target]
        up.add_metric(labels, 1.0 if f.up else 0.0)
        if f.poll_time is not None:
            took.add_metric(labels, f.poll_time)
        if f.last_poll is not None:
            last.add_metric(labels, f.last_poll)
        polls.add_metric(labels, f.polls)
        errors.add_metric(labels, f.errors)
        tracked.add_metric(labels, f.tracked)
        left.add_metric(labels, f.left_out)
    yield from (up, took, last, polls, errors, tracked, left)


def _queue_metrics(frames: list[Frame]) -> Iterator[Metric]:
    labels = ["target", "queue"]
    depth = _gauge("qwatch_queue_depth", "Items held.", [*labels, "kind"])
    change = _gauge(
        "qwatch_queue_change_per_minute", "Change of depth over the window.", labels
    )
    rate_in = _gauge("qwatch_queue_in_per_second", "Items going in.", labels)
    rate_out = _gauge("qwatch_queue_out_per_second", "Items going out.", labels)
    consumers = _gauge("qwatch_queue_consumers", "Consumers attached.", labels)
    for f in frames:
        for row in f.queues:
            key = [f.target, row.name]
            depth.add_metric([*key, row.kind], row.depth)
            _maybe(change, key, row.change_per_min)
            _maybe(rate_in, key, row.rate_in)
            _maybe(rate_out, key, row.rate_out)
            _maybe(consumers, key, row.consumers)
    yield from (depth, change, rate_in, rate_out, consumers)


def _family_metrics(frames: list[Frame]) -> Iterator[Metric]:
    labels = ["target", "family"]
    members = _gauge(
        "qwatch_family_members", "Queues in the family.", [*labels, "kind"]
    )
    items = _gauge("qwatch_family_items", "Items over all members.", labels)
    change = _gauge(
        "qwatch_family_members_change_per_minute",
        "Change of the member count over the window.",
        labels,
    )
    for f in frames:
        for row in f.families:
            key = [f.target, row.name]
            members.add_metric([*key, row.kind], row.members or 0)
            items.add_metric(key, row.depth)
            _maybe(change, key, row.change_per_min)
    yield from (members, items, change)


def _verdicts(frames: list[Frame]) -> Metric:
    """Every verdict of every row, 1 for the current one: a rule can then ask
    ``qwatch_verdict{verdict="LEAK"} == 1`` and ``for:`` works across polls."""
    gauge = _gauge(
        "qwatch_verdict",
        "1 for the current verdict of a queue or family, else 0.",
        ["target", "name", "type", "verdict"],
    )
    for f in frames:
        for kind, rows in (("queue", f.queues), ("family", f.families)):
            for row in rows:
                for verdict in Verdict:
                    value = 1.0 if row.verdict is verdict else 0.0
                    gauge.add_metric([f.target, row.name, kind, verdict.value], value)
    return gauge


def _hook_metrics(hooks: Hooks) -> Iterator[Metric]:
    sent = CounterMetricFamily(
        "qwatch_hook_deliveries", "Alerts delivered.", labels=["hook"]
    )
    failed = CounterMetricFamily(
        "qwatch_hook_failures", "Deliveries that failed.", labels=["hook"]
    )
    dropped = CounterMetricFamily(
        "qwatch_hook_dropped", "Alerts not delivered.", labels=["hook", "reason"]
    )
    for name, stats in hooks.stats.items():
        sent.add_metric([name], stats.delivered)
        failed.add_metric([name], stats.failed)
        for reason in ("rate", "full"):
            dropped.add_metric([name, reason], stats.dropped.get(reason, 0))
    yield from (sent, failed, dropped)


def _maybe(gauge: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        gauge.add_metric(labels, value)


def series_count(text: str) -> int:
    """Samples in an exposition text (for tests and the benchmark)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(len(m.samples) for m in text_string_to_metric_families(text))
