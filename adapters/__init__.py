"""Backend adapters, found by URL scheme through the ``qwatch.adapters``
entry-point group, so a third-party adapter plugs in the same way."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from qwatch.adapters.base import Adapter, TargetError

GROUP = "qwatch.adapters"

# Built-ins, used when the package metadata is missing (running from a
# source tree that was never installed).
_BUILTIN = {
    "redis": "qwatch.adapters.redis:RedisAdapter",
    "rediss": "qwatch.adapters.redis:RedisAdapter",
    "starling": "qwatch.adapters.starling:StarlingAdapter",
    "memcacheq": "qwatch.adapters.starling:StarlingAdapter",
    "kestrel": "qwatch.adapters.starling:StarlingAdapter",
    "amqp": "qwatch.adapters.rabbitmq:RabbitAdapter",
    "amqps": "qwatch.adapters.rabbitmq:RabbitAdapter",
}


def schemes() -> dict[str, str]:
    """Every known scheme and the ``module:Class`` serving it."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def adapter_for(url: str, options: dict[str, Any] | None = None) -> Adapter:
    """A new, unconnected adapter for ``url``.

    Raises:
        TargetError: the scheme is unknown or the URL is malformed.
    """
    scheme = urlsplit(url).scheme.lower()
    known = schemes()
    if scheme not in known:
        names = ", ".join(sorted(known))
        raise TargetError(
            f"{url!r}: unknown scheme {scheme or '(none)'!r}; use {names}"
        )
    module_name, _, attr = known[scheme].partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls: type[Adapter] = getattr(module, attr)
    return cls(url, options)
