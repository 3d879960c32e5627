"""Management API rows to qwatch samples, and node rows to server facts.

Pure functions: the numbers mapping is pinned down by table tests without a
broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qwatch.model import Kind, Sample

OUT_COUNTERS = ("ack", "deliver_no_ack", "get_no_ack")
"""Counters of messages that left for good: acked, or taken without ack.
``deliver``/``get`` with manual ack are left out, since a nack or a peek
puts the message back."""

BOUND_ARGS = {
    "x-expires": "expires",
    "x-message-ttl": "message-ttl",
    "x-max-length": "max-length",
    "x-max-length-bytes": "max-length-bytes",
}
"""Queue arguments (and their policy keys) under which the broker removes
messages or the queue by itself."""

DEAD_LETTER = ("x-dead-letter-exchange", "x-dead-letter-routing-key")


def sample_from(row: Mapping[str, Any], name: str, now: float, stats: bool) -> Sample:
    """One queue row as a :class:`Sample`.

    Runs once per queue per poll (5,000 rows in a few tens of ms), hence
    plain lookups rather than generic helpers.

    Args:
        name: the qwatch name (``vhost/queue`` when every vhost is watched).
        now: wall-clock time of the poll, for idle seconds.
        stats: the broker keeps message rates; a missing ``message_stats``
            then means nothing flowed yet (zero), not "unknown".
    """
    get = row.get
    unacked = _int(get("messages_unacknowledged"))
    depth = _int(get("messages"))
    if depth is None:
        depth = (_int(get("messages_ready")) or 0) + (unacked or 0)
    total_in, total_out, rate_in, rate_out = _flows(get("message_stats"), stats)
    bounds = (
        bounds_of(row) if get("arguments") or get("effective_policy_definition") else {}
    )
    idle = idle_seconds(get("idle_since"), now)
    consumers = _int(get("consumers"))
    return Sample(
        name=name,
        kind=Kind.QUEUE,
        depth=depth,
        total_in=total_in,
        total_out=total_out,
        rate_in=rate_in,
        rate_out=rate_out,
        consumers=consumers,
        unacked=unacked,
        bytes=_int(get("message_bytes")),
        ttl=_queue_ttl(bounds.get("expires"), idle, consumers),
        idle=idle,
        bounded=bool(bounds),
        info=_info(row, bounds),
    )


def bounds_of(row: Mapping[str, Any]) -> dict[str, int]:
    """The limits under which the broker drops messages or the queue itself.

    Queue arguments win over the effective policy, as in the broker.
    """
    args: Mapping[str, Any] = row.get("arguments") or {}
    policy: Mapping[str, Any] = row.get("effective_policy_definition") or {}
    found: dict[str, int] = {}
    for arg, key in BOUND_ARGS.items():
        value = args.get(arg, policy.get(key))
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[key] = int(value)
    return found


def idle_seconds(since: Any, now: float) -> float | None:
    """Seconds since ``idle_since``; both the ISO and the older
    ``YYYY-MM-DD HH:MM:SS`` (UTC) forms are read."""
    if not isinstance(since, str) or not since:
        return None
    try:
        stamp = datetime.fromisoformat(since)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return max(0.0, now - stamp.timestamp())


def server_facts(
    nodes: list[dict[str, Any]], overview: Mapping[str, Any]
) -> dict[str, Any]:
    """Memory against the high watermark, summed over running nodes."""
    running = [n for n in nodes if n.get("running", True)]
    used = sum(_int(n.get("mem_used")) or 0 for n in running)
    limit = sum(_int(n.get("mem_limit")) or 0 for n in running)
    facts: dict[str, Any] = {
        "version": overview.get("rabbitmq_version"),
        "cluster": overview.get("cluster_name"),
        "memory_used": used,
        "memory_limit": limit,
        "memory_share": used / limit if limit else None,
        "memory_alarm": any(bool(n.get("mem_alarm")) for n in running),
        "nodes": [
            {k: n.get(k) for k in ("name", "mem_used", "mem_limit", "mem_alarm")}
            for n in nodes
        ],
    }
    return facts


def _info(row: Mapping[str, Any], bounds: dict[str, int]) -> dict[str, Any]:
    args: Mapping[str, Any] = row.get("arguments") or {}
    info: dict[str, Any] = {
        "vhost": row.get("vhost"),
        "queue": row.get("name"),
        "type": row.get("type"),
        "durable": row.get("durable"),
        "auto_delete": row.get("auto_delete"),
        "exclusive": row.get("exclusive"),
        "state": row.get("state"),
        "ready": _int(row.get("messages_ready")),
        "idle_since": row.get("idle_since"),
        "arguments": dict(args),
    }
    if bounds:
        info["bounds"] = bounds
    dead = {k: args[k] for k in DEAD_LETTER if k in args}
    policy: Mapping[str, Any] = row.get("effective_policy_definition") or {}
    if "dead-letter-exchange" in policy and not dead:
        dead["x-dead-letter-exchange"] = policy["dead-letter-exchange"]
    if dead:
        info["dead_letter"] = dead
    return info


def _queue_ttl(
    expires_ms: int | None, idle: float | None, consumers: Any
) -> float | None:
    """Seconds until ``x-expires`` deletes the queue; its clock runs while
    the queue is unused, and a consumer stops it."""
    if expires_ms is None or consumers:
        return None
    return max(0.0, expires_ms / 1000 - (idle or 0.0))


def _flows(
    flows: Any, stats: bool
) -> tuple[int | None, int | None, float | None, float | None]:
    """(total in, total out, rate in, rate out) from ``message_stats``."""
    if not isinstance(flows, Mapping) or not flows:
        zero = 0 if stats else None
        return zero, zero, None, None
    total_in = _int(flows.get("publish")) or 0
    total_out = 0
    for key in OUT_COUNTERS:
        total_out += _int(flows.get(key)) or 0
    rate_in = _rate_of(flows.get("publish_details"))
    rates = [_rate_of(flows.get(key + "_details")) for key in OUT_COUNTERS]
    known = [r for r in rates if r is not None]
    return total_in, total_out, rate_in, (sum(known) if known else None)


def _rate_of(details: Any) -> float | None:
    if not isinstance(details, Mapping):
        return None
    rate = details.get("rate")
    return float(rate) if isinstance(rate, int | float) else None


def _int(value: Any) -> int | None:
    if type(value) is int:  # the common case, checked first for speed
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
