"""The README's first two commands: `make demo` installs only what ibwatch needs to
run, `make test` the test and lint tools too. Read from make's
dry run (`make -n`) on a virtual environment that does not exist, so what is
checked is what a fresh machine would run, and nothing is installed."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEV_TOOLS = ("mypy", "ruff", "pytest", "hadolint", "kubernetes-validate", "hypothesis")


def planned(target: str, tmp_path: Path) -> list[str]:
    """The commands `make TARGET` would run on a fresh machine."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-C",
            str(ROOT),
            target,
            f"VENV={tmp_path / 'venv'}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [line for line in commands if "pip install" in line and "--upgrade pip" not in line]


def test_make_demo_installs_the_package_without_any_extra(tmp_path: Path) -> None:
    commands = planned("demo", tmp_path)
    assert installs(commands), commands
    assert all(".[" not in line for line in installs(commands)), installs(commands)
    assert commands[-1].endswith("ibwatch demo")


def test_make_test_installs_the_dev_extra(tmp_path: Path) -> None:
    assert any("'.[dev]'" in line for line in installs(planned("test", tmp_path)))


def test_no_dev_tool_is_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(">")[0].split("=")[0].split("[")[0].strip() for dep in project["dependencies"]
    }
    assert names.isdisjoint(DEV_TOOLS)
