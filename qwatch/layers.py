"""Settings in layers: built-in defaults, then qwatch.toml, then ``QWATCH_*``
environment variables, then command-line flags, each over the one before.

Lists (family patterns, ignore patterns) add up across layers instead of
replacing each other, and ``read_only`` can only be switched on: a stray
variable must never make a read-only production target writable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from qwatch.config import GLOBAL_KEYS, SHARED, Config, ConfigError, target_url
from qwatch.settings import Thresholds
from qwatch.targets import TargetSpec, find_local, parse_url

DEFAULT_INTERVAL = 5.0
DEFAULT_LISTEN = "127.0.0.1:9721"
THRESHOLD_KEYS = ("window", "stall_after", "min_growth", "min_members")
LIST_KEYS = ("patterns", "ignore")


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _yes(text: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "on": True}
    words |= {"0": False, "false": False, "no": False, "off": False, "": False}
    try:
        return words[text.strip().lower()]
    except KeyError:
        raise ValueError(f"expected 1/0, true/false or yes/no, got {text!r}") from None


ENV_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "QWATCH_INTERVAL": ("interval", str),
    "QWATCH_WINDOW": ("window", str),
    "QWATCH_STALL_AFTER": ("stall_after", str),
    "QWATCH_MIN_GROWTH": ("min_growth", _whole),
    "QWATCH_MIN_MEMBERS": ("min_members", _whole),
    "QWATCH_READ_ONLY": ("read_only", _yes),
    "QWATCH_PATTERNS": ("patterns", _words),
    "QWATCH_IGNORE": ("ignore", _words),
    "QWATCH_TARGETS": ("watch", _words),
    "QWATCH_ON_ALERT": ("on_alert", str),
    "QWATCH_WEBHOOK": ("webhook", str),
    "QWATCH_HOOK_TIMEOUT": ("hook_timeout", str),
    "QWATCH_HOOK_RATE": ("hook_rate", _whole),
    "QWATCH_HOOK_REPEAT": ("hook_repeat", str),
    "QWATCH_MAX_QUEUES": ("max_queues", _whole),
    "QWATCH_LISTEN": ("listen", str),
}
"""Environment variable to config key, and how its text becomes a value.
``QWATCH_CONFIG`` names the config file and is read by the caller."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Run-wide settings once every layer is applied."""

    config: Config = field(default_factory=Config)
    on_alert: str | None = None
    """Command run for each alert (no shell)."""
    webhook: str | None = None
    """URL each alert is POSTed to as JSON."""
    hook_timeout: float = 10.0
    """Seconds a hook command or webhook request may take."""
    hook_rate: int = 10
    """Most deliveries per hook per minute; more are dropped and counted."""
    hook_repeat: float = 3600.0
    """Seconds before the same alert is delivered again (across runs too)."""
    max_queues: int = 200
    """Most plain queues per target the exporter shows (families always)."""
    listen: str = DEFAULT_LISTEN
    """HOST:PORT the exporter listens on."""


def read_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Known ``QWATCH_*`` variables, checked like config keys.

    Raises:
        ConfigError: one line naming the variable.
    """
    out: dict[str, Any] = {}
    for var, (key, convert) in ENV_KEYS.items():
        text = env.get(var)
        if text is None or (key != "read_only" and not text.strip()):
            continue
        try:
            out[key] = GLOBAL_KEYS[key](convert(text))
        except ValueError as exc:
            raise ConfigError(f"environment variable {var}: {exc}") from None
    return out


def settings_from(
    config: Config, env: dict[str, Any], flags: dict[str, Any]
) -> Settings:
    """Run-wide settings: flags over environment over file.

    Raises:
        ConfigError: a flag's value is wrong, naming the flag.
    """
    merged = {**config.settings, **env, **_checked_flags(flags)}
    names = {n for n in Settings.__dataclass_fields__ if n != "config"}
    return Settings(config, **{k: v for k, v in merged.items() if k in names})


def _checked_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags given, each checked the way its config key is."""
    out: dict[str, Any] = {}
    for key, value in _set(flags).items():
        parser = GLOBAL_KEYS.get(key)
        try:
            out[key] = parser(value) if parser is not None else value
        except ValueError as exc:
            raise ConfigError(f"--{key.replace('_', '-')}: {exc}") from None
    return out


def resolve(
    words: Sequence[str],
    config: Config,
    env: dict[str, Any],
    flags: dict[str, Any],
    environ: Mapping[str, str] | None = None,
) -> list[TargetSpec]:
    """Target specs for the command-line words (config names or URLs).

    With no words: ``QWATCH_TARGETS``, else the file's ``watch`` list, else
    every target in the file, else the first local server that answers.
    ``environ`` (default ``os.environ``) holds the passwords config names.

    Raises:
        ConfigError: a word is neither a URL nor a configured target.
        TargetError: a URL is malformed, or nothing answered locally.
    """
    chosen = list(words) or list(env.get("watch") or config.settings.get("watch", ()))
    if not chosen:
        chosen = list(config.targets) or [find_local()]
    given = _checked_flags(flags)
    environ = os.environ if environ is None else environ
    return [_spec(word, config, env, given, environ) for word in dict.fromkeys(chosen)]


def _set(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags the user actually gave (click passes None or empty otherwise)."""
    # Identity, not ``in``: 0 == False, and a flag given as 0 must be checked.
    return {k: v for k, v in flags.items() if not (v is None or v is False or v == ())}


def _spec(
    word: str,
    config: Config,
    env: dict[str, Any],
    flags: dict[str, Any],
    environ: Mapping[str, str],
) -> TargetSpec:
    own = config.targets.get(word)
    if own is None:
        own = {"url": _url(word, config)}
        name = ""
    else:
        name = word
        own = {**own, "url": target_url(config, word, environ)}
    layers = [_shared(config.settings), own, env, flags]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    th = _thresholds(merged, name, config)
    lists = {key: _union(layer.get(key, ()) for layer in layers) for key in LIST_KEYS}
    return TargetSpec(
        url=own["url"],
        name=name,
        interval=merged.get("interval", DEFAULT_INTERVAL),
        read_only=any(layer.get("read_only") for layer in layers),
        production=own.get("production", False),
        thresholds=th,
        options=own.get("options", {}),
        patterns=lists["patterns"],
        ignore=lists["ignore"],
    )


def _url(word: str, config: Config) -> str:
    if "://" in word:
        return parse_url(word)
    if config.targets:
        known = ", ".join(sorted(config.targets))
        raise ConfigError(
            f"{word!r} is neither a URL nor a target in {config.where} ({known})"
        )
    raise ConfigError(f"{word!r} is not a URL and no {config.where} defines it")


def _shared(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in GLOBAL_ONLY}


GLOBAL_ONLY = frozenset(GLOBAL_KEYS) - frozenset(SHARED)
"""Top-level keys that are about the run, not about each target."""


def _thresholds(merged: dict[str, Any], name: str, config: Config) -> Thresholds:
    changes = {k: merged[k] for k in THRESHOLD_KEYS if k in merged}
    try:
        return replace(Thresholds(), **changes)
    except ValueError as exc:
        where = f"{config.where}: targets.{name}" if name else "settings"
        raise ConfigError(f"{where}: {exc}") from None


def _union(lists: Any) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for items in lists:
        seen.update(dict.fromkeys(items))
    return tuple(seen)
