"""Where a RabbitMQ target lives: AMQP URL, vhost scope, management URL.

``amqp://user:pass@host:5672/vhost`` watches one vhost; with no vhost in the
path (``amqp://host`` or ``amqp://host/``) every vhost the user can see is
watched. The management API is derived as ``http://host:15672`` (``https``
and 15671 for ``amqps``) unless ``options["management_url"]`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from qwatch.adapters.base import TargetError

DEFAULT_PORTS = {"amqp": (5672, 15672, "http"), "amqps": (5671, 15671, "https")}


@dataclass(frozen=True, slots=True)
class RabbitTarget:
    """A parsed RabbitMQ target."""

    scheme: str
    host: str
    port: int
    user: str
    password: str
    vhost: str | None
    """The one vhost watched, or None for every vhost the user can see."""
    management_url: str
    """Base URL of the management API, without credentials or a trailing /."""
    verify_tls: bool = True

    @classmethod
    def parse(cls, url: str, options: Mapping[str, Any]) -> RabbitTarget:
        """Read ``url`` and the adapter options.

        Raises:
            TargetError: the URL is not an amqp(s) URL with a host.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise TargetError(f"{url!r}: expected amqp://user:pass@host:5672/vhost")
        try:
            port = parts.port or DEFAULT_PORTS[scheme][0]
        except ValueError as exc:
            raise TargetError(f"{url!r}: bad port ({exc})") from None
        vhost = _vhost(parts.path, options.get("vhost"))
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=vhost,
            management_url=_management_url(scheme, parts.hostname, options),
            verify_tls=bool(options.get("verify_tls", True)),
        )

    def amqp_url(self, vhost: str) -> str:
        """The AMQP URL of one vhost, for aio-pika."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        netloc = f"{auth}@{_host(self.host)}:{self.port}"
        path = "/" + quote(vhost, safe="")
        return urlunsplit((self.scheme, netloc, path, "", ""))

    def name_of(self, vhost: str, queue: str) -> str:
        """The name qwatch shows: bare within one vhost, else ``vhost/queue``.

        The default vhost ``/`` keeps bare names, so the common single-vhost
        broker reads naturally even when every vhost is watched.
        """
        if self.vhost is not None or vhost == "/":
            return queue
        return f"{vhost}/{queue}"

    def split(self, name: str) -> tuple[str, str]:
        """``(vhost, queue)`` for a name made by :meth:`name_of`.

        Names seen in a poll are looked up by the adapter first; this is the
        fallback for names typed by hand.
        """
        if self.vhost is not None:
            return self.vhost, name
        vhost, sep, queue = name.partition("/")
        return (vhost, queue) if sep and vhost else ("/", name)


def _vhost(path: str, option: Any) -> str | None:
    if option is not None:
        return str(option)
    # "amqp://host" and "amqp://host/" both mean "every vhost"; "/%2f" is "/"
    raw = path[1:] if path.startswith("/") else path
    return unquote(raw) if raw else None


def _management_url(scheme: str, host: str, options: Mapping[str, Any]) -> str:
    given = options.get("management_url")
    if given:
        return str(given).rstrip("/")
    _, port, http = DEFAULT_PORTS[scheme]
    return f"{http}://{_host(host)}:{port}"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
