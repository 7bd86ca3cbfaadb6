"""What a CI step hands on to later steps from a wait's result: the one reading of
the report (`watcher.wait.build_report`) that GitHub's step outputs and GitLab's
dotenv report are both written from, so the two never disagree on a value.

Reads the report only: never formats for one CI, never writes a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepOutputs:
    status: str
    exit_code: int
    build_arns: tuple[str, ...]
    """The build each watched ARN was resolved to (a version ARN names its newest); in
    a run without a result, the builds it started before it stopped."""
    amis: Mapping[str, str]
    """Region -> AMI id, for each region where exactly one AMI was built."""
    ambiguous_amis: Mapping[str, tuple[str, ...]]
    """Regions where several images built an AMI: no single answer, so none is
    given per region (the JSON result has every AMI per image)."""
    container_uris: tuple[str, ...]
    failed_step: str | None
    """The first FAILED build's step, as `failed_step()` names it."""
    log_group: str | None
    console_url: str | None

    asked_for: int = 1
    """How many builds the run was for (ARNs waited on, pipelines started)."""

    @property
    def build_arn(self) -> str | None:
        """The build, when the run was for exactly one: what a single-build job wants.
        Never the one build `start` got to before it stopped on the second pipeline."""
        return self.build_arns[0] if len(self.build_arns) == 1 and self.asked_for == 1 else None


def step_outputs(report: Mapping[str, Any]) -> StepOutputs:
    by_region: dict[str, list[str]] = {}
    uris: list[str] = []
    for image in report["images"]:
        for ami in image["amis"]:
            ids = by_region.setdefault(ami["region"], [])
            if ami["image"] not in ids:
                ids.append(ami["image"])
        uris += [uri for container in image["containers"] for uri in container["image_uris"]]
    # Why the first FAILED build failed; any other's is in the full result.
    failed = next((i for i in report["images"] if i["status"] == "FAILED"), None) or {}
    return StepOutputs(
        status=str(report["status"]),
        exit_code=int(report["exit_code"]),
        # A run without a result (`watcher.result_files.no_result`) names the builds it
        # had started: whoever reads the files must learn of them, not only the log.
        build_arns=tuple(i["build_arn"] for i in report["images"] if i["build_arn"])
        or tuple(report.get("started", ())),
        amis={region: ids[0] for region, ids in by_region.items() if len(ids) == 1},
        ambiguous_amis={region: tuple(ids) for region, ids in by_region.items() if len(ids) > 1},
        container_uris=tuple(uris),
        failed_step=failed_step(failed) if failed else None,
        log_group=failed.get("log_group"),
        console_url=failed.get("console_url"),
        asked_for=max(1, len(report["images"]), len(report.get("pipelines") or ())),
    )


def failed_step(image: Mapping[str, Any]) -> str | None:
    """The step one build of the report failed in, as every CI file names it (the step
    outputs, the dotenv report, the summary's table): `TEST/RunImageTests`, the
    workflow and step the diagnostics found, never the step's message (it can run to
    many lines); else failureContext's own step name (`RunImageTests`), which is all
    there is without the ListWorkflow* permissions; else None."""
    step = image.get("failed_workflow_step")
    if step is not None:
        return f"{step['workflow']}/{step['name']}" if step["workflow"] else str(step["name"])
    return image.get("failed_step") or None
