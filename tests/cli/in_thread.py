"""A one-shot command (`wait-until-available`, `start`, `check-config`, ...) run by
`watcher.cli.main` in a worker thread of the test's own process, against a simulator
served by the test's event loop.

What it saves is the interpreter's start-up and the imports of a real `ibwatch`
process: about a second of CPU each, paid by every test that only reads an exit code
and the output. The contract a real process alone can show (the exit status the OS
sees, GITHUB_OUTPUT from an inherited environment, signals) keeps real-subprocess
tests of its own; `main` is what the `ibwatch` script runs (`sys.exit(main())`), so
its return value is the exit status. argparse's usage errors leave `main` as
`SystemExit(2)`, which the script would exit with: they are returned as that code.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import anyio.to_thread
import pytest
import structlog

from watcher.cli import main


@dataclass(frozen=True)
class Ran:
    """What a finished command left: named as `subprocess.CompletedProcess` names it."""

    returncode: int
    stdout: str
    stderr: str


async def ibwatch(*argv: str, env: Mapping[str, str] | None = None) -> Ran:
    """`ibwatch ARGV` with `env` added to the environment for the run; GITHUB_OUTPUT
    only when `env` names it, so a CI runner's own never gets a test's outputs."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                return main(list(argv))
            except SystemExit as exc:  # argparse's usage errors: the script exits with it
                if exc.code is None:
                    return 0
                return exc.code if isinstance(exc.code, int) else 1

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GITHUB_OUTPUT", raising=False)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        try:
            # Abandoned if the test gives up waiting (`anyio.fail_after`), so that a
            # command that never ends fails the test at the test's own deadline.
            code = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        finally:
            structlog.reset_defaults()  # main() configured logging for the whole process
    return Ran(code, out.getvalue(), err.getvalue())
