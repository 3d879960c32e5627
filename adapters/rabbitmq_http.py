"""The RabbitMQ management HTTP API, read-only and asking only for what qwatch uses.

A full ``GET /api/queues`` costs the broker seconds at a few thousand queues;
``columns=`` cuts the payload to the fields below, and one request is read
instead of pages (each page makes the broker list and sort every queue again).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
from qwatch.adapters.base import TargetError

log = logging.getLogger(__name__)

QUEUE_COLUMNS = (
    "name",
    "vhost",
    "type",
    "durable",
    "auto_delete",
    "exclusive",
    "arguments",
    "effective_policy_definition",
    "state",
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "message_bytes",
    "consumers",
    "idle_since",
    "message_stats.publish",
    "message_stats.publish_details.rate",
    "message_stats.ack",
    "message_stats.ack_details.rate",
    "message_stats.deliver_no_ack",
    "message_stats.deliver_no_ack_details.rate",
    "message_stats.get_no_ack",
    "message_stats.get_no_ack_details.rate",
)
"""Every queue field qwatch reads; nothing else is fetched."""

NODE_COLUMNS = ("name", "mem_used", "mem_limit", "mem_alarm", "uptime", "running")
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""Errors of a connection that was open and is no more."""
MAX_PAGE = 500
"""The management API refuses larger pages."""


class Unreachable(TargetError):
    """The management API did not answer (refused, timed out, no plugin)."""


class ManagementApi:
    """A small async client for the few management endpoints qwatch reads.

    Args:
        base_url: e.g. ``http://host:15672``; credentials in it win over
            ``user``/``password``.
        page_size: read queues in pages of this size instead of one request.
    """

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        verify: ssl.SSLContext | bool = True,
        timeout: float | httpx.Timeout = 30.0,
        page_size: int | None = None,
    ) -> None:
        base, auth = _split_auth(base_url, (user, password))
        self.base_url = base
        self.page_size = min(page_size, MAX_PAGE) if page_size else None
        self._client = httpx.AsyncClient(
            base_url=base, auth=auth, verify=verify, timeout=timeout
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        """GET one endpoint and decode its JSON; errors become one line."""
        response = await self._send(path, params)
        if response.status_code == 401:
            raise TargetError(f"{self.base_url}: login refused (user or password)")
        if response.status_code == 403:
            raise TargetError(
                f"{self.base_url}{path}: refused (403); the user needs the "
                "'monitoring' tag or permissions on the vhost"
            )
        if response.status_code == 404:
            raise TargetError(f"{self.base_url}{path}: not found (404)")
        if response.status_code >= 400:
            raise TargetError(f"{self.base_url}{path}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise Unreachable(f"{self.base_url}: answer is not JSON") from None

    async def _send(self, path: str, params: dict[str, Any]) -> httpx.Response:
        for attempt in (1, 2):
            try:
                return await self._client.get(path, params=params or None)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise Unreachable(f"{self.base_url}: {_why(exc)}") from None
            except DROPPED as exc:
                # A pooled keep-alive connection died with the broker or
                # its plugin; only a fresh connection tells which it is.
                if attempt == 2:
                    raise TargetError(f"{self.base_url}{path}: {_why(exc)}") from None
            except httpx.HTTPError as exc:
                raise TargetError(f"{self.base_url}{path}: {_why(exc)}") from None
        raise AssertionError("unreachable")

    async def overview(self) -> dict[str, Any]:
        """Version and statistics settings of the broker."""
        data = await self.get(
            "/api/overview",
            columns="rabbitmq_version,management_version,rates_mode,cluster_name",
        )
        return data if isinstance(data, dict) else {}

    async def nodes(self) -> list[dict[str, Any]]:
        """Memory and uptime of every node."""
        data = await self.get("/api/nodes", columns=",".join(NODE_COLUMNS))
        return data if isinstance(data, list) else []

    async def queues(self, vhost: str | None) -> list[dict[str, Any]]:
        """Every queue of ``vhost`` (or of every vhost), only the used columns."""
        path = "/api/queues" if vhost is None else f"/api/queues/{_seg(vhost)}"
        columns = ",".join(QUEUE_COLUMNS)
        if self.page_size is None:
            data = await self.get(path, columns=columns)
            return data if isinstance(data, list) else []
        return await self._paged(path, columns)

    async def _paged(self, path: str, columns: str) -> list[dict[str, Any]]:
        # Limitation: pages are not a consistent view; a queue created or
        # deleted between pages can shift another onto the next page.
        rows: list[dict[str, Any]] = []
        page, pages = 1, 1
        while page <= pages:
            data = await self.get(
                path, columns=columns, page=page, page_size=self.page_size
            )
            rows.extend(data.get("items", []))
            pages = int(data.get("page_count", 1))
            page += 1
        return rows

    async def vhost_exists(self, vhost: str) -> bool:
        """True when the vhost is there and visible to the user."""
        try:
            await self.get(f"/api/vhosts/{_seg(vhost)}", columns="name")
        except Unreachable:
            raise
        except TargetError:
            return False
        return True


def _seg(text: str) -> str:
    """One URL path segment: ``/`` and everything else quoted."""
    return quote(text, safe="")


def _split_auth(url: str, default: tuple[str, str]) -> tuple[str, tuple[str, str]]:
    parts = urlsplit(url)
    if parts.username is None:
        return url, default
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    auth = (unquote(parts.username), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=netloc)), auth


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
