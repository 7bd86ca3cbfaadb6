"""Which build a version ARN means (`watcher.listing.chosen`): the newest build of the
highest matching version, as AWS's semantic-versioning guide selects wildcards
(https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.listing import chosen
from watcher.model import Arn, ImageSnapshot, ImageStatus

PREFIX = "arn:aws:imagebuilder:us-east-1:123456789012:image/lib"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def build(version_and_build: str, minute: int, status: str = "AVAILABLE") -> ImageSnapshot:
    """A listed build `X.Y.Z/N` of image `lib`, created `minute` minutes after T0."""
    version, number = version_and_build.split("/")
    return ImageSnapshot(
        arn=f"{PREFIX}/{version_and_build}",
        status=ImageStatus(status),
        name="lib",
        version=version,
        build=int(number),
        created=T0 + timedelta(minutes=minute),
        observed_at=T0,
    )


def choice(wildcard: str, builds: list[ImageSnapshot]) -> str | None:
    """What `PREFIX/wildcard` means among `builds`, as `newest_build` filters them."""
    wanted = Arn.parse(f"{PREFIX}/{wildcard}")
    found = chosen([b for b in builds if wanted.matches(Arn.parse(b.arn))])
    return found.arn.removeprefix(f"{PREFIX}/") if found else None


def test_a_higher_version_wins_over_a_lower_one_built_later() -> None:
    """The user trial: 1.2.0/1 AVAILABLE, then 1.0.0/5 created later; `1.x.x` is 1.2.0/1."""
    assert choice("1.x.x", [build("1.2.0/1", 0), build("1.0.0/5", 10)]) == "1.2.0/1"


@pytest.mark.parametrize(
    ("wildcard", "expected"), [("x.x.x", "2.2.4/1"), ("1.x.x", "1.7.8/1"), ("1.6.x", "1.6.8/1")]
)
def test_the_guides_own_examples(wildcard: str, expected: str) -> None:
    """ "given the following latest versions: 2.2.4, 1.7.8, and 1.6.8": x.x.x = 2.2.4,
    1.x.x = 1.7.8, 1.6.x = 1.6.8; built in the reverse order, so creation time cannot
    be what picks them."""
    builds = [build("2.2.4/1", 0), build("1.7.8/1", 5), build("1.6.8/1", 9)]
    assert choice(wildcard, builds) == expected


def test_versions_compare_as_numbers_not_as_text() -> None:
    assert choice("1.x.x", [build("1.9.9/1", 5), build("1.10.0/1", 0)]) == "1.10.0/1"


def test_within_the_highest_version_the_newest_build_wins_whatever_its_state() -> None:
    builds = [build("1.4.0/7", 0), build("1.4.0/8", 5, "BUILDING"), build("1.3.0/9", 9)]
    assert choice("1.x.x", builds) == "1.4.0/8"


def test_builds_created_in_the_same_instant_go_by_build_number() -> None:
    builds = [build("1.4.0/5", 3), build("1.4.0/4", 3), build("1.4.0/3", 1)]
    assert choice("1.4.x", builds) == "1.4.0/5"
    assert choice("1.4.x", list(reversed(builds))) == "1.4.0/5"


def test_the_highest_version_with_any_build_wins_even_if_all_its_builds_failed() -> None:
    """Our reading, where the guide says nothing: 2.0.0 failed, 1.9.0 is still building;
    `x.x.x` is the failed 2.0.0 build (the wait exits 1), not the lower one in progress."""
    builds = [build("2.0.0/1", 0, "FAILED"), build("1.9.0/3", 5, "BUILDING")]
    assert choice("x.x.x", builds) == "2.0.0/1"


def test_no_build_means_none() -> None:
    assert choice("1.x.x", [build("2.0.0/1", 0)]) is None


@pytest.mark.parametrize("retired", ["DEPRECATED", "DISABLED", "DELETED"])
def test_a_retired_build_is_passed_over_by_a_wildcard(retired: str) -> None:
    """GetImage's model: "Builds that were later deprecated, disabled, or deleted don't
    resolve." 2.0.0's only build is retired: `x.x.x` is the highest version left."""
    builds = [build("2.0.0/1", 5, retired), build("1.9.0/1", 0)]
    assert choice("x.x.x", builds) == "1.9.0/1"


def test_a_retired_build_is_passed_over_within_an_exact_version() -> None:
    """The newest build of 1.4.0 was deprecated: 1.4.0 means the one before it; with
    every build retired, it means none (no build yet)."""
    builds = [build("1.4.0/2", 5, "DEPRECATED"), build("1.4.0/1", 0)]
    assert choice("1.4.0", builds) == "1.4.0/1"
    assert choice("1.4.0", [build("1.4.0/2", 5, "DELETED")]) is None


def test_failed_and_running_builds_still_count() -> None:
    """Only the retired states are passed over: a failed or running build is what a
    wait is for (our reading, `chosen`)."""
    builds = [build("1.4.0/2", 5, "FAILED"), build("1.4.0/1", 0)]
    assert choice("1.4.0", builds) == "1.4.0/2"
