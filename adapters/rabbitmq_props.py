"""AMQP message properties to JSON-safe data and back, losslessly.

Drain files are JSON, but AMQP headers may hold byte arrays, timestamps and
decimals. Those are tagged (``{"$bytes": base64}``, ``{"$time": seconds}``,
``{"$decimal": text}``) so a restore publishes the very same properties.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiormq import spec
from aiormq.abc import DeliveredMessage
from qwatch.adapters.base import Item

PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "message_type",
    "user_id",
    "app_id",
    "cluster_id",
)
"""Every basic.properties field; only those the message carries are kept."""


def item_from(message: DeliveredMessage) -> Item:
    """An :class:`Item` holding the body and everything the broker sent."""
    props = message.header.properties
    meta: dict[str, Any] = {
        "properties": properties_to_json(props),
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "redelivered": bool(getattr(message.delivery, "redelivered", False)),
    }
    return Item(body=bytes(message.body), meta=meta)


def properties_to_json(props: spec.Basic.Properties) -> dict[str, Any]:
    """The properties the message has set, as JSON-safe values."""
    out: dict[str, Any] = {}
    for name in PROPERTY_NAMES:
        value = getattr(props, name, None)
        if value is not None:
            out[name] = to_json(value)
    return out


def properties_from_json(data: Mapping[str, Any] | None) -> spec.Basic.Properties:
    """Rebuild basic.properties saved by :func:`properties_to_json`."""
    values = {k: from_json(v) for k, v in (data or {}).items() if k in PROPERTY_NAMES}
    return spec.Basic.Properties(**values)


def to_json(value: Any) -> Any:
    """A JSON-safe form of one AMQP field value."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return {"$time": int(stamp.timestamp())}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    # pamqp decodes nothing else; keep unknowns readable rather than failing a drain
    return str(value)


def from_json(value: Any) -> Any:
    """Undo :func:`to_json`."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, raw = next(iter(value.items()))
        if tag == "$bytes":
            # pamqp encodes bytearray as an AMQP byte array; plain bytes it refuses
            return bytearray(base64.b64decode(raw))
        if tag == "$time":
            return datetime.fromtimestamp(raw, tz=UTC)
        if tag == "$decimal":
            return Decimal(raw)
    return {k: from_json(v) for k, v in value.items()}
