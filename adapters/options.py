"""Adapter options declared as data, and the parsers that check them.

Each adapter lists the options it reads (name, parser, one-line doc) and the
URL query keys its client library reads from the URL itself. A target's
options and URL are checked against those lists when the target is built,
so a misspelt key or a bad value is one clear line before anything connects.
Parsers take a TOML value or URL-query text alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from qwatch.adapters.base import TargetError, mask_url

Parse = Callable[[Any], Any]
"""Turns a TOML value or query text into a typed value; ValueError says why."""


@dataclass(frozen=True, slots=True)
class Option:
    """One setting an adapter reads."""

    parse: Parse
    doc: str
    """What it changes, in one line."""
    in_url: bool = False
    """May also be given as a URL query key (``?name=value``)."""


Options = Mapping[str, Option]


class OptionError(TargetError):
    """One option or query key is unknown or has a bad value."""

    def __init__(self, url: str, key: str, reason: str, in_url: bool) -> None:
        field = f"query key {key!r}" if in_url else f"options.{key}"
        super().__init__(f"{mask_url(url)}: {field}: {reason}")
        self.key, self.reason, self.in_url = key, reason, in_url


def check_options(
    url: str, options: Mapping[str, Any], declared: Options, url_keys: Options
) -> dict[str, Any]:
    """Declared options from the URL query, overlaid by ``options``, typed.

    ``url_keys`` are read by the client library from the URL itself: their
    values are checked here and left in the URL.

    Raises:
        OptionError: naming the first unknown key or bad value.
    """
    given: dict[str, tuple[Any, bool]] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key in url_keys:
            _parse(url, key, value, url_keys[key], True)
        elif key in declared and declared[key].in_url:
            given[key] = (value, True)
        else:
            raise OptionError(url, key, _unknown_query(key, declared, url_keys), True)
    for key, value in options.items():
        if key not in declared:
            raise OptionError(url, key, "unknown key" + _hint(key, declared), False)
        given[key] = (value, False)
    return {k: _parse(url, k, v, declared[k], q) for k, (v, q) in given.items()}


def _parse(url: str, key: str, value: Any, option: Option, in_url: bool) -> Any:
    try:
        return option.parse(value)
    except (TypeError, ValueError) as exc:
        raise OptionError(url, key, str(exc), in_url) from None


def _unknown_query(key: str, declared: Options, url_keys: Options) -> str:
    if key in declared:
        return "not read from the URL; set it in the target's options in qwatch.toml"
    known = [*url_keys, *(k for k, o in declared.items() if o.in_url)]
    near = get_close_matches(key, [*known, *declared], 1)
    if near and near[0] not in known:
        return f"unknown; did you mean {near[0]!r} (set in options in qwatch.toml)?"
    if near:
        return f"unknown; did you mean {near[0]!r}?"
    if known:
        return f"unknown; known: {', '.join(sorted(known))}"
    return "unknown; this URL takes no query keys (options go in qwatch.toml)"


def _hint(key: str, declared: Options) -> str:
    near = get_close_matches(key, declared, 1)
    if near:
        return f"; did you mean {near[0]!r}?"
    return f"; known: {', '.join(sorted(declared))}" if declared else ""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``2m``, ``1h30m`` or ``500ms``.

    Raises:
        ValueError: with a one-line message.
    """
    total, pos = 0.0, 0
    text = text.strip().lower()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None:
            raise ValueError(f"{text!r} is not a duration; try 60s, 2m or 1h")
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if not text or total <= 0:
        raise ValueError(f"{text!r} is not a positive duration; try 60s, 2m or 1h")
    return total


def duration(value: Any) -> float:
    """Seconds from a number or text such as ``5s``, ``500ms`` or ``2m``."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError(f"expected a duration like 5s or 500ms, got {value!r}")


def whole(least: int) -> Parse:
    """A parser for a whole number no smaller than ``least``."""

    def parse(value: Any) -> int:
        found = value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            found = int(value)
        if isinstance(found, bool) or not isinstance(found, int) or found < least:
            raise ValueError(f"expected a whole number >= {least}, got {value!r}")
        return found

    return parse


def number(value: Any) -> float:
    """A positive number, kept as plain seconds or counts."""
    try:
        found = float(value) if not isinstance(value, bool) else 0.0
    except (TypeError, ValueError):
        found = 0.0
    if not found > 0:  # also refuses nan
        raise ValueError(f"expected a positive number, got {value!r}")
    return found


def fraction(value: Any) -> float:
    """A number strictly between 0 and 1."""
    try:
        found = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        found = -1.0
    if not 0 < found < 1:
        raise ValueError(f"expected a number between 0 and 1, got {value!r}")
    return found


FLAGS = {"1": True, "true": True, "yes": True, "on": True}
FLAGS |= {"0": False, "false": False, "no": False, "off": False}


def flag(value: Any) -> bool:
    """true or false (in a URL also 1/0, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    word = FLAGS.get(str(value).strip().lower()) if isinstance(value, str) else None
    if word is None:
        raise ValueError(f"expected true or false, got {value!r}")
    return word


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def names(value: Any) -> list[str]:
    """A list of strings, or in a URL one comma-separated string."""
    if isinstance(value, str):
        return [n for n in value.split(",") if n]
    if isinstance(value, list | tuple) and all(isinstance(n, str) for n in value):
        return list(value)
    raise ValueError(f"expected a list of names, got {value!r}")


def choice(*words: str) -> Parse:
    """A parser for one of ``words`` (any case)."""

    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in words:
            return value.strip().lower()
        raise ValueError(f"expected one of {', '.join(words)}, got {value!r}")

    return parse


def http_url(value: Any) -> str:
    """An http:// or https:// URL with a host; its password never shown."""
    given = text(value)
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"expected an http:// or https:// URL, got {mask_url(given)!r}"
        )
    return given
