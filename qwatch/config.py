"""qwatch.toml: where it is found and what each key may hold.

The file is found by explicit path, then ``./qwatch.toml``, then the user config
folder. Every value is checked here, so a bad file fails once, in one line that
names the file, the key and what is wrong. :mod:`qwatch.layers` puts the file
under ``QWATCH_*`` variables and command-line flags.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from qwatch.adapters.base import TargetError
from qwatch.adapters.options import OptionError
from qwatch.alerts import Silence
from qwatch.targets import check_target, parse_duration, parse_url

CONFIG_NAME = "qwatch.toml"


class ConfigError(ValueError):
    """Bad config; the message is one line naming the file, the key and the fault."""


def _duration(value: Any) -> float:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError(f"expected a duration like 5s or 2m, got {value!r}")


def _count(least: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"expected a whole number >= {least}, got {value!r}")
        return value

    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) for v in value
    ):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table, got {value!r}")
    return dict(value)


def _listen(value: Any) -> str:
    host, sep, port = _text(value).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9721, got {value!r}")
    return f"{host or '0.0.0.0'}:{port}"


def _command(value: Any) -> str:
    text = _text(value)
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split {value!r} into words: {exc}") from None
    if not argv:
        raise ValueError(f"expected a command, got {value!r}")
    return str(value)


def _webhook(value: Any) -> str:
    parts = urlsplit(_text(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return str(value)


Parser = Callable[[Any], Any]

SHARED: dict[str, Parser] = {
    "interval": _duration,
    "window": _duration,
    "stall_after": _duration,
    "min_growth": _count(1),
    "min_members": _count(2),
    "read_only": _flag,
    "patterns": _texts,
    "ignore": _texts,
}
"""Keys a target may set and the top level may set for every target."""

TARGET_KEYS: dict[str, Parser] = {
    **SHARED,
    "url": _text,
    "password_env": _text,
    "production": _flag,
    "options": _table,
}

GLOBAL_KEYS: dict[str, Parser] = {
    **SHARED,
    "watch": _texts,
    "on_alert": _command,
    "webhook": _webhook,
    "hook_timeout": _duration,
    "hook_rate": _count(1),
    "hook_repeat": _duration,
    "max_queues": _count(1),
    "listen": _listen,
}
"""Top-level keys besides ``targets`` and ``silence``."""


@dataclass(frozen=True, slots=True)
class Config:
    """A checked config file; values are already typed."""

    path: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    """Top-level values, by key of :data:`GLOBAL_KEYS`."""
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Named targets, each by key of :data:`TARGET_KEYS`, password injected."""
    silences: tuple[Silence, ...] = ()

    @property
    def where(self) -> str:
        """How messages name the file."""
        return str(self.path) if self.path else CONFIG_NAME


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/qwatch/qwatch.toml``, else under ``~/.config``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qwatch" / CONFIG_NAME


def find_config(
    explicit: Path | None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to read: explicit, then working folder, then user folder.

    Raises:
        ConfigError: an explicit path does not exist.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: no such config file")
        return explicit
    for candidate in (Path(CONFIG_NAME), user_config_path(env)):
        if candidate.is_file():
            return candidate
    return None


def load_config(
    explicit: Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Find, read and check the config; an empty one when there is no file.

    Raises:
        ConfigError: unreadable or invalid, in one line.
    """
    env = os.environ if env is None else env
    path = find_config(explicit, env)
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path | None = None) -> Config:
    """Check a parsed TOML document into a :class:`Config`."""
    where = str(path) if path else CONFIG_NAME
    body = {k: v for k, v in raw.items() if k not in ("targets", "silence")}
    settings = _check(body, GLOBAL_KEYS, where, "")
    targets_raw = raw.get("targets", {})
    if not isinstance(targets_raw, dict):
        raise ConfigError(f"{where}: targets: expected [targets.NAME] tables")
    targets = {name: _target(name, value, where) for name, value in targets_raw.items()}
    silences = _silences(raw.get("silence", []), where)
    for name in settings.get("watch", ()):
        if name not in targets:
            raise ConfigError(f"{where}: watch: no target named {name!r}")
    return Config(path, settings, targets, silences)


def _check(
    raw: dict[str, Any], keys: dict[str, Parser], where: str, prefix: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        parser = keys.get(key)
        if parser is None:
            near = get_close_matches(key, keys, 1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"{where}: {prefix}{key}: unknown key{hint}")
        try:
            out[key] = parser(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {prefix}{key}: {exc}") from None
    return out


def _target(name: str, raw: Any, where: str) -> dict[str, Any]:
    prefix = f"targets.{name}."
    if isinstance(raw, str):
        raw = {"url": raw}  # ``name = "redis://..."``: a target that is only a URL
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: targets.{name}: expected a table")
    values = _check(raw, TARGET_KEYS, where, prefix)
    if "url" not in values:
        raise ConfigError(f"{where}: {prefix}url: missing; every target needs a URL")
    try:
        values["url"] = parse_url(values["url"])
    except TargetError as exc:
        raise ConfigError(f"{where}: {prefix}url: {exc}") from None
    _check_options(values["url"], values.get("options", {}), where, prefix)
    if "password_env" in values and urlsplit(values["url"]).password is not None:
        raise ConfigError(
            f"{where}: {prefix}url: holds a password and password_env names "
            "another; keep one"
        )
    return values


def _check_options(url: str, options: dict[str, Any], where: str, prefix: str) -> None:
    """Every option is one the target's adapter reads, with a good value."""
    try:
        check_target(url, options)
    except TargetError as exc:
        if isinstance(exc, OptionError) and not exc.in_url:
            field = f"options.{exc.key}"
            raise ConfigError(f"{where}: {prefix}{field}: {exc.reason}") from None
        raise ConfigError(f"{where}: {prefix}url: {exc}") from None


def target_url(config: Config, name: str, env: Mapping[str, str]) -> str:
    """The URL of configured target ``name``, its password read from ``env``.

    The variable is read only for a target that is used, so a missing
    password of one target never stops a run that watches another.

    Raises:
        ConfigError: the variable ``password_env`` names is not set.
    """
    values = config.targets[name]
    url: str = values["url"]
    var = values.get("password_env")
    if var is None:
        return url
    secret = env.get(var)
    if secret is None:
        raise ConfigError(
            f"{config.where}: targets.{name}.password_env: environment variable "
            f"{var} is not set"
        )
    parts = urlsplit(url)
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:{quote(secret, safe='')}@{host}").geturl()


def _silences(raw: Any, where: str) -> tuple[Silence, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: silence: expected a list of patterns or tables")
    return tuple(_silence(item, f"{where}: silence[{i}]") for i, item in enumerate(raw))


def _silence(item: Any, at: str) -> Silence:
    if isinstance(item, str):
        return Silence("*", item)
    if not isinstance(item, dict) or not isinstance(item.get("pattern"), str):
        raise ConfigError(
            f"{at}: expected a pattern or {{ pattern = ..., target = ... }}"
        )
    unknown = set(item) - {"pattern", "target", "until"}
    if unknown:
        raise ConfigError(f"{at}.{sorted(unknown)[0]}: unknown key")
    target = item.get("target", "*")
    if not isinstance(target, str):
        raise ConfigError(f"{at}.target: expected a target name, got {target!r}")
    return Silence(target, item["pattern"], _until(item.get("until"), at))


def _until(value: Any, at: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(
        f"{at}.until: expected a date-time or epoch seconds, got {value!r}"
    )
