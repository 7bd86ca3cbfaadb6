"""The daemon's config refuses the version ARNs Image Builder refuses, naming the key:
AWS's semantic-versioning guide, "When you use a wildcard in any node, all nodes to
the right of the first wildcard must also be wildcards", and each node at most 2^30-1."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import ConfigError, load

IMAGE = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base"


def problems_of(tmp_path: Path, arns: list[str]) -> str:
    path = tmp_path / "watcher.toml"
    path.write_text("[watch]\narns = [" + ", ".join(f'"{a}"' for a in arns) + "]\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    return str(caught.value)


@pytest.mark.parametrize("version", ["x.1.x", "1.x.8", "x.x.8"])
def test_a_wildcard_with_a_number_right_of_the_first_x_is_refused_naming_the_key(
    tmp_path: Path, version: str
) -> None:
    message = problems_of(tmp_path, [f"{IMAGE}/1.x.x", f"{IMAGE}/{version}"])
    assert (
        f"watch.arns[1]: '{IMAGE}/{version}': {version} is not a valid wildcard version: "
        "every node right of the first x must be x"
    ) in message
    assert "watch.arns[0]" not in message, "1.x.x is valid"


def test_a_version_node_above_two_to_the_thirty_minus_one_is_refused(tmp_path: Path) -> None:
    message = problems_of(tmp_path, [f"{IMAGE}/1073741824.0.0"])
    assert f"watch.arns[0]: '{IMAGE}/1073741824.0.0': version node 1073741824 is above" in message


def test_a_wildcard_of_an_image_owned_by_aws_is_refused_naming_the_key(tmp_path: Path) -> None:
    """Listed without an exact version, ListImageBuildVersions returns "build versions
    for all of the images in your account": an AWS-owned image's wildcard finds nothing."""
    owned = "arn:aws:imagebuilder:us-east-1:aws:image/amazon-linux-2023-x86"
    message = problems_of(tmp_path, [f"{owned}/2025.1.0", f"{owned}/x.x.x"])
    assert f"watch.arns[1]: '{owned}/x.x.x': a wildcard version of an image owned by 'aws'" in (
        message
    )
    assert "watch.arns[0]" not in message, "an exact version is listed by imageVersionArn"
