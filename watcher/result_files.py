"""Where a one-shot wait hands its result on to CI besides stdout: GitHub's step
outputs ($GITHUB_OUTPUT), a GitLab dotenv report (`--dotenv`) and a Markdown summary
(`--summary`, e.g. $GITHUB_STEP_SUMMARY).

Each is written whatever the outcome: from the wait's report when there is one
(`ResultFiles.write`, called by `watcher.wait`), else, once the command has ended
without one (a pipeline that could not be started, an internal error, a signal before
the wait), from `no_result(exit_code, so_far)`: the status and exit code, and what the
run had already done (`SoFar`: the builds it started, the errors it met), through the
same writers. A file that cannot be written, for whatever reason, costs a warning on
stderr, never the exit code. Light to import: the CLI makes one before any command
runs, and the writers, which bring botocore's modules along, are imported only when
something is written.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass
class SoFar:
    """What a run had done before it ended without a result: the files must say it,
    or a build it started runs on unseen and a retried job starts another."""

    started: list[str] = field(default_factory=list)
    """The builds `ibwatch start` started, in order."""
    started_from: dict[str, str] = field(default_factory=dict)
    """Each of those builds -> the pipeline that started it (`start --no-wait
    --output json` names both, whatever the outcome)."""
    client_token: str | None = None
    """The token those starts were made with: given back with `--client-token`, it
    returns the same builds instead of starting new ones."""
    errors: list[dict[str, str]] = field(default_factory=list)
    """`{arn, message}`: a pipeline that could not be started, an ARN refused."""
    pipelines: list[str] = field(default_factory=list)
    """The pipelines `ibwatch start` was given: with several, no one build is *the*
    build (`build_arn` stays empty), and getting them back takes all of them again."""

    def error(self, arn: str, message: str) -> None:
        self.errors.append({"arn": arn, "message": message})


@dataclass
class ResultFiles:
    github_output: Path | None = None
    dotenv: Path | None = None
    """Replaced (written to a temporary file, then renamed over it)."""
    summary: Path | None = None
    """Appended to, after what the file holds."""
    so_far: SoFar = field(default_factory=SoFar, init=False)
    """Filled in as the run goes, for `no_result`."""
    reported: bool = field(default=False, init=False)
    """Whether a result went to the files: the wait sets it by writing its report,
    and the CLI writes `no_result` only when nothing did."""

    def write(self, report: Mapping[str, Any], stderr: TextIO) -> None:
        from watcher.dotenv_report import write_dotenv
        from watcher.github_output import write_github_output
        from watcher.markdown_summary import append_summary

        self.reported = True
        writers: list[tuple[str, Path | None, Callable[[Path, Mapping[str, Any]], list[str]]]] = [
            ("GITHUB_OUTPUT", self.github_output, write_github_output),
            ("--dotenv", self.dotenv, write_dotenv),
            ("--summary", self.summary, append_summary),
        ]
        warnings = []
        for name, path, writer in writers:
            if path is None:
                continue
            try:
                warnings += writer(path, report)
            except Exception as exc:  # a bug in a writer: one file lost, never the result
                warnings.append(f"{name} {path}: not written: {type(exc).__name__}: {exc}")
        for warning in warnings:
            stderr.write(f"ibwatch: warning: {warning}\n")
        stderr.flush()


def no_result(exit_code: int, so_far: SoFar | None = None) -> dict[str, Any]:
    """The report of a run that ended before it had a result: the shape of
    `watcher.wait.build_report`'s, with no image in it (every real result has one
    per ARN waited on), so every writer says "nothing" its own way ({} and [], an
    empty value) and the summary says why there is nothing; with `so_far`, the
    builds already started, the client token and the errors met."""
    try:
        interrupted: str | None = signal.Signals(exit_code - 128).name
    except ValueError:
        interrupted = None
    known = so_far or SoFar()
    return {
        "status": "INTERRUPTED" if interrupted else "ERROR",
        "exit_code": exit_code,
        "timed_out": False,
        "interrupted": interrupted,
        "images": [],
        "started": list(known.started),
        "client_token": known.client_token,
        "errors": [dict(error) for error in known.errors],
        "pipelines": list(known.pipelines),
    }
