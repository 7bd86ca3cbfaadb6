"""What the user sees when something goes wrong that no command handles: a damaged
state file is theirs to fix (exit 2, what to do); anything else is a bug (exit 70,
one line, the traceback only at --log-level debug). Never 0, never 1."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import anyio
import pytest

from tests.cli.in_thread import ibwatch
from watcher import cli

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"


def damaged_state_file(tmp_path: Path) -> Path:
    """A real state file with 4 KiB of garbage written over its middle."""
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE filler (x TEXT)")
        db.executemany("INSERT INTO filler VALUES (?)", [("x" * 100,)] * 3000)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(os.urandom(4096))
    return path


async def test_a_damaged_state_file_exits_2_naming_it_and_what_to_do(tmp_path: Path) -> None:
    state = damaged_state_file(tmp_path)
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'[watch]\narns = ["{ARN}"]\n[state]\npath = "{state}"\n[server]\nlisten = "127.0.0.1:0"\n'
    )
    with anyio.fail_after(30):
        done = await ibwatch("run", "--config", str(config))
    assert done.returncode == 2
    assert f"ibwatch: {state}: the state file is damaged (" in done.stderr
    assert "move it aside to start afresh" in done.stderr
    assert "Traceback" not in done.stderr


def explode(_: object) -> int:
    raise ExceptionGroup("unhandled errors in a TaskGroup", [RuntimeError("the bug")])


def test_an_unexpected_error_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No real bug is left to trigger it, so the command itself is made to raise."""
    monkeypatch.setattr(cli, "_wait", explode)
    assert cli.main(["wait-until-available", ARN]) == 70
    stderr = capsys.readouterr().err
    assert stderr.splitlines() == [
        "ibwatch: internal error: RuntimeError: the bug (a bug; please report it, with the "
        "traceback --log-level debug prints)"
    ]


def test_the_traceback_of_an_unexpected_error_shows_at_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_wait", explode)
    assert cli.main(["wait-until-available", "--log-level", "debug", ARN]) == 70
    stderr = capsys.readouterr().err
    assert "Traceback" in stderr
    assert "RuntimeError: the bug" in stderr
