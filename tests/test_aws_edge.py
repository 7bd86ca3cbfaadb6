"""Every way a get_image can fail becomes one of the project's own errors, at the edge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.exceptions
import pytest

from tests.support import WEB_BASE, aws_session, scenario
from watcher.aws import AwsImageSource, _log_page, classify_errors, snapshot_from_image
from watcher.errors import (
    AccessDenied,
    ApiError,
    BadCredentials,
    InvalidRequest,
    NotFound,
    Throttled,
    Unavailable,
)
from watcher.model import ImageSnapshot, ImageStatus
from watcher.simulator import Simulator
from watcher.testing import FakeClock


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({"errors": {"CallRateLimitExceededException": 1.0}}, Throttled),
        ({"errors": {"ServiceUnavailableException": 1.0}}, Unavailable),
        ({"errors": {"ServiceException": 1.0}}, Unavailable),
        ({"dropped_connections": 1.0}, Unavailable),
        ({"malformed_bodies": 1.0}, Unavailable),
        ({"errors": {"ForbiddenException": 1.0}}, AccessDenied),
        ({"errors": {"ResourceNotFoundException": 1.0}}, NotFound),
        ({"errors": {"InvalidRequestException": 1.0}}, InvalidRequest),
        ({"errors": {"ClientException": 1.0}}, InvalidRequest),
    ],
)
async def test_faults_are_classified(faults: dict[str, object], expected: type[ApiError]) -> None:
    clock = FakeClock()
    async with (
        Simulator(scenario(faults=faults), clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url, session=aws_session()) as source,
    ):
        with pytest.raises(expected) as caught:
            await source.get(WEB_BASE)
    assert caught.value.arn == WEB_BASE


async def test_a_rate_limited_call_is_throttled() -> None:
    clock = FakeClock()
    limited = scenario(faults={"rate_limits": {"GetImage": {"rate": 0.001, "burst": 1}}})
    async with (
        Simulator(limited, clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url) as source,
    ):
        await source.get(WEB_BASE)  # the burst of one
        with pytest.raises(Throttled):
            await source.get(WEB_BASE)


async def test_a_snapshot_carries_status_outputs_and_the_build() -> None:
    clock = FakeClock()
    async with (
        Simulator(scenario(), clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url) as source,
    ):
        clock.advance(5000)
        snapshot = await source.get(WEB_BASE.rsplit("/", 1)[0])  # the version ARN
    assert (snapshot.arn, snapshot.build, snapshot.status) == (WEB_BASE, 7, ImageStatus.AVAILABLE)
    assert [a.region for a in snapshot.outputs.amis] == ["us-east-1", "eu-west-1", "ap-southeast-2"]
    assert snapshot.pipeline == "web-base-nightly"
    assert snapshot.tests_enabled is True
    assert snapshot.observed_at == clock.now()


async def test_missing_credentials_are_a_final_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    clock = FakeClock()
    async with (
        Simulator(scenario(), clock=clock) as url,
        AwsImageSource(clock=clock, endpoint_url=url) as source,
    ):
        with pytest.raises(BadCredentials, match="no usable AWS credentials"):
            await source.get(WEB_BASE)


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    clock = FakeClock()
    async with AwsImageSource(
        clock=clock, endpoint_url="http://127.0.0.1:9", connect_timeout=2
    ) as source:
        with pytest.raises(Unavailable):
            await source.get(WEB_BASE)


def wire_image(**state: object) -> dict[str, object]:
    return {
        "arn": "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7",
        "version": "1.4.0/7",
        "state": {"status": "AVAILABLE", **state},
        "outputResources": {"amis": [{"region": "us-east-1", "image": "ami-0a1b2c3d4e5f60718"}]},
    }


@pytest.mark.parametrize(
    ("image", "wrong"),
    [
        (wire_image(reason=123), "reason is int, expected str"),
        (wire_image(failureContext="FAILED"), "failureContext is str, expected dict"),
        ({**wire_image(), "platform": ["Linux"]}, "platform is list, expected str"),
        (
            {**wire_image(), "outputResources": {"amis": [{"region": "us-east-1", "image": 5}]}},
            "image is int, expected str",
        ),
        (
            {
                **wire_image(),
                "outputResources": {"containers": [{"region": "x", "imageUris": [1]}]},
            },
            "imageUris is not a list of strings",
        ),
        ({**wire_image(), "state": {}}, "'' is not a valid ImageStatus"),
    ],
)
def test_a_body_of_the_wrong_types_is_malformed_not_stored(
    image: dict[str, object], wrong: str
) -> None:
    """Snapshots are not checked when built, so the edge checks what it reads: a value
    of the wrong type would be written to the state file and refused on reading it."""
    with pytest.raises(Unavailable) as raised:
        snapshot_from_image(image, str(image["arn"]), observed_at=datetime.now(UTC))
    assert raised.value.code == "Malformed"
    assert wrong in str(raised.value)


def test_a_well_typed_body_reads_back_from_json_unchanged() -> None:
    image = wire_image(reason="done")
    snapshot = snapshot_from_image(image, str(image["arn"]), observed_at=datetime.now(UTC))
    assert ImageSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


def test_a_log_page_of_the_wrong_shape_is_malformed_not_a_crash() -> None:
    """GetLogEvents' OutputLogEvent: timestamp is a Long, message a String."""
    with pytest.raises(Unavailable, match="malformed GetLogEvents response: timestamp is str"):
        _log_page({"events": [{"timestamp": "soon", "message": "x"}]}, ARN_FOR_LOGS)
    with pytest.raises(Unavailable, match="malformed GetLogEvents response"):
        _log_page({"events": ["not an event"]}, ARN_FOR_LOGS)
    assert _log_page(
        {"events": [{"timestamp": 2, "message": "b"}, {"timestamp": 1, "message": "a"}]},
        ARN_FOR_LOGS,
    ) == (["a", "b"], None)


ARN_FOR_LOGS = "arn:aws:imagebuilder:eu-west-1:123456789012:image/windows-agent/3.1.0/12"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        # The SQS model's errors of ReceiveMessage and DeleteMessage, as botocore reports
        # them: the shape's name, or the x-amzn-query-error code of awsQueryCompatible.
        ("QueueDoesNotExist", 400, NotFound),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, NotFound),
        ("RequestThrottled", 400, Throttled),
        ("KmsThrottled", 400, Throttled),
        ("KmsAccessDenied", 400, AccessDenied),
        ("KMS.AccessDeniedException", 400, AccessDenied),
        ("KMS.ThrottlingException", 400, Throttled),
        ("AccessDenied", 403, AccessDenied),
        ("InvalidClientTokenId", 403, BadCredentials),
        ("OverLimit", 403, Throttled),
        ("ReceiptHandleIsInvalid", 400, InvalidRequest),
    ],
)
def test_queue_errors_are_classified(code: str, status: int, expected: type[ApiError]) -> None:
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/image-events"
    answer: dict[str, Any] = {
        "Error": {"Code": code, "Message": "from the queue"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    with pytest.raises(expected) as caught, classify_errors(queue):
        raise botocore.exceptions.ClientError(answer, "ReceiveMessage")
    assert caught.value.code == code
    assert caught.value.arn == queue
