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
API too; any other query key (``heartbeat``, ``name``...) goes to aio-pika.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from qwatch.adapters.base import TargetError, mask_url

DEFAULT_PORTS = {"amqp": (5672, 15672, "http"), "amqps": (5671, 15671, "https")}
TLS_KEYS = ("cafile", "certfile", "keyfile")


def _flag(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _names(text: Any) -> list[str]:
    if isinstance(text, list | tuple):
        return [str(n) for n in text]
    return [n for n in str(text).split(",") if n]


def _positive(kind: Callable[[str], float]) -> Callable[[Any], float]:
    def parse(text: Any) -> float:
        value = kind(str(text))
        if value <= 0:
            raise ValueError(f"expected a positive number, got {text!r}")
        return value

    return parse


OPTION_PARSERS: dict[str, Callable[[Any], Any]] = {
    "management_url": str,
    "vhost": str,
    "queues": _names,
    "page_size": _positive(int),
    "stats_interval": _positive(float),
    "verify_tls": _flag,
    "cafile": str,
    "certfile": str,
    "keyfile": str,
}
"""Every setting qwatch reads, from options or the URL query, and its type."""


def target_options(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Options from the URL query, overlaid by ``options``, each checked.

    ``no_verify_ssl=1`` (aio-pika's spelling) means ``verify_tls = false``.

    Raises:
        TargetError: a value has the wrong type, in one line.
    """
    query = dict(parse_qsl(urlsplit(url).query))
    raw: dict[str, Any] = {k: v for k, v in query.items() if k in OPTION_PARSERS}
    if "no_verify_ssl" in query:
        raw.setdefault("verify_tls", query["no_verify_ssl"] in ("0", ""))
    raw.update(options)
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        parse = OPTION_PARSERS.get(key)
        try:
            checked[key] = parse(value) if parse else value
        except ValueError as exc:
            raise TargetError(f"RabbitMQ option {key!r}: {exc}") from None
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
            if k not in OPTION_PARSERS and k != "no_verify_ssl"
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
        parts = urlsplit(str(given))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = mask_url(str(given))
            raise TargetError(f"management_url {shown!r}: expected http(s)://host")
        return str(given).rstrip("/")
    _, port, http = DEFAULT_PORTS[scheme]
    return f"{http}://{_host(host)}:{port}"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
