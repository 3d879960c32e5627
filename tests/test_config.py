"""qwatch.toml: where it is found, and one clear line for every kind of mistake.

Each message is checked whole: it must name the file, the key and the fault.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from qwatch.adapters.rabbitmq import RabbitAdapter
from qwatch.adapters.starling import StarlingAdapter

from qwatch.config import ConfigError, find_config, load_config, parse_config
from qwatch.layers import read_env, resolve, settings_from
from qwatch.targets import build_watch

QWATCH = str(Path(sys.executable).parent / "qwatch")
GOOD = """
interval = "2s"
[targets.cache]
url = "redis://127.0.0.1:6379/0"
"""


def write(folder: Path, text: str, name: str = "qwatch.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_found_by_explicit_path_then_working_folder_then_user_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit path wins; else ./qwatch.toml; else $XDG_CONFIG_HOME/qwatch."""
    work, home = tmp_path / "work", tmp_path / "xdg"
    work.mkdir()
    env = {"XDG_CONFIG_HOME": str(home)}
    monkeypatch.chdir(work)
    assert find_config(None, env) is None
    user = write(home / "qwatch", GOOD)
    assert find_config(None, env) == user
    local = write(work, GOOD)
    assert find_config(None, env) == Path("qwatch.toml")
    assert local.is_file()
    explicit = write(tmp_path, GOOD, "other.toml")
    assert find_config(explicit, env) == explicit


def test_user_folder_defaults_to_dot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no XDG_CONFIG_HOME the user file is ~/.config/qwatch/qwatch.toml."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / ".config" / "qwatch", GOOD)
    config = load_config(None, {})
    assert config.path == path
    assert config.settings["interval"] == 2.0


def test_no_file_is_an_empty_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing found is not an error: flags and variables still work."""
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert config.path is None and config.targets == {} and config.settings == {}


def test_a_full_file_is_read_into_typed_values(tmp_path: Path) -> None:
    """Durations become seconds, silences carry their target and end."""
    path = write(
        tmp_path,
        """
        interval = "5s"
        window = 90
        ignore = ["_kombu.*"]
        on_alert = "notify-send 'queue leak'"
        webhook = "https://hooks.example.org/qwatch"
        hook_timeout = "3s"
        listen = ":9900"
        watch = ["cache"]

        [targets.cache]
        url = "redis://127.0.0.1:6379/0"
        read_only = true
        production = true
        interval = "10s"
        min_growth = 50
        patterns = ["job-*-result"]
        options = { scan_count = 500 }

        [targets.broker]
        url = "amqp://guest@127.0.0.1:5672/"
        password_env = "BROKER_PASSWORD"

        [[silence]]
        pattern = "celery-task-meta-*"

        [[silence]]
        pattern = "rpc.reply-*"
        target = "broker"
        until = 2030-01-01T00:00:00Z
        """,
    )
    config = load_config(path, {})
    assert config.settings["window"] == 90.0
    assert config.settings["listen"] == "0.0.0.0:9900"
    assert config.targets["cache"]["interval"] == 10.0
    assert config.targets["cache"]["options"] == {"scan_count": 500}
    assert config.targets["broker"]["password_env"] == "BROKER_PASSWORD"
    first, second = config.silences
    assert (first.target, first.pattern, first.until) == (
        "*",
        "celery-task-meta-*",
        None,
    )
    assert (second.target, second.pattern) == ("broker", "rpc.reply-*")
    assert second.until == 1893456000.0


BAD_FILES = [
    ("intervall = '5s'", "intervall: unknown key; did you mean 'interval'?"),
    ("colour = 'red'", "colour: unknown key"),
    ("interval = 'soon'", "interval: 'soon' is not a duration; try 60s, 2m or 1h"),
    ("interval = -1", "interval: expected a duration like 5s or 2m, got -1"),
    ("interval = true", "interval: expected a duration like 5s or 2m, got True"),
    ("min_growth = 0", "min_growth: expected a whole number >= 1, got 0"),
    ("min_members = 1", "min_members: expected a whole number >= 2, got 1"),
    ("hook_rate = 2.5", "hook_rate: expected a whole number >= 1, got 2.5"),
    ("read_only = 'yes'", "read_only: expected true or false, got 'yes'"),
    ("ignore = 'x*'", "ignore: expected a list of strings, got 'x*'"),
    ("patterns = [1]", "patterns: expected a list of strings, got [1]"),
    ("on_alert = ''", "on_alert: expected a non-empty string, got ''"),
    (
        "on_alert = 'notify \"oops'",
        "on_alert: cannot split 'notify \"oops' into words: No closing quotation",
    ),
    (
        "webhook = 'ftp://x'",
        "webhook: expected an http:// or https:// URL, got 'ftp://x'",
    ),
    (
        "listen = 'localhost'",
        "listen: expected HOST:PORT such as 127.0.0.1:9721, got 'localhost'",
    ),
    (
        "listen = 'h:70000'",
        "listen: expected HOST:PORT such as 127.0.0.1:9721, got 'h:70000'",
    ),
    ("targets = 'redis://x'", "targets: expected [targets.NAME] tables"),
    ("[targets]\ncache = 5", "targets.cache: expected a table"),
    (
        "[targets.cache]\ninterval = '1s'",
        "targets.cache.url: missing; every target needs a URL",
    ),
    (
        "[targets.cache]\nurl = 'redis://x'\nproducton = true",
        "targets.cache.producton: unknown key; did you mean 'production'?",
    ),
    (
        "[targets.cache]\nurl = 'redis://x'\nproduction = 1",
        "targets.cache.production: expected true or false, got 1",
    ),
    (
        "[targets.cache]\nurl = 'redis://x'\noptions = 3",
        "targets.cache.options: expected a table, got 3",
    ),
    (
        "[targets.cache]\nurl = 'mongodb://x'",
        "targets.cache.url: 'mongodb://x': unknown scheme 'mongodb'; use amqp, "
        "amqps, kestrel, memcacheq, redis, rediss, starling",
    ),
    (
        "[targets.cache]\nurl = 'redis://host:port/0'",
        "targets.cache.url: 'redis://host:port/0': the port is not a number",
    ),
    (
        "[targets.cache]\nurl = 'cache-server'",
        "targets.cache.url: 'cache-server' is not a URL; try redis://host:6379/0",
    ),
    (
        "[targets.cache]\nurl = 'redis://:pw@x'\npassword_env = 'PW'",
        "targets.cache.url: holds a password and password_env names another; keep one",
    ),
    (
        "[targets.cache]\nurl = 'redis://x'\noptions = { scan_cout = 10 }",
        "targets.cache.options.scan_cout: unknown key; did you mean 'scan_count'?",
    ),
    (
        "[targets.cache]\nurl = 'redis://x'\noptions = { scan_count = -1 }",
        "targets.cache.options.scan_count: expected a whole number >= 1, got -1",
    ),
    (
        "[targets.cache]\nurl = 'redis://x/abc'",
        "targets.cache.url: redis://x/abc: the database must be a number, e.g. /0 "
        "(got '/abc')",
    ),
    (
        "[targets.cache]\nurl = 'redis://x/0?scan_cout=5'",
        "targets.cache.url: redis://x/0?scan_cout=5: query key 'scan_cout': "
        "unknown; did you mean 'scan_count' (set in options in qwatch.toml)?",
    ),
    (
        "[targets.mq]\nurl = 'amqp://h'\noptions = { stats_interval = 'soon' }",
        "targets.mq.options.stats_interval: 'soon' is not a duration; try 60s, "
        "2m or 1h",
    ),
    (
        "[targets.mq]\nurl = 'amqp://h'\noptions = { management_url = 'ftp://a:pw@m' }",
        "targets.mq.options.management_url: expected an http:// or https:// URL, "
        "got 'ftp://a:***@m'",
    ),
    (
        "[targets.q]\nurl = 'starling://h'\noptions = { max_stats_share = 1.5 }",
        "targets.q.options.max_stats_share: expected a number between 0 and 1, got 1.5",
    ),
    (
        "watch = ['cache']",
        "watch: no target named 'cache'",
    ),
    ("silence = 'x'", "silence: expected a list of patterns or tables"),
    (
        "silence = [3]",
        "silence[0]: expected a pattern or { pattern = ..., target = ... }",
    ),
    (
        "[[silence]]\ntarget = 'cache'",
        "silence[0]: expected a pattern or { pattern = ..., target = ... }",
    ),
    ("[[silence]]\npattern = 'x'\nfor = '1h'", "silence[0].for: unknown key"),
    (
        "[[silence]]\npattern = 'x'\ntarget = 1",
        "silence[0].target: expected a target name, got 1",
    ),
    (
        "[[silence]]\npattern = 'x'\nuntil = 'tomorrow'",
        "silence[0].until: expected a date-time or epoch seconds, got 'tomorrow'",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_every_bad_value_names_file_key_and_fault(
    tmp_path: Path, text: str, message: str
) -> None:
    """One line: ``FILE: KEY: what is wrong``."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value) == f"{path}: {message}"
    assert "\n" not in str(caught.value)


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    """The parser's own position is kept."""
    path = write(tmp_path, "interval = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value) == (
        f"{path}: not valid TOML: Invalid value (at line 1, column 12)"
    )


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    """A missing explicit file and a file that is not UTF-8 each say so."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml", {})
    assert str(caught.value) == f"{tmp_path / 'nope.toml'}: no such config file"
    path = tmp_path / "latin.toml"
    path.write_bytes(b"interval = '\xe9'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value).startswith(f"{path}: cannot read: 'utf-8' codec")


BAD_ENV = [
    (
        {"QWATCH_INTERVAL": "often"},
        "environment variable QWATCH_INTERVAL: 'often' is not a duration; "
        "try 60s, 2m or 1h",
    ),
    (
        {"QWATCH_MIN_GROWTH": "lots"},
        "environment variable QWATCH_MIN_GROWTH: expected a whole number, got 'lots'",
    ),
    (
        {"QWATCH_MIN_MEMBERS": "1"},
        "environment variable QWATCH_MIN_MEMBERS: expected a whole number >= 2, got 1",
    ),
    (
        {"QWATCH_READ_ONLY": "maybe"},
        "environment variable QWATCH_READ_ONLY: expected 1/0, true/false or "
        "yes/no, got 'maybe'",
    ),
    (
        {"QWATCH_WEBHOOK": "localhost:80"},
        "environment variable QWATCH_WEBHOOK: expected an http:// or https:// URL, "
        "got 'localhost:80'",
    ),
    (
        {"QWATCH_LISTEN": "9721"},
        "environment variable QWATCH_LISTEN: expected HOST:PORT such as "
        "127.0.0.1:9721, got '9721'",
    ),
]


@pytest.mark.parametrize(("env", "message"), BAD_ENV)
def test_every_bad_variable_is_named(env: dict[str, str], message: str) -> None:
    """A QWATCH_* variable is checked like the key it stands for."""
    with pytest.raises(ConfigError) as caught:
        read_env(env)
    assert str(caught.value) == message


BAD_FLAGS = [
    (
        {"webhook": "nowhere"},
        "--webhook: expected an http:// or https:// URL, got 'nowhere'",
    ),
    ({"listen": "x"}, "--listen: expected HOST:PORT such as 127.0.0.1:9721, got 'x'"),
    (
        {"on_alert": "say 'hi"},
        '--on-alert: cannot split "say \'hi" into words: No closing quotation',
    ),
    ({"max_queues": 0}, "--max-queues: expected a whole number >= 1, got 0"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_every_bad_flag_is_named(flags: dict[str, object], message: str) -> None:
    """Flags are checked like config keys and named as flags."""
    config = parse_config({})
    with pytest.raises(ConfigError) as caught:
        settings_from(config, {}, flags)
    assert str(caught.value) == message


def test_unknown_target_word_lists_the_known_ones(tmp_path: Path) -> None:
    """A typo in a target name says which names exist."""
    config = load_config(write(tmp_path, GOOD), {})
    with pytest.raises(ConfigError) as caught:
        resolve(["cahce"], config, {}, {}, {})
    path = tmp_path / "qwatch.toml"
    assert str(caught.value) == (
        f"'cahce' is neither a URL nor a target in {path} (cache)"
    )
    with pytest.raises(ConfigError) as caught:
        resolve(["cache-server"], parse_config({}), {}, {}, {})
    assert (
        str(caught.value) == "'cache-server' is not a URL and no qwatch.toml defines it"
    )


def test_missing_password_variable_is_named_only_when_the_target_is_used(
    tmp_path: Path,
) -> None:
    """A target whose password is not in the environment stops only runs that
    watch it; the others go on."""
    path = write(
        tmp_path,
        GOOD + "[targets.broker]\nurl = 'amqp://guest@h:5672/'\n"
        "password_env = 'BROKER_PW'\n",
    )
    config = load_config(path, {})
    (spec,) = resolve(["cache"], config, {}, {}, {})
    assert spec.url == "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigError) as caught:
        resolve(["broker"], config, {}, {}, {})
    assert str(caught.value) == (
        f"{path}: targets.broker.password_env: environment variable BROKER_PW "
        "is not set"
    )


def test_good_options_reach_the_adapters_typed(tmp_path: Path) -> None:
    """Durations in options read like every other qwatch time."""
    path = write(
        tmp_path,
        "[targets.mq]\nurl = 'amqp://h'\noptions = { stats_interval = '1s' }\n"
        "[targets.q]\nurl = 'starling://h'\noptions = { timeout = '500ms' }\n",
    )
    specs = resolve([], load_config(path, {}), {}, {}, {})
    mq, q = (build_watch(spec).adapter for spec in specs)
    assert isinstance(mq, RabbitAdapter) and mq.stats_interval == 1.0
    assert isinstance(q, StarlingAdapter) and q.client.timeout == 0.5


def test_cli_gives_one_line_and_exit_3_for_a_bad_option(tmp_path: Path) -> None:
    """A misspelt adapter option stops the run before anything connects."""
    path = write(
        tmp_path,
        "[targets.cache]\nurl = 'redis://127.0.0.1:1/0'\n"
        "options = { scan_cout = 10 }\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWATCH_")}
    done = subprocess.run(
        [QWATCH, "check", "--config", str(path), "cache", "--for", "1s"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr == (
        f"qwatch: {path}: targets.cache.options.scan_cout: unknown key; "
        "did you mean 'scan_count'?\n"
    )


def test_cli_gives_one_line_and_exit_3_for_bad_config(tmp_path: Path) -> None:
    """Through the real command: one line on stderr, no traceback, exit 3."""
    path = write(tmp_path, "[targets.cache]\nurl = 'redis://x'\nintervl = '1s'\n")
    env = {**os.environ, "QWATCH_CONFIG": str(path)}
    env.pop("QWATCH_INTERVAL", None)
    done = subprocess.run(
        [QWATCH, "check", "cache", "--for", "1s"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr == (
        f"qwatch: {path}: targets.cache.intervl: unknown key; "
        "did you mean 'interval'?\n"
    )
