"""Silences set from the dashboard are saved into qwatch.toml, which keeps the
operator's comments and reads back through the normal loader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qwatch.alerts import Silence
from qwatch.config import ConfigError, load_config
from qwatch.config_write import save_silence

CONFIG = """\
# the operator's own words
[targets.cache]
url = "redis://127.0.0.1:6379/0"  # the result backend
"""


def test_saved_silences_read_back_and_comments_stay(tmp_path: Path) -> None:
    path = tmp_path / "qwatch.toml"
    path.write_text(CONFIG, encoding="utf-8")
    hour = time.time() + 3600
    save_silence(path, Silence("cache", "celery-task-meta-{uuid}", hour))
    save_silence(path, Silence("*", "reply-*", None))
    text = path.read_text(encoding="utf-8")
    assert text.startswith(CONFIG)
    silences = load_config(path).silences
    assert [(s.target, s.pattern) for s in silences] == [
        ("cache", "celery-task-meta-{uuid}"),
        ("*", "reply-*"),
    ]
    assert silences[0].until == pytest.approx(hour, abs=1)
    assert silences[1].until is None


def test_expired_silences_are_dropped_when_one_is_added(tmp_path: Path) -> None:
    path = tmp_path / "qwatch.toml"
    save_silence(path, Silence("cache", "old", time.time() - 10))
    save_silence(path, Silence("cache", "new", None))
    assert [s.pattern for s in load_config(path).silences] == ["new"]


def test_a_broken_file_is_one_line_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "qwatch.toml"
    path.write_text("silence = [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"qwatch.toml: cannot add the silence"):
        save_silence(path, Silence("cache", "x", None))
    assert path.read_text(encoding="utf-8") == "silence = [\n"
