"""Where a one-shot wait hands its result on to CI besides stdout: GitHub's step
outputs ($GITHUB_OUTPUT), a GitLab dotenv report (`--dotenv`) and a Markdown summary
(`--summary`, e.g. $GITHUB_STEP_SUMMARY).

Each is written whatever the outcome: from the wait's report when there is one
(`ResultFiles.write`, called by `watcher.wait`), else, once the command has ended
without one (a pipeline that could not be started, an internal error, a signal before
the wait), from `no_result(exit_code)`: the status and exit code alone, through the
same writers. A file that cannot be written costs a warning on stderr, never the exit
code. Light to import: the CLI makes one before any command runs, and the writers,
which bring botocore's modules along, are imported only when something is written.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass
class ResultFiles:
    github_output: Path | None = None
    dotenv: Path | None = None
    """Replaced (written to a temporary file, then renamed over it)."""
    summary: Path | None = None
    """Appended to, after what the file holds."""
    reported: bool = field(default=False, init=False)
    """Whether a result went to the files: the wait sets it by writing its report,
    and the CLI writes `no_result` only when nothing did."""

    def write(self, report: Mapping[str, Any], stderr: TextIO) -> None:
        from watcher.dotenv_report import write_dotenv
        from watcher.github_output import write_github_output
        from watcher.markdown_summary import append_summary

        self.reported = True
        warnings = []
        if self.github_output is not None:
            warnings += write_github_output(self.github_output, report)
        if self.dotenv is not None:
            warnings += write_dotenv(self.dotenv, report)
        if self.summary is not None:
            warnings += append_summary(self.summary, report)
        for warning in warnings:
            stderr.write(f"ibwatch: warning: {warning}\n")
        stderr.flush()


def no_result(exit_code: int) -> dict[str, Any]:
    """The report of a run that ended before it had a result: the shape of
    `watcher.wait.build_report`'s, with no image in it (every real result has one
    per ARN waited on), so every writer says "nothing" its own way ({} and [], an
    empty value) and the summary says why there is nothing."""
    try:
        interrupted: str | None = signal.Signals(exit_code - 128).name
    except ValueError:
        interrupted = None
    return {
        "status": "INTERRUPTED" if interrupted else "ERROR",
        "exit_code": exit_code,
        "timed_out": False,
        "interrupted": interrupted,
        "images": [],
    }
