"""Where a RabbitMQ target lives: AMQP URL, vhost scope, management URL, TLS.

``amqp://user:pass@host:5672/vhost`` watches one vhost; with no vhost in the
path (``amqp://host`` or ``amqp://host/``) every vhost the user can see is
watched. The management API is derived as ``http://host:15672`` (``https``
and 15671 for ``amqps``) unless ``management_url`` says otherwise.

Settings may come from the target's ``options`` (qwatch.toml) or from the
URL's query, so a command line alone can say everything:
``amqp://u:p@host/shop?management_url=http://mgmt:8080``. Options from the
config win over the query. The TLS keys are aio-pika's own (``cafile``,
``certfile``, ``keyfile``, ``no_verify_ssl=1``) and apply to the management
API too; the other query keys aio-pika reads (``heartbeat``, ``name``...) go
to it as written, and any other key is refused.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from qwatch.adapters.base import TargetError
from qwatch.adapters.options import (
    Option,
    Options,
    check_options,
    choice,
    duration,
    flag,
    http_url,
    names,
    number,
    text,
    whole,
)

DEFAULT_PORTS = {"amqp": (5672, 15672, "http"), "amqps": (5671, 15671, "https")}
TLS_KEYS = ("cafile", "certfile", "keyfile")


OPTIONS: Options = {
    "management_url": Option(http_url, "Base URL of the management API.", in_url=True),
    "vhost": Option(text, "The one vhost watched, instead of the URL's.", in_url=True),
    "queues": Option(names, "Queues read over AMQP when the API is down.", in_url=True),
    "page_size": Option(
        whole(1), "Read queues in pages of this size instead of one request.", True
    ),
    "stats_interval": Option(
        duration, "How often the broker refreshes its statistics.", in_url=True
    ),
    "verify_tls": Option(flag, "Check the servers' certificates.", in_url=True),
    "cafile": Option(text, "CA file for AMQP and the API.", in_url=True),
    "certfile": Option(text, "Client certificate for AMQP and the API.", in_url=True),
    "keyfile": Option(text, "Client key for AMQP and the API.", in_url=True),
}
"""Every setting qwatch reads, from options or the URL query, and its type."""
AMQP_KEYS: Options = {
    "no_verify_ssl": Option(flag, "1 means verify_tls = false."),
    "heartbeat": Option(whole(0), "AMQP heartbeat in seconds."),
    "timeout": Option(whole(1), "aiormq's own timeout in seconds."),
    "name": Option(text, "Connection name shown by the broker."),
    "auth": Option(choice("plain", "external"), "SASL mechanism."),
    "capath": Option(text, "Folder of CA files."),
    "cadata": Option(text, "CA certificates inline."),
    "interleave": Option(whole(0), "Address families to interleave."),
    "happy_eyeballs_delay": Option(number, "Seconds before trying the next address."),
}
"""Query keys aio-pika and aiormq read from the URL; passed on as written."""


def target_options(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Options from the URL query, overlaid by ``options``, each checked.

    ``no_verify_ssl=1`` (aio-pika's spelling) means ``verify_tls = false``.

    Raises:
        TargetError: a key is unknown or a value is bad, in one line.
    """
    checked = check_options(url, options, OPTIONS, AMQP_KEYS)
    query = dict(parse_qsl(urlsplit(url).query))
    if "no_verify_ssl" in query:
        checked.setdefault("verify_tls", not flag(query["no_verify_ssl"]))
    return checked


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
    """Base URL of the management API, without a trailing /."""
    verify_tls: bool = True
    tls_files: tuple[tuple[str, str], ...] = ()
    """``cafile``/``certfile``/``keyfile`` paths given, for both protocols."""
    amqp_query: tuple[tuple[str, str], ...] = ()
    """Query keys passed on to aio-pika as they were written."""

    @classmethod
    def parse(cls, url: str, options: Mapping[str, Any]) -> RabbitTarget:
        """Read ``url`` and options already checked by :func:`target_options`.

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
        passed = [
            (k, v)
            for k, v in parse_qsl(parts.query)
            if k in AMQP_KEYS and k != "no_verify_ssl"
        ]
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=_vhost(parts.path, options.get("vhost")),
            management_url=_management_url(scheme, parts.hostname, options),
            verify_tls=bool(options.get("verify_tls", True)),
            tls_files=tuple((k, str(options[k])) for k in TLS_KEYS if k in options),
            amqp_query=tuple(passed),
        )

    def amqp_url(self, vhost: str) -> str:
        """The AMQP URL of one vhost, for aio-pika, TLS settings included."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        netloc = f"{auth}@{_host(self.host)}:{self.port}"
        path = "/" + quote(vhost, safe="")
        query = list(self.amqp_query) + list(self.tls_files)
        if not self.verify_tls:
            query.append(("no_verify_ssl", "1"))
        return urlunsplit((self.scheme, netloc, path, urlencode(query), ""))

    def http_verify(self) -> ssl.SSLContext | bool:
        """What httpx should check the management API's certificate with."""
        files = dict(self.tls_files)
        if not files and self.verify_tls:
            return True
        context = ssl.create_default_context(cafile=files.get("cafile"))
        if "certfile" in files:
            context.load_cert_chain(files["certfile"], files.get("keyfile"))
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

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
        return http_url(given).rstrip("/")
    _, port, http = DEFAULT_PORTS[scheme]
    return f"{http}://{_host(host)}:{port}"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
