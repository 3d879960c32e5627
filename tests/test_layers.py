"""Settings in layers: qwatch.toml, then QWATCH_* variables, then flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qwatch.cli_common import load_run
from qwatch.config import parse_config
from qwatch.layers import read_env, resolve, settings_from

FILE: dict[str, Any] = {
    "interval": "3s",
    "window": "2m",
    "ignore": ["_kombu.*"],
    "patterns": ["top-*"],
    "on_alert": "from-file",
    "hook_rate": 4,
    "targets": {
        "cache": {
            "url": "redis://127.0.0.1:6379/0",
            "interval": "7s",
            "min_growth": 40,
            "patterns": ["own-*"],
            "production": True,
        },
        "plain": {"url": "redis://127.0.0.1:6379/1"},
        "locked": {"url": "redis://127.0.0.1:6379/2", "read_only": True},
        "secret": {
            "url": "amqp://ops@broker.internal:5672/jobs",
            "password_env": "BROKER_PW",
        },
    },
}


def specs(words: list[str], env: dict[str, str], flags: dict[str, Any]) -> Any:
    config = parse_config(FILE)
    return resolve(words, config, read_env(env), flags, env)


def test_target_values_override_the_top_level() -> None:
    """A target's own interval and thresholds beat the file's top level."""
    (cache,) = specs(["cache"], {}, {})
    (plain,) = specs(["plain"], {}, {})
    assert cache.interval == 7.0 and plain.interval == 3.0
    assert cache.thresholds.min_growth == 40 and plain.thresholds.min_growth == 5
    assert cache.thresholds.window == plain.thresholds.window == 120.0
    assert cache.production and not plain.production


def test_variables_override_the_file_and_flags_override_both() -> None:
    """QWATCH_INTERVAL beats the file (even a target's own value); --interval
    beats QWATCH_INTERVAL."""
    env = {"QWATCH_INTERVAL": "9s", "QWATCH_WINDOW": "30s"}
    (cache,) = specs(["cache"], env, {})
    assert cache.interval == 9.0 and cache.thresholds.window == 30.0
    (cache,) = specs(["cache"], env, {"interval": 1.5, "window": None})
    assert cache.interval == 1.5 and cache.thresholds.window == 30.0


def test_run_settings_follow_the_same_order() -> None:
    """on_alert: file, then QWATCH_ON_ALERT, then --on-alert."""
    config = parse_config(FILE)
    assert settings_from(config, {}, {}).on_alert == "from-file"
    env = read_env({"QWATCH_ON_ALERT": "from-env", "QWATCH_HOOK_RATE": "8"})
    assert settings_from(config, env, {}).on_alert == "from-env"
    assert settings_from(config, env, {}).hook_rate == 8
    given = settings_from(config, env, {"on_alert": "from-flag"})
    assert given.on_alert == "from-flag" and given.hook_rate == 8
    assert settings_from(parse_config({}), {}, {}).hook_rate == 10


def test_patterns_and_ignore_add_up_across_layers() -> None:
    """Lists join: the file's top level, the target, QWATCH_*, then flags."""
    env = {"QWATCH_PATTERNS": "env-a, env-b", "QWATCH_IGNORE": "tmp:*"}
    (cache,) = specs(["cache"], env, {"patterns": ("flag-*",)})
    assert cache.patterns == ("top-*", "own-*", "env-a", "env-b", "flag-*")
    assert cache.ignore == ("_kombu.*", "tmp:*")
    (url,) = specs(["redis://127.0.0.1:6379/5"], {}, {})
    assert url.ignore == ("_kombu.*",) and url.patterns == ("top-*",)


def test_read_only_can_only_be_switched_on() -> None:
    """QWATCH_READ_ONLY=0 never unlocks a target the file marks read-only."""
    (locked,) = specs(["locked"], {"QWATCH_READ_ONLY": "0"}, {})
    assert locked.read_only
    (plain,) = specs(["plain"], {"QWATCH_READ_ONLY": "yes"}, {})
    assert plain.read_only
    (plain,) = specs(["plain"], {}, {"read_only": True})
    assert plain.read_only
    (plain,) = specs(["plain"], {}, {"read_only": None})
    assert not plain.read_only


def test_password_comes_from_the_environment() -> None:
    """password_env puts the variable's value into the URL, quoted."""
    (secret,) = specs(["secret"], {"BROKER_PW": "p@ss/word"}, {})
    assert secret.url == "amqp://ops:p%40ss%2Fword@broker.internal:5672/jobs"
    assert secret.label == "secret"


def test_which_targets_run_with_no_words() -> None:
    """No words: QWATCH_TARGETS, else the file's watch list, else every target."""
    config = parse_config({**FILE, "watch": ["plain", "cache"]})
    names = [s.name for s in resolve([], config, {}, {}, {})]
    assert names == ["plain", "cache"]
    env = read_env({"QWATCH_TARGETS": "locked redis://127.0.0.1:6379/9"})
    chosen = resolve([], config, env, {}, {})
    assert [s.label for s in chosen] == ["locked", "redis://127.0.0.1:6379/9"]
    every = resolve([], parse_config({k: v for k, v in FILE.items()}), {}, {}, {
        "BROKER_PW": "x"
    })  # fmt: skip
    assert [s.name for s in every] == ["cache", "plain", "locked", "secret"]


def test_a_url_given_twice_is_watched_once() -> None:
    """Repeating a target does not start two pollers on one server."""
    assert len(specs(["cache", "cache"], {}, {})) == 1


def test_load_run_reads_qwatch_config_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_run: QWATCH_CONFIG finds the file; --config beats QWATCH_CONFIG."""
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("interval = '4s'\n[targets.x]\nurl = 'redis://h:1/0'\n")
    b.write_text("interval = '6s'\n[targets.x]\nurl = 'redis://h:2/0'\n")
    for var in [v for v in os.environ if v.startswith("QWATCH_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("QWATCH_CONFIG", str(a))
    run = load_run(("x",))
    assert run.specs[0].interval == 4.0 and run.settings.config.path == a
    run = load_run(("x",), b, interval=None)
    assert run.specs[0].interval == 6.0 and run.specs[0].url == "redis://h:2/0"
    run = load_run(("x",), b, interval=0.5)
    assert run.specs[0].interval == 0.5


def test_help_states_the_order() -> None:
    """Every watching command's --help says flags, then QWATCH_*, then file."""
    qwatch = str(Path(sys.executable).parent / "qwatch")
    for command in ("check", "serve", "watch"):
        done = subprocess.run(
            [qwatch, command, "--help"], capture_output=True, text=True, timeout=60
        )
        text = " ".join(done.stdout.split())
        assert done.returncode == 0
        assert (
            "Settings: flags, then QWATCH_* environment variables, then qwatch.toml"
            in text
        )
        assert "else ./qwatch.toml, else the user config folder" in text
