"""GitHub's step outputs ($GITHUB_OUTPUT): a wait's result as `key=value` lines that a
workflow reads as `steps.<id>.outputs.<key>`.

Written from the one reading of the report that every CI file shares
(`watcher.step_outputs`). Appends to the file GitHub gave and writes nothing else; a
file that cannot be written costs a warning, never the exit code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watcher.step_outputs import step_outputs


def write_github_output(path: Path, report: Mapping[str, Any]) -> list[str]:
    """Append step outputs a workflow can use: `steps.<id>.outputs.status`, ...
    Returns warnings for the person reading the log (an ambiguous `ami_<region>`, a
    file that could not be written)."""
    outputs = step_outputs(report)
    amis = dict(outputs.amis)
    # Two images built in one region make `ami_<region>` ambiguous: left out, with a
    # warning, rather than silently the last one; `images` has every AMI per image.
    warnings = [
        f"ami_{region} is not set: {len(ids)} images have an AMI there "
        f"({', '.join(sorted(ids))}); read them per image from the `images` output"
        for region, ids in outputs.ambiguous_amis.items()
    ]
    images = [
        {key: image[key] for key in ("arn", "build_arn", "status", "amis", "containers")}
        for image in report["images"]
    ]
    errors = [
        {"arn": image["arn"], "message": (image["error"] or image["last_error"])["message"]}
        for image in report["images"]
        if image["error"] or image["last_error"]
    ] + list(report.get("errors", ()))  # a run without a result: what stopped it
    lines = [
        f"status={report['status']}",
        f"exit_code={report['exit_code']}",
        # The build each ARN was resolved to: a version ARN names its newest build.
        f"build_arn={outputs.build_arn or ''}",
        f"build_arns={_compact(list(outputs.build_arns))}",
        f"images={_compact(images)}",
        f"amis={_compact(amis)}",
        f"container_uris={_compact(list(outputs.container_uris))}",
        f"errors={_compact(errors)}",
        # Why the first FAILED build failed; any other's is in `result`.
        f"failed_step={_one_line(outputs.failed_step)}",
        f"log_group={_one_line(outputs.log_group)}",
        f"console_url={_one_line(outputs.console_url)}",
        *(f"ami_{region}={ami}" for region, ami in amis.items()),
        f"result={_compact(_without_log_tails(report))}",
    ]
    try:
        # `replace`: AWS's JSON may hold a lone surrogate (`"\ud800"` parses), which
        # UTF-8 cannot encode; `?` in its place rather than no outputs at all.
        with path.open("a", encoding="utf-8", errors="replace") as handle:
            handle.write("\n".join(lines) + "\n")
    except OSError as exc:
        return [*warnings, f"GITHUB_OUTPUT {path}: {exc.strerror or exc}"]
    return warnings


def _without_log_tails(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report without its log lines: GITHUB_OUTPUT is no place for a log (GitHub's
    "Passing information between jobs": "Outputs can be a maximum of 1 MB per job",
    which a thousand long lines would pass); the text and JSON results have them."""
    images = [{k: v for k, v in image.items() if k != "log_tail"} for image in report["images"]]
    return {**report, "images": images}


def _one_line(value: str | None) -> str:
    """A `key=value` line holds one line: a value with a line break is left empty,
    never allowed to end the line early and write a key of its own."""
    if not value or "\n" in value or "\r" in value:
        return ""
    return value


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
