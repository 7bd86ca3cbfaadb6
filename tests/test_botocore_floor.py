"""The botocore floor in pyproject.toml, and why it is there.

ibwatch reads two things from botocore's Image Builder service model
(`botocore/data/imagebuilder/2019-12-02/service-2.json.gz`):

- the `failureContext` member of the `ImageState` shape (shape `ImageFailureContext`,
  with `ComponentFailureContext` and `DistributionFailureContext`). The model has it
  from botocore 1.43.94 on. botocore's parsers keep only the members the model names,
  so an older botocore hands back `image.state` without it, silently;
- the documentation of GetImage's `imageBuildVersionArn` member (shape
  `GetImageRequest`): a version or wildcard ARN resolves only to the newest build that
  reached AVAILABLE. The model says so from botocore 1.43.101 on; ibwatch lists a
  version's builds instead of asking GetImage for it because of this.

The floor (botocore 1.43.105, the one DESIGN.md states) is at or above both. aiobotocore
pins botocore to a narrow range per release: 3.9.2 is the oldest release whose range
(>=1.43.101,<1.43.107) reaches 1.43.105; 3.9.1's stops below 1.43.76.

Each test fails if the floor is dropped: the first two against an older installed
botocore, the last two against a pyproject.toml that no longer demands the floor.
"""

from __future__ import annotations

import copy
import json
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import botocore.parsers
import botocore.session
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

BOTOCORE_FLOOR = Version("1.43.105")
AIOBOTOCORE_FLOOR = Version("3.9.2")
# The last botocore whose model lacks each fact (read in the published wheels: 1.43.94
# added failureContext, 1.43.101 the version-ARN documentation).
NO_FAILURE_CONTEXT = Version("1.43.93")
NO_VERSION_ARN_SEMANTICS = Version("1.43.100")
# The newest aiobotocore before the floor; its Requires-Dist is botocore<1.43.76,>=1.43.66.
AIOBOTOCORE_TOO_OLD = Version("3.9.1")

BUILD_ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.2.3/4"

COMPONENT_FAILURE = {
    "imageStatus": "TESTING",
    "workflowExecutionId": "wf-0123456789abcdef0123456789abcdef",
    "workflowArn": "arn:aws:imagebuilder:us-east-1:aws:workflow/test/test-image/1.0.0/1",
    "stepExecutionId": "step-0123456789abcdef0123456789abcdef",
    "failedStep": "RunTestComponents",
    "componentFailure": {
        "componentArn": "arn:aws:imagebuilder:us-east-1:123456789012:component/smoke/1.0.0/1",
        "phaseName": "test",
        "stepName": "CheckNginx",
        "action": "ExecuteBash",
        "errorMessage": "Command failed with exit code 1: curl -fsS http://localhost/",
    },
}

DISTRIBUTION_FAILURE = {
    "imageStatus": "DISTRIBUTING",
    "workflowExecutionId": "wf-fedcba9876543210fedcba9876543210",
    "failedStep": "DistributeImage",
    "distributionFailure": {
        "errorMessage": "Distribution failed in 1 of 3 Regions",
        "regionFailures": [
            {
                "region": "eu-west-1",
                "status": "FAILED",
                "imageConfigurationStep": "CopyImage",
                "errorMessage": "The AMI quota for the Region is exceeded",
                "targetAccountId": "210987654321",
            }
        ],
    },
}


def _imagebuilder_model() -> Any:
    return botocore.session.get_session().get_service_model("imagebuilder")


def _parse_get_image(body: dict[str, Any]) -> dict[str, Any]:
    """A GetImage HTTP response through botocore's own rest-json parser and the
    installed model's `GetImageResponse` shape, as the client would see it."""
    operation = _imagebuilder_model().operation_model("GetImage")
    response = {
        "status_code": 200,
        "headers": {
            "content-type": "application/json",
            "x-amzn-requestid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        },
        "body": json.dumps(body).encode(),
    }
    parsed: dict[str, Any] = botocore.parsers.create_parser("rest-json").parse(
        response, operation.output_shape
    )
    return parsed


def _dependencies() -> dict[str, Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = [Requirement(line) for line in pyproject["project"]["dependencies"]]
    return {requirement.name: requirement for requirement in requirements}


@pytest.mark.parametrize(
    "failure_context",
    [COMPONENT_FAILURE, DISTRIBUTION_FAILURE],
    ids=["component-failure", "distribution-failure"],
)
def test_get_image_keeps_the_failure_context(failure_context: dict[str, Any]) -> None:
    """Model: `ImageState.failureContext` -> `ImageFailureContext` (imageStatus,
    workflowExecutionId, workflowArn, stepExecutionId, failedStep, componentFailure ->
    `ComponentFailureContext`, distributionFailure -> `DistributionFailureContext` with
    `regionFailures` -> `RegionFailure`). Every member sent comes back unchanged."""
    state = {
        "status": "FAILED",
        "reason": "Image creation failed",
        "failureContext": copy.deepcopy(failure_context),
        "aMemberNoModelHas": "dropped",
    }
    body = {"requestId": "0f1e2d3c", "image": {"arn": BUILD_ARN, "state": state}}

    parsed = _parse_get_image(body)["image"]["state"]

    assert parsed["failureContext"] == failure_context
    assert parsed["status"] == "FAILED"
    # How an older model loses failureContext: the parser drops what its model lacks.
    assert "aMemberNoModelHas" not in parsed


def test_get_image_documents_that_a_version_arn_resolves_only_available_builds() -> None:
    """Model: `GetImageRequest.imageBuildVersionArn` documentation (botocore >= 1.43.101),
    the reason ibwatch never asks GetImage for a version ARN's newest build."""
    member = _imagebuilder_model().operation_model("GetImage").input_shape.members
    documentation = member["imageBuildVersionArn"].documentation

    assert (
        "A version or wildcard ARN resolves to the latest matching build version that has "
        "reached <code>AVAILABLE</code> status." in documentation
    )
    assert (
        "To get an image in any other state, such as a failed or in-progress build, "
        "specify the full build version ARN." in documentation
    )


def test_pyproject_demands_the_botocore_and_aiobotocore_floors() -> None:
    """Without these two lines pip may install a botocore whose model lacks the above."""
    dependencies = _dependencies()
    assert {"botocore", "aiobotocore"} <= set(dependencies), "both need a line of their own"
    botocore_spec = dependencies["botocore"].specifier
    aiobotocore_spec = dependencies["aiobotocore"].specifier

    assert botocore_spec.contains(BOTOCORE_FLOOR)
    assert not botocore_spec.contains(NO_FAILURE_CONTEXT)
    assert not botocore_spec.contains(NO_VERSION_ARN_SEMANTICS)
    assert not botocore_spec.contains(Version("1.43.104"))
    assert aiobotocore_spec.contains(AIOBOTOCORE_FLOOR)
    assert not aiobotocore_spec.contains(AIOBOTOCORE_TOO_OLD)


@pytest.mark.parametrize("distribution", ["botocore", "aiobotocore"])
def test_installed_versions_meet_the_pyproject_floor(distribution: str) -> None:
    installed = Version(metadata.version(distribution))
    assert _dependencies()[distribution].specifier.contains(installed), (
        f"{distribution} {installed} is below pyproject.toml's floor: pip install -e '.[dev]'"
    )
