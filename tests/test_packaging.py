"""The wheel carries every adapter, and adapters never pull in Textual."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = sorted(
    p.stem for p in (ROOT / "adapters").glob("*.py") if not p.stem.startswith("_")
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("qwatch-*.whl")
    return found


def test_wheel_holds_every_adapter_under_qwatch(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for stem in ADAPTERS:
        assert f"qwatch/adapters/{stem}.py" in names
    assert not any(n.startswith("adapters/") for n in names), "no top-level adapters"
    assert "qwatch/starling/__init__.py" in names


def test_adapters_import_from_the_wheel_without_textual(
    wheel: Path, tmp_path: Path
) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        "import sys, importlib\n"
        f"for m in {ADAPTERS!r}: importlib.import_module('qwatch.adapters.' + m)\n"
        "import qwatch.tracker, qwatch.check\n"
        "assert 'textual' not in sys.modules, 'textual was imported'\n"
        "assert 'adapters' not in sys.modules\n"
        "print(qwatch.adapters.__file__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(tmp_path))
