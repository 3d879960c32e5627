"""Name families: queue names that differ only in ids fold into one pattern.

``celery-task-meta-6f1c...`` and ``celery-task-meta-0a9e...`` are both
``celery-task-meta-{uuid}``; Workling's ``report_workers:generate:<md5>`` is
``report_workers:generate:{hex}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

_EDGE_L = r"(?<![0-9A-Za-z])"
_EDGE_R = r"(?![0-9A-Za-z])"
_UUID = re.compile(
    _EDGE_L + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
    r"-[0-9a-fA-F]{12}" + _EDGE_R
)
# Long hex (md5, sha1, object ids): at least one digit so words stay words.
_HEX = re.compile(_EDGE_L + r"(?=[a-fA-F]*[0-9])[0-9a-fA-F]{12,}" + _EDGE_R)
# Random tokens such as RabbitMQ's amq.gen-JzTY20BRgKO-HjmUJj0wLg: long runs
# that mix digits with both letter cases.
_RUN = re.compile(r"[A-Za-z0-9_-]{16,}")
_TOKEN = re.compile(r"(?=.*\d)(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9_-]{16,}")
_DIGITS = re.compile(r"\d+")
_PLACEHOLDER = re.compile(r"\{(?:uuid|hex|id|n)\}")


def pattern_of(name: str) -> str:
    """The family pattern of ``name``; equal to ``name`` when it holds no id."""
    text = _UUID.sub("{uuid}", name)
    text = _HEX.sub("{hex}", text)
    text = _RUN.sub(_token, text)
    parts = _PLACEHOLDER.split(text)
    marks = _PLACEHOLDER.findall(text)
    parts = [_DIGITS.sub("{n}", part) for part in parts]
    out = parts[0]
    for mark, part in zip(marks, parts[1:], strict=True):
        out += mark + part
    return out


def _token(match: re.Match[str]) -> str:
    """Replace the longest id-like tail of a run, keeping a word prefix."""
    run = match.group()
    head = ""
    while run:
        cut = run.find("-")
        word = run[:cut] if cut >= 0 else ""
        if not (word.isalpha() and word.islower()) and _TOKEN.fullmatch(run):
            return head + "{id}"
        if cut < 0:
            break
        head, run = head + run[: cut + 1], run[cut + 1 :]
    return match.group()


class Families:
    """Maps names to family patterns, with explicit patterns taking priority.

    Args:
        explicit: fnmatch patterns from config; a name matching one belongs to
            that pattern's family whatever ids it holds.
    """

    def __init__(self, explicit: Iterable[str] = ()) -> None:
        self.explicit = tuple(explicit)
        self._cache: dict[str, str] = {}

    def pattern(self, name: str) -> str:
        """The pattern for ``name``, cached since names repeat every poll."""
        found = self._cache.get(name)
        if found is None:
            found = self._compute(name)
            self._cache[name] = found
        return found

    def forget(self, name: str) -> None:
        """Drop a name that is no longer tracked, so the cache stays bounded."""
        self._cache.pop(name, None)

    def _compute(self, name: str) -> str:
        for explicit in self.explicit:
            if fnmatchcase(name, explicit):
                return explicit
        return pattern_of(name)

    def matches(self, pattern: str, name: str) -> bool:
        """True when ``name`` is a member of the family ``pattern``."""
        return name != pattern and self.pattern(name) == pattern
