"""`ibwatch check-config` counts what a config watches the way the daemon's
`ibwatch.started` line does: build ARNs, version ARNs, pipelines and sinks (both come
from `watcher.operator_commands.watched_counts`; the started line is read in
tests/deploy/test_monitoring.py and tests/cli/test_daemon_operations.py)."""

from __future__ import annotations

import io
from pathlib import Path

from tests.support import ACCOUNT
from watcher.config import load
from watcher.operator_commands import check_config

HEAD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"


def test_a_config_of_pipelines_and_version_arns_is_not_counted_as_nothing(
    tmp_path: Path,
) -> None:
    """A config of sources only once said "0 ARN(s)", as if it watched nothing."""
    versions = [f"{HEAD}:image/web-base/1.4.0", f"{HEAD}:image/db-base/1.x.x"]
    pipelines = [f"{HEAD}:image-pipeline/nightly", f"{HEAD}:image-pipeline/weekly"]
    pipelines.append("arn:aws:imagebuilder:eu-west-1:123456789012:image-pipeline/*")
    config = tmp_path / "watcher.toml"
    config.write_text(
        f"[watch]\narns = {versions!r}\npipelines = {pipelines!r}\n".replace("'", '"')
        + f'[state]\npath = "{tmp_path / "state.db"}"\n[[sinks]]\ntype = "log"\n'
    )
    out, err = io.StringIO(), io.StringIO()
    assert check_config(load(config), out, err) == 0, err.getvalue()
    assert out.getvalue().rstrip().splitlines()[-1] == (
        "config is valid: 0 build ARN(s), 2 version ARN(s), 3 pipeline(s), 1 sink(s)"
    )
