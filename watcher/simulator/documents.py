"""The documents the simulated endpoint answers with: an `Image`, an `ImageSummary`,
an `ImagePipeline`, and a build's workflow and step executions, shaped exactly by
botocore's shapes, for a build or a pipeline at a scenario time.

Builds documents only; decides nothing about faults, time or state. Where a real
build carries a field whose value no scenario key gives (its infrastructure, its
workflows, its log group), a fixed, plausible value is served. Of the model's `Image`
members, only `lifecycleExecutionId` is never served: "the last runtime instance of
the lifecycle policy to take action on the image", and scenarios have no lifecycle
policies (a timeline's DEPRECATED, DISABLED or DELETED step is a state change made
without one; our reading).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from watcher.simulator.catalog import Build, Phase
from watcher.simulator.pipelines import PipelineRuns
from watcher.simulator.scenario_images import STATUSES, BuildTemplate
from watcher.simulator.scenario_workflows import MESSAGE_MAX
from watcher.simulator.workflows import StepRun, WorkflowRun, Workflows

_LIFECYCLE = ("DEPRECATED", "DISABLED", "DELETED")
# ImageScanState.status: "The scan starts as PENDING and moves through SCANNING and
# COLLECTING to COMPLETED. Image Builder sets the status to ABANDONED if the image
# reaches a terminal state before the scan finding collection completes." Which
# build status goes with which scan status is our reading: the scan runs on the
# test instance (ImageScanningConfiguration), so while TESTING.
_SCAN_STATUS = {
    "PENDING": "PENDING",
    "CREATING": "PENDING",
    "BUILDING": "PENDING",
    "TESTING": "SCANNING",
    "DISTRIBUTING": "COLLECTING",
    "INTEGRATING": "COLLECTING",
    "AVAILABLE": "COMPLETED",
    "FAILED": "ABANDONED",
    "CANCELLED": "ABANDONED",
}


def iso(moment: datetime) -> str:
    """The API's DateTime strings: ISO 8601 UTC with milliseconds (2026-01-01T00:00:00.000Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Renderer:
    """Turns builds and pipelines at a scenario time into API documents.

    `epoch` is the wall time at which scenario time 0 began, and `time_scale` the
    scenario seconds per real second, so dates read as real times to the client.
    `workflows` places each build's workflow executions in time.
    """

    def __init__(
        self, epoch: datetime, time_scale: float, workflows: Workflows | None = None
    ) -> None:
        self.epoch = epoch
        self.time_scale = time_scale
        self.workflows = workflows if workflows is not None else Workflows(0)

    def wall(self, scenario_seconds: float) -> datetime:
        return self.epoch + timedelta(seconds=scenario_seconds / self.time_scale)

    def date(self, scenario_seconds: float) -> str:
        return iso(self.wall(scenario_seconds))

    # -- images ---------------------------------------------------------

    def image(self, build: Build, t: float) -> dict[str, Any]:
        """The `image` member of a GetImage response."""
        spec = build.image
        parts = spec.parts
        document = self._common(build, t) | _configuration(parts, build.name, spec)
        recipe = {
            "arn": _arn(parts, _recipe_kind(spec), build.name, build.version),
            "name": build.name,
            "platform": spec.platform,
            "version": build.version,
            "owner": parts["account"],
            "dateCreated": self.date(build.started),
        }
        if spec.type == "DOCKER":
            document["containerRecipe"] = {"containerType": "DOCKER", **recipe}
        else:
            document["imageRecipe"] = {"type": "AMI", **recipe}
        document["infrastructureConfiguration"] = {
            "arn": _arn(parts, "infrastructure-configuration", build.name),
            "name": f"{build.name}-infrastructure",
            "instanceTypes": ["m5.large"],
            "instanceProfileName": "EC2InstanceProfileForImageBuilder",
            "terminateInstanceOnFailure": True,
        }
        document["distributionConfiguration"] = _distribution(parts, build.name, spec)
        document["scanState"] = {"status": _scan_status(build, t)}
        if build.source is not None:
            # sourcePipelineName: "Image Builder doesn't return this field for new
            # images. Use sourcePipelineArn instead." Both are served, for clients
            # written against either.
            document["sourcePipelineName"] = build.source.name
            document["sourcePipelineArn"] = build.source.arn
        return document

    def summary(self, build: Build, t: float) -> dict[str, Any]:
        """One entry of an `imageSummaryList`."""
        return self._common(build, t) | {
            "owner": build.image.parts["account"],
            "loggingConfiguration": {"logGroupName": log_group(build.name)},
        }

    def _common(self, build: Build, t: float) -> dict[str, Any]:
        """The members an Image and an ImageSummary share."""
        phase = build.phase_at(t)
        assert phase is not None, "a build is only rendered once it has started"
        spec = build.image
        common: dict[str, Any] = {
            "arn": build.arn,
            "name": build.name,
            "type": spec.type,
            "version": f"{build.version}/{build.number}",
            "platform": spec.platform,
            "osVersion": spec.os_version,
            "state": self.state(build, phase),
            "dateCreated": self.date(build.started),
            "buildType": build.build_type,
            "imageSource": "CUSTOM",
        }
        outputs = self.outputs(build, phase, t)
        if outputs is not None:
            common["outputResources"] = outputs
        if spec.tags:
            common["tags"] = dict(spec.tags)
        deprecation = self._deprecation(build, t)
        if deprecation is not None:
            common["deprecationTime"] = deprecation
        return common

    def _deprecation(self, build: Build, t: float) -> float | None:
        """deprecationTime (epoch seconds, a rest-json timestamp): the scenario's, or
        the moment the build became DEPRECATED once it has."""
        at = build.image.deprecation_time
        if at is None:
            entered = build.entered("DEPRECATED")
            at = entered if entered is not None and entered <= t else None
        return None if at is None else self.wall(at).timestamp()

    def state(self, build: Build, phase: Phase) -> dict[str, Any]:
        step = phase.step
        state: dict[str, Any] = {"status": step.status}
        if step.reason:
            state["reason"] = step.reason
        failed = self.workflows.failed_run(build, phase) if step.status == "FAILED" else None
        if step.failure_context is not None or failed is not None:
            context = dict(step.failure_context or {})
            # Where the build was when it failed, unless the scenario says otherwise.
            if "imageStatus" not in context and phase.index > 0:
                before = build.phases[phase.index - 1].status
                if before in STATUSES:
                    context["imageStatus"] = before
            failing = failed.failed_step() if failed is not None else None
            if failed is not None and failing is not None:
                # The workflow and step that ListWorkflowExecutions and
                # ListWorkflowStepExecutions show failing; the scenario's own
                # values, if it gives any, win.
                context.setdefault("workflowExecutionId", failed.execution_id)
                context.setdefault("workflowArn", failed.workflow_arn)
                context.setdefault("stepExecutionId", failing.execution_id)
                context.setdefault("failedStep", failing.spec.name)
            state["failureContext"] = context
        return state

    # -- workflow executions ---------------------------------------------

    def workflow_execution(self, run: WorkflowRun, t: float) -> dict[str, Any]:
        """One WorkflowExecutionMetadata (the members GetWorkflowExecution shares)."""
        status = run.status_at(t)
        started = run.started_steps(t)
        statuses = [s.status_at(t, run.ends, run.outcome) for s in started]
        document: dict[str, Any] = {
            "workflowBuildVersionArn": run.workflow_arn,
            "workflowExecutionId": run.execution_id,
            "type": run.type,
            "status": status,
            # "Image Builder sets this count before any steps run."
            "totalStepCount": len(run.defined),
            "totalStepsSucceeded": statuses.count("COMPLETED"),
            "totalStepsFailed": statuses.count("FAILED"),
            # No simulated step is ever skipped: none has an `if` condition.
            "totalStepsSkipped": statuses.count("SKIPPED"),
            "startTime": self.date(run.phase.begins),
        }
        if status != "RUNNING" and run.ends is not None:
            document["endTime"] = self.date(run.ends)
        failing = run.failed_step()
        if status == "FAILED" and failing is not None:
            # WorkflowExecutionMessage: "The runtime output message from the
            # workflow, if applicable"; its wording is our reading.
            text = f"Workflow step {failing.spec.name} failed: {self.step_message(run, failing)}"
            document["message"] = text[:MESSAGE_MAX]
        return document

    def step_execution(self, run: WorkflowRun, step: StepRun, t: float) -> dict[str, Any]:
        """One WorkflowStepMetadata (the members GetWorkflowStepExecution shares)."""
        status = step.status_at(t, run.ends, run.outcome)
        document: dict[str, Any] = {
            "stepExecutionId": step.execution_id,
            "name": step.spec.name,
            "action": step.spec.action,
            "status": status,
            "startTime": self.date(step.begins),
            # maxAttempts: "If the step doesn't configure retries, the maximum is one
            # attempt"; simulated steps never retry.
            "attemptNumber": 1,
            "maxAttempts": 1,
        }
        ended = step.ended_at(t, run.ends)
        if ended is not None:
            document["endTime"] = self.date(ended)
        message = self.step_message(run, step) if status == "FAILED" else step.spec.message
        if message:
            document["message"] = message[:MESSAGE_MAX]
        return document

    def step_message(self, run: WorkflowRun, step: StepRun) -> str:
        """The failing step's own message: the scenario's, else the component's or
        the distribution's error, else the build's reason (our reading)."""
        if not step.failing:
            return step.spec.message or ""
        failed = run.build.phases[run.phase.index + 1].step
        context = failed.failure_context or {}
        for candidate in (
            failed.failed_step_message,
            step.spec.message,
            (context.get("componentFailure") or {}).get("errorMessage"),
            (context.get("distributionFailure") or {}).get("errorMessage"),
            failed.reason,
        ):
            if isinstance(candidate, str) and candidate:
                return candidate
        return f"Step {step.spec.name} ({step.spec.action}) failed"

    def outputs(self, build: Build, phase: Phase, t: float) -> dict[str, Any] | None:
        """The outputs, filled in once the build has been AVAILABLE, as the service does."""
        if not build.reached("AVAILABLE", t) or phase.status not in ("AVAILABLE", *_LIFECYCLE):
            return None
        spec = build.image
        account = spec.parts["account"]
        if spec.type == "DOCKER":
            return {
                "containers": [
                    {"region": c.region, "imageUris": list(c.image_uris)} for c in spec.containers
                ]
            }
        amis = []
        for ami in spec.amis:
            entry: dict[str, Any] = {
                "region": ami.region,
                "image": ami.image,
                "name": ami.name or f"{build.name}-{build.version}-{build.number}",
                "state": {"status": "AVAILABLE"},
                "accountId": ami.account_id or account,
            }
            if ami.description:
                entry["description"] = ami.description
            amis.append(entry)
        return {"amis": amis}

    # -- pipelines ------------------------------------------------------

    def pipeline(self, runs: PipelineRuns, t: float) -> dict[str, Any]:
        """One ImagePipeline, as GetImagePipeline and ListImagePipelines serve it."""
        spec = runs.spec
        parts = spec.image_parts
        name = parts["name"]
        recipe = "containerRecipeArn" if spec.type == "DOCKER" else "imageRecipeArn"
        configuration = _configuration(parts, name, spec)
        document: dict[str, Any] = {
            "arn": spec.arn,
            "name": runs.name,
            "platform": spec.platform,
            "enhancedImageMetadataEnabled": True,
            recipe: _arn(parts, _recipe_kind(spec), name, parts["version"]),
            "infrastructureConfigurationArn": _arn(parts, "infrastructure-configuration", name),
            "distributionConfigurationArn": _arn(parts, "distribution-configuration", name),
            "status": runs.status(t),
            "dateCreated": self.date(spec.created),
            "dateUpdated": self.date(runs.updated(t)),
            "consecutiveFailures": runs.consecutive_failures(t),
            **{k: v for k, v in configuration.items() if k != "loggingConfiguration"},
            "loggingConfiguration": {
                "imageLogGroupName": log_group(name),
                "pipelineLogGroupName": "/aws/imagebuilder/pipeline/" + runs.name.replace(" ", "-"),
            },
        }
        if spec.description:
            document["description"] = spec.description
        if spec.tags:
            document["imageTags"] = dict(spec.tags)
        if spec.schedule is not None:
            schedule: dict[str, Any] = {
                "scheduleExpression": spec.schedule.expression(),
                # Our schedule starts a build at every tick, which is what this
                # condition means ("builds a new image every time the CRON
                # expression matches the current time").
                "pipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY",
            }
            if spec.auto_disable_after is not None:
                schedule["autoDisablePolicy"] = {"failureCount": spec.auto_disable_after}
            document["schedule"] = schedule
        last = runs.last_run(t)
        if last is not None:
            document["dateLastRun"] = self.date(last.started)
            document["lastRunStatus"] = last.status_at(t)
        upcoming = runs.next_run(t)
        if upcoming is not None:
            document["dateNextRun"] = self.date(upcoming)
        return document


def _configuration(parts: dict[str, str], name: str, spec: BuildTemplate) -> dict[str, Any]:
    """What an image and the pipeline that builds it both carry."""
    kind = "container" if spec.type == "DOCKER" else "image"
    region, partition = parts["region"], parts["partition"]
    # Image Builder's managed workflows are owned by the `aws` account.
    workflow = f"arn:{partition}:imagebuilder:{region}:aws:workflow"
    document: dict[str, Any] = {
        "enhancedImageMetadataEnabled": True,
        "imageTestsConfiguration": {"imageTestsEnabled": True, "timeoutMinutes": 720},
        "imageScanningConfiguration": {"imageScanningEnabled": True},
        "workflows": [
            {"workflowArn": f"{workflow}/build/build-{kind}/x.x.x"},
            {"workflowArn": f"{workflow}/test/test-{kind}/x.x.x"},
        ],
        "loggingConfiguration": {"logGroupName": log_group(name)},
    }
    if parts["account"].isdigit():
        document["executionRole"] = (
            f"arn:{partition}:iam::{parts['account']}:role/aws-service-role/"
            "imagebuilder.amazonaws.com/AWSServiceRoleForImageBuilder"
        )
    return document


def _distribution(parts: dict[str, str], name: str, spec: BuildTemplate) -> dict[str, Any]:
    distributions: list[dict[str, Any]] = []
    if spec.type == "DOCKER":
        for container in spec.containers:
            uri = container.image_uris[0]
            repository = uri.split("/", 1)[-1].split("@")[0].split(":")[0]
            target = {"service": "ECR", "repositoryName": repository or name}
            distributions.append(
                {
                    "region": container.region,
                    "containerDistributionConfiguration": {"targetRepository": target},
                }
            )
    else:
        for region in dict.fromkeys(ami.region for ami in spec.amis):
            distributions.append(
                {
                    "region": region,
                    "amiDistributionConfiguration": {
                        "name": f"{name}-{{{{imagebuilder:buildDate}}}}"
                    },
                }
            )
    return {
        "arn": _arn(parts, "distribution-configuration", name),
        "name": f"{name}-distribution",
        # "A property that Image Builder doesn't use"; required by the shape.
        "timeoutMinutes": 720,
        "distributions": distributions or [{"region": parts["region"]}],
    }


def _scan_status(build: Build, t: float) -> str:
    phase = build.phase_at(t)
    assert phase is not None
    # A status the model does not list keeps the scan where the last known one left it.
    for earlier in reversed(build.phases[: phase.index + 1]):
        status = earlier.status
        if status in _LIFECYCLE:
            return "COMPLETED" if build.reached("AVAILABLE", t) else "ABANDONED"
        if status in _SCAN_STATUS:
            return _SCAN_STATUS[status]
    return "PENDING"


def latest_version_references(build: Build) -> dict[str, str]:
    """GetImage's `latestVersionReferences`: "A set of wildcard version ARNs that always
    reference the latest version of the resource. ARNs are included for the latest
    version overall, and for the latest versions within the same major, minor, and
    patch levels." Which ARNs those are is our reading: the build's image at x.x.x,
    MAJOR.x.x, MAJOR.MINOR.x and its exact version, each an ARN that GetImage resolves
    to that level's newest AVAILABLE build (Catalog.resolve)."""
    major, minor, _ = build.version.split(".")
    return {
        "latestVersionArn": f"{build.prefix}/x.x.x",
        "latestMajorVersionArn": f"{build.prefix}/{major}.x.x",
        "latestMinorVersionArn": f"{build.prefix}/{major}.{minor}.x",
        "latestPatchVersionArn": build.version_arn,
    }


def log_group(image_name: str) -> str:
    """The CloudWatch Logs group of an image's builds, as GetImage serves it and
    GetLogEvents (`logs_service`) answers for it."""
    # ImageLoggingConfiguration.logGroupName: "If not specified, the log group name
    # defaults to /aws/imagebuilder/image-name."
    return f"/aws/imagebuilder/{image_name}"


def _recipe_kind(spec: BuildTemplate) -> str:
    return "container-recipe" if spec.type == "DOCKER" else "image-recipe"


def _arn(parts: dict[str, str], kind: str, name: str, version: str | None = None) -> str:
    slug = name.lower().replace(" ", "-")
    arn = (
        f"arn:{parts['partition']}:imagebuilder:{parts['region']}:{parts['account']}:{kind}/{slug}"
    )
    return f"{arn}/{version}" if version else arn


def synthetic_pipeline_arn(parts: dict[str, str], name: str) -> str:
    """The ARN served for a pipeline an image names but the scenario does not declare."""
    return _arn(parts, "image-pipeline", name)
