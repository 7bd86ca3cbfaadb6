"""Reports as `watcher.wait.build_report` makes them, for the tests of what is written
from one ($GITHUB_OUTPUT, `--dotenv`, `--summary`). Each image and the report around
it are made by `build_report` itself, from a snapshot of an AVAILABLE build: a key the
report gains or loses shows in these tests at once. A test then sets the values it
needs over them, and only values of keys the report has."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from watcher.engine import RunResult, Watch
from watcher.model import Arn, ImageSnapshot, ImageStatus, InvalidArn
from watcher.tracker import Tracked
from watcher.wait import build_report

WEB = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
_SEEN = datetime(2026, 1, 1, tzinfo=UTC)


def image(arn: str = WEB, **fields: Any) -> dict[str, Any]:
    """One image of a report: `arn`'s build, AVAILABLE, without outputs; `fields`
    replace its values (`status="FAILED"`, `amis=[{"region": ..., "image": ...}]`)."""
    try:
        parsed = Arn.parse(arn)
        name, version, build = parsed.name, parsed.version, parsed.build or 1
    except InvalidArn:  # a test's stand-in ARN, as a version ARN may be
        name, version, build = "image", "1.0.0", 1
    snapshot = ImageSnapshot(
        arn=arn,
        status=ImageStatus.AVAILABLE,
        name=name,
        version=version,
        build=build,
        observed_at=_SEEN,
    )
    tracked = Tracked(snapshot=snapshot, status_since=_SEEN, sequence=1, watched=arn)
    watch = Watch(arn=arn, watched=arn, build_arn=arn, tracked=tracked)
    [made] = build_report(RunResult(watches={arn: watch}))["images"]
    return _over(made, fields, "image")


def report(
    *images: dict[str, Any], status: str = "AVAILABLE", code: int = 0, **fields: Any
) -> dict[str, Any]:
    """A report holding `images`, with `status` and exit code `code`; `fields` replace
    its other values (`timed_out=True`)."""
    made = build_report(RunResult(watches={}))
    return _over(
        made, {"images": list(images), "status": status, "exit_code": code, **fields}, "report"
    )


def _over(made: dict[str, Any], fields: dict[str, Any], what: str) -> dict[str, Any]:
    unknown = set(fields) - set(made)
    assert not unknown, f"the {what} build_report makes has no {sorted(unknown)}"
    return made | fields
