"""Targets: which servers to watch, and how the command line names them."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from qwatch.adapters import adapter_for, schemes
from qwatch.adapters import options as adapter_options
from qwatch.adapters.base import Adapter, TargetError, mask_url
from qwatch.poller import Watch
from qwatch.settings import Thresholds
from qwatch.tracker import Tracker

LOCAL_DEFAULTS = (
    "redis://127.0.0.1:6379/0",
    "amqp://guest:guest@127.0.0.1:5672/",
    "starling://127.0.0.1:22122",
)
"""Tried in order when no target is given."""


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One server to watch, as the command line or config names it."""

    url: str
    name: str = ""
    interval: float = 5.0
    """Seconds between polls (a server may stretch it)."""
    read_only: bool = False
    production: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    options: dict[str, Any] = field(default_factory=dict)
    patterns: tuple[str, ...] = ()
    """Explicit family patterns (fnmatch) for this target."""
    ignore: tuple[str, ...] = ()
    """Queue names (fnmatch) this target never tracks."""

    @property
    def label(self) -> str:
        """The name, or the URL with its password masked."""
        return self.name or mask_url(self.url)


def parse_url(text: str) -> str:
    """Check that ``text`` is a target URL qwatch can use; returns it unchanged.

    Raises:
        TargetError: with one line saying what is wrong.
    """
    parts = urlsplit(text)
    if not parts.scheme or "://" not in text:
        raise TargetError(f"{text!r} is not a URL; try redis://host:6379/0")
    if parts.scheme.lower() not in schemes():
        known = ", ".join(sorted(schemes()))
        raise TargetError(f"{text!r}: unknown scheme {parts.scheme!r}; use {known}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise TargetError(f"{mask_url(text)!r}: the port is not a number") from None
    if not parts.hostname:
        raise TargetError(f"{mask_url(text)!r}: no host given")
    check_target(text, {})
    return text


def check_target(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``url``'s adapter would use, checked with the URL's own
    query and path; nothing is built or connected.

    Raises:
        TargetError: one line; an ``OptionError`` names the key.
    """
    module_name, _, attr = schemes()[urlsplit(url).scheme.lower()].partition(":")
    cls: type[Adapter] = getattr(import_module(module_name), attr)
    checked: dict[str, Any] = cls.check_target(url, options)
    return checked


def find_local() -> str:
    """The first local default that accepts a connection.

    Raises:
        TargetError: nothing answered; the message lists what was tried.
    """
    for url in LOCAL_DEFAULTS:
        parts = urlsplit(url)
        try:
            with socket.create_connection((parts.hostname, parts.port), 0.5):
                return url
        except OSError:
            continue
    tried = ", ".join(mask_url(u) for u in LOCAL_DEFAULTS)
    raise TargetError(f"no target given and nothing answered locally (tried {tried})")


def build_watch(spec: TargetSpec) -> Watch:
    """A poll loop for ``spec`` with a fresh tracker."""
    from qwatch.families import Families

    adapter = adapter_for(spec.url, spec.options)
    tracker = Tracker(
        spec.label, spec.thresholds, Families(spec.patterns), ignore=spec.ignore
    )
    return Watch(spec.label, adapter, tracker, spec.interval)


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``2m``, ``1h30m`` or ``500ms``; the adapters'
    time options read the same grammar.

    Raises:
        ValueError: with a one-line message.
    """
    seconds: float = adapter_options.parse_duration(text)
    return seconds
