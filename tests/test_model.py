"""The watcher's vocabulary: image ARNs and statuses, including the ones AWS adds later."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from watcher.model import PROGRESS, Ami, Arn, ImageSnapshot, ImageStatus, InvalidArn

BUILD_ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
VERSION_ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0"

KNOWN = [
    "PENDING",
    "CREATING",
    "BUILDING",
    "TESTING",
    "DISTRIBUTING",
    "INTEGRATING",
    "AVAILABLE",
    "CANCELLED",
    "FAILED",
    "DEPRECATED",
    "DELETED",
    "DISABLED",
]
TERMINAL = {"AVAILABLE", "CANCELLED", "FAILED", "DEPRECATED", "DELETED", "DISABLED"}


# --- Arn.parse -------------------------------------------------------------------------


def test_parses_a_build_version_arn_into_its_parts() -> None:
    assert Arn.parse(BUILD_ARN) == Arn(
        partition="aws",
        region="us-east-1",
        account="123456789012",
        name="web-base",
        version="1.4.0",
        build=7,
    )


def test_a_build_version_arn_is_a_build() -> None:
    assert Arn.parse(BUILD_ARN).is_build


def test_parses_a_version_arn_without_a_build() -> None:
    arn = Arn.parse(VERSION_ARN)
    assert (arn.name, arn.version, arn.build, arn.is_build) == ("web-base", "1.4.0", None, False)


def test_the_version_arn_of_a_build_drops_the_build_number() -> None:
    assert Arn.parse(BUILD_ARN).version_arn == VERSION_ARN


@pytest.mark.parametrize(
    "text",
    [
        BUILD_ARN,
        VERSION_ARN,
        "arn:aws-cn:imagebuilder:cn-north-1:123456789012:image/web-base/1.4.0/7",
        "arn:aws-us-gov:imagebuilder:us-gov-west-1:123456789012:image/web-base/2.0.1",
        "arn:aws:imagebuilder:eu-west-1:aws:image/amazon-linux-2-x86/x.x.x",
    ],
)
def test_str_gives_back_the_arn_it_was_parsed_from(text: str) -> None:
    assert str(Arn.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "partition", "region"),
    [
        (
            "arn:aws-cn:imagebuilder:cn-north-1:123456789012:image/web-base/1.4.0/7",
            "aws-cn",
            "cn-north-1",
        ),
        (
            "arn:aws-cn:imagebuilder:cn-northwest-1:123456789012:image/web-base/1.4.0",
            "aws-cn",
            "cn-northwest-1",
        ),
        (
            "arn:aws-us-gov:imagebuilder:us-gov-west-1:123456789012:image/web-base/1.4.0/7",
            "aws-us-gov",
            "us-gov-west-1",
        ),
    ],
)
def test_parses_arns_of_other_partitions(text: str, partition: str, region: str) -> None:
    arn = Arn.parse(text)
    assert (arn.partition, arn.region) == (partition, region)


@pytest.mark.parametrize("version", ["x.x.x", "1.x.x", "1.4.x"])
def test_a_version_arn_may_use_x_wildcards(version: str) -> None:
    arn = Arn.parse(f"arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/{version}")
    assert (arn.version, arn.build) == (version, None)


@pytest.mark.parametrize("version", ["x.1.x", "1.x.8", "x.x.8", "x.2.x", "1.x.0", "x.0.0"])
def test_refuses_a_wildcard_with_a_number_right_of_the_first_x(version: str) -> None:
    """The model's pattern takes them; AWS's semantic-versioning guide: "all nodes to
    the right of the first wildcard must also be wildcards" (x.2.x, 1.x.8 "invalid,
    and produces an error")."""
    text = f"arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/{version}"
    with pytest.raises(InvalidArn) as raised:
        Arn.parse(text)
    assert str(raised.value) == (
        f"{text!r}: {version} is not a valid wildcard version: every node right of the "
        "first x must be x (x.x.x, 1.x.x or 1.2.x)"
    )


@pytest.mark.parametrize("arn", [BUILD_ARN, VERSION_ARN])
def test_a_version_node_may_be_as_large_as_two_to_the_thirty_minus_one(arn: str) -> None:
    largest = arn.replace("1.4.0", "1073741823.0.1073741823")
    assert Arn.parse(largest).version == "1073741823.0.1073741823"


@pytest.mark.parametrize("version", ["1073741824.0.0", "1.1073741824.x", "0.0.99999999999"])
def test_refuses_a_version_node_above_two_to_the_thirty_minus_one(version: str) -> None:
    text = f"arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/{version}"
    with pytest.raises(InvalidArn, match=r"is above 1073741823 \(2\^30-1\), the largest"):
        Arn.parse(text)


def test_an_aws_owned_image_has_the_account_aws() -> None:
    arn = Arn.parse("arn:aws:imagebuilder:us-east-1:aws:image/amazon-linux-2-x86/x.x.x")
    assert arn.account == "aws"


def test_image_names_may_hold_digits_hyphens_and_underscores() -> None:
    arn = Arn.parse("arn:aws:imagebuilder:us-east-1:123456789012:image/web_base-2/1.0.0/1")
    assert arn.name == "web_base-2"


@pytest.mark.parametrize("text", ["", "web-base", "image/web-base/1.4.0/7", " "])
def test_refuses_text_that_is_not_an_arn(text: str) -> None:
    with pytest.raises(InvalidArn, match=r"is not an ARN; expected an image ARN like arn:aws:"):
        Arn.parse(text)


def test_refuses_an_arn_of_another_service() -> None:
    with pytest.raises(
        InvalidArn,
        match=r"^'arn:aws:ec2:us-east-1:123456789012:image/ami-0a1b2c3d' "
        r"is not an Image Builder ARN; expected one like arn:aws:imagebuilder:",
    ):
        Arn.parse("arn:aws:ec2:us-east-1:123456789012:image/ami-0a1b2c3d")


def test_refuses_a_component_arn_naming_what_it_is() -> None:
    with pytest.raises(
        InvalidArn,
        match=r"names a component, not an image; expected an image ARN like .*"
        r"\(or its version ARN without the build number\)",
    ):
        Arn.parse("arn:aws:imagebuilder:us-east-1:123456789012:component/setup/1.0.0/1")


def test_refuses_an_image_pipeline_arn_saying_what_to_do_with_one() -> None:
    pipeline = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly"
    with pytest.raises(InvalidArn) as raised:
        Arn.parse(pipeline)
    assert str(raised.value).startswith(
        f"{pipeline!r} is an image pipeline ARN, not an image ARN: to start the pipeline and "
        "wait for its build, use `ibwatch start`; to follow its builds, list it in "
        "`[watch] pipelines`. An image ARN looks like arn:aws:imagebuilder:"
    )


def test_another_kind_of_arn_is_named_with_its_article() -> None:
    recipe = "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/web-base/1.0.0"
    with pytest.raises(InvalidArn, match=r"names an image-recipe, not an image;"):
        Arn.parse(recipe)


@pytest.mark.parametrize(
    "version", ["1.4", "1.4.0.1", "v1.4.0", "1.4.y", "latest", "1.4.0/x", "1.4.0/7/1"]
)
def test_refuses_a_malformed_version_saying_what_a_version_looks_like(version: str) -> None:
    text = f"arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/{version}"
    with pytest.raises(
        InvalidArn,
        match=r"is not a valid image ARN; expected region, 12-digit account, lower-case name "
        r"and version X\.Y\.Z with an optional /BUILD",
    ):
        Arn.parse(text)


@pytest.mark.parametrize("version", ["1.x.0", "x.x.x", "1.4.x"])
def test_refuses_a_build_number_behind_a_wildcard_version(version: str) -> None:
    text = f"arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/{version}/7"
    with pytest.raises(
        InvalidArn, match=rf"a build number needs an exact version, not {re.escape(version)}$"
    ):
        Arn.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "arn:aws:imagebuilder:us-east-1:12345:image/web-base/1.4.0/7",
        "arn:aws:imagebuilder:us-east-1:123456789012:image/Web-Base/1.4.0/7",
        "arn:aws:imagebuilder:useast1:123456789012:image/web-base/1.4.0/7",
    ],
)
def test_refuses_a_bad_account_name_or_region(text: str) -> None:
    with pytest.raises(InvalidArn, match=r"is not a valid image ARN"):
        Arn.parse(text)


def test_an_error_quotes_the_text_it_refused() -> None:
    text = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4"
    with pytest.raises(InvalidArn) as raised:
        Arn.parse(text)
    assert str(raised.value).startswith(repr(text))


def test_invalid_arn_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is not an ARN"):
        Arn.parse("web-base")


# --- ImageStatus -----------------------------------------------------------------------


@pytest.mark.parametrize("value", KNOWN)
def test_every_documented_status_is_known(value: str) -> None:
    assert ImageStatus(value).known


def test_there_are_exactly_the_twelve_documented_statuses() -> None:
    assert [s.value for s in ImageStatus] == KNOWN


@pytest.mark.parametrize("value", KNOWN)
def test_terminal_statuses_are_the_ones_a_build_ends_in(value: str) -> None:
    assert ImageStatus(value).terminal is (value in TERMINAL)


def test_only_available_succeeded() -> None:
    assert [s.value for s in ImageStatus if s.succeeded] == ["AVAILABLE"]


def test_progress_is_the_mandatory_chain_in_order() -> None:
    """CREATING and INTEGRATING are optional stages, so they are not in it."""
    assert [s.value for s in PROGRESS] == [
        "PENDING",
        "BUILDING",
        "TESTING",
        "DISTRIBUTING",
        "AVAILABLE",
    ]


def test_an_unknown_status_is_an_image_status() -> None:
    assert isinstance(ImageStatus("QUEUED_FOR_SCAN"), ImageStatus)


def test_an_unknown_status_is_not_known() -> None:
    assert not ImageStatus("QUEUED_FOR_SCAN").known


def test_an_unknown_status_is_not_terminal() -> None:
    assert not ImageStatus("QUEUED_FOR_SCAN").terminal


def test_an_unknown_status_did_not_succeed() -> None:
    assert not ImageStatus("QUEUED_FOR_SCAN").succeeded


def test_an_unknown_status_equals_its_string() -> None:
    status = ImageStatus("QUEUED_FOR_SCAN")
    assert status == "QUEUED_FOR_SCAN"
    assert str(status) == "QUEUED_FOR_SCAN"
    assert status.value == "QUEUED_FOR_SCAN"


def test_the_same_unknown_status_made_twice_is_equal_and_hashes_alike() -> None:
    assert len({ImageStatus("QUEUED_FOR_SCAN"), ImageStatus("QUEUED_FOR_SCAN")}) == 1


def test_an_unknown_status_does_not_become_a_listed_member() -> None:
    ImageStatus("QUEUED_FOR_SCAN")
    assert "QUEUED_FOR_SCAN" not in ImageStatus.__members__


def test_an_empty_status_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a valid ImageStatus"):
        ImageStatus("")


# --- ImageSnapshot ---------------------------------------------------------------------


def _snapshot(status: str) -> ImageSnapshot:
    return ImageSnapshot.model_validate(
        {
            "arn": BUILD_ARN,
            "status": status,
            "name": "web-base",
            "version": "1.4.0",
            "build": 7,
            "observed_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


def test_a_snapshot_takes_an_unknown_status_as_plain_text() -> None:
    snapshot = _snapshot("QUEUED_FOR_SCAN")
    assert isinstance(snapshot.status, ImageStatus)
    assert snapshot.status == "QUEUED_FOR_SCAN"


def test_an_unknown_status_is_written_to_json_as_its_string() -> None:
    assert '"status":"QUEUED_FOR_SCAN"' in _snapshot("QUEUED_FOR_SCAN").model_dump_json()


def test_an_unknown_status_round_trips_through_snapshot_json() -> None:
    snapshot = _snapshot("QUEUED_FOR_SCAN")
    back = ImageSnapshot.model_validate_json(snapshot.model_dump_json())
    assert back == snapshot
    assert back.status == "QUEUED_FOR_SCAN"
    assert not back.status.known


@pytest.mark.parametrize("value", KNOWN)
def test_a_known_status_round_trips_through_snapshot_json_as_the_member(value: str) -> None:
    back = ImageSnapshot.model_validate_json(_snapshot(value).model_dump_json())
    assert back.status is ImageStatus(value)


def test_a_snapshot_refuses_an_empty_status() -> None:
    with pytest.raises(ValidationError, match="status"):
        _snapshot("")


def test_a_snapshot_is_frozen() -> None:
    snapshot = _snapshot("BUILDING")
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.status = ImageStatus.AVAILABLE  # type: ignore[misc]


def test_a_snapshot_read_from_json_refuses_an_unknown_key() -> None:
    """Values are plain dataclasses, but reading one (a state file) validates fully."""
    with pytest.raises(ValidationError, match="colour"):
        ImageSnapshot.model_validate_json(
            _snapshot("BUILDING").model_dump_json().replace('{"arn"', '{"colour":"red","arn"', 1)
        )


def test_values_mirroring_aws_objects_keep_aws_camel_case_names_in_json() -> None:
    ami = Ami(region="us-east-1", image="ami-0a1b2c3d4e5f60718", account_id="123456789012")
    assert '"accountId":"123456789012"' in ami.model_dump_json()
    assert Ami.model_validate({"region": "us-east-1", "image": "ami-1", "accountId": "1"}) == Ami(
        region="us-east-1", image="ami-1", account_id="1"
    )
