"""What the simulated endpoint puts on the wire: response documents shaped exactly
by botocore's output shapes, and errors as rest-json services send them.

Builds documents only; decides nothing about faults or time.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from watcher.simulator import model
from watcher.simulator.catalog import Build, Phase
from watcher.simulator.scenario import STATUSES

JSON = "application/json"
_LIFECYCLE_AFTER_AVAILABLE = ("AVAILABLE", "DEPRECATED", "DISABLED", "DELETED")


def iso(moment: datetime) -> str:
    """The API's DateTime strings: ISO 8601 UTC with milliseconds (2026-01-01T00:00:00.000Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Renderer:
    """Turns a build at a scenario time into API documents.

    `epoch` is the wall time at which scenario time 0 began, and `time_scale` the
    scenario seconds per real second, so dates read as real times to the client.
    """

    def __init__(self, epoch: datetime, time_scale: float) -> None:
        self.epoch = epoch
        self.time_scale = time_scale

    def wall(self, scenario_seconds: float) -> datetime:
        return self.epoch + timedelta(seconds=scenario_seconds / self.time_scale)

    def image(self, build: Build, t: float) -> dict[str, Any]:
        """The `image` member of a GetImage response."""
        spec = build.image
        parts = spec.parts
        created = iso(self.wall(build.started))
        document = self._common(build, t)
        document |= {
            "enhancedImageMetadataEnabled": True,
            "infrastructureConfiguration": {
                "arn": _resource_arn(parts, "infrastructure-configuration", build.name),
                "name": f"{build.name}-infrastructure",
                "instanceTypes": ["m5.large"],
                "instanceProfileName": "EC2InstanceProfileForImageBuilder",
                "terminateInstanceOnFailure": True,
            },
            "imageTestsConfiguration": {"imageTestsEnabled": True, "timeoutMinutes": 720},
        }
        recipe = {
            "arn": _resource_arn(parts, _recipe_kind(spec.type), build.name, build.version),
            "name": build.name,
            "platform": spec.platform,
            "version": build.version,
            "owner": parts["account"],
            "dateCreated": created,
        }
        if spec.type == "DOCKER":
            document["containerRecipe"] = {"containerType": "DOCKER", **recipe}
        else:
            document["imageRecipe"] = {"type": "AMI", **recipe}
        if spec.pipeline:
            document["sourcePipelineName"] = spec.pipeline
            document["sourcePipelineArn"] = _resource_arn(parts, "image-pipeline", spec.pipeline)
        return document

    def summary(self, build: Build, t: float) -> dict[str, Any]:
        """One entry of ListImageBuildVersions' `imageSummaryList`."""
        return self._common(build, t) | {"owner": build.image.parts["account"]}

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
            "dateCreated": iso(self.wall(build.started)),
            "buildType": "USER_INITIATED",
            "imageSource": "CUSTOM",
        }
        outputs = self.outputs(build, phase, t)
        if outputs is not None:
            common["outputResources"] = outputs
        if spec.tags:
            common["tags"] = dict(spec.tags)
        return common

    def state(self, build: Build, phase: Phase) -> dict[str, Any]:
        step = phase.step
        state: dict[str, Any] = {"status": step.status}
        if step.reason:
            state["reason"] = step.reason
        if step.failure_context is not None:
            context = dict(step.failure_context)
            # Where the build was when it failed, unless the scenario says otherwise.
            if "imageStatus" not in context and phase.index > 0:
                before = build.phases[phase.index - 1].status
                if before in STATUSES:
                    context["imageStatus"] = before
            state["failureContext"] = context
        return state

    def outputs(self, build: Build, phase: Phase, t: float) -> dict[str, Any] | None:
        """The outputs, filled in once the build has been AVAILABLE, as the service does."""
        if not build.reached("AVAILABLE", t) or phase.status not in _LIFECYCLE_AFTER_AVAILABLE:
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


def _recipe_kind(image_type: str) -> str:
    return "container-recipe" if image_type == "DOCKER" else "image-recipe"


def _resource_arn(parts: dict[str, str], kind: str, name: str, version: str | None = None) -> str:
    slug = name.lower().replace(" ", "-")
    arn = (
        f"arn:{parts['partition']}:imagebuilder:{parts['region']}:{parts['account']}:{kind}/{slug}"
    )
    return f"{arn}/{version}" if version else arn


def json_response(body: dict[str, Any], request_id: str) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=JSON,
        headers={"x-amzn-RequestId": request_id},
    )


def error_response(
    code: str, message: str, request_id: str, status: int | None = None
) -> web.Response:
    """An error as rest-json services send it: the code in `x-amzn-ErrorType`, the
    message in the body, the status the model gives the code."""
    return web.Response(
        status=status if status is not None else model.error_status(code),
        body=json.dumps({"message": message}).encode(),
        content_type=JSON,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code},
    )
