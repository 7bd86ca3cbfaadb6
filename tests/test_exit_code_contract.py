"""Exit 0 means every build is AVAILABLE and nothing else (DESIGN.md, Contracts):
`watcher.wait.exit_code` holds it itself, whatever the run's other flags say."""

from __future__ import annotations

from watcher.engine import RunResult
from watcher.wait import EXIT_AVAILABLE, exit_code


def test_a_run_with_no_build_at_all_is_never_exit_0() -> None:
    assert exit_code(RunResult(watches={})) != EXIT_AVAILABLE
