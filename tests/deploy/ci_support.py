"""What the tests of the GitHub Action and the GitLab component share: the builds they
wait for on the simulator, and the AWS side of a CI job's environment."""

from __future__ import annotations

from pathlib import Path

import click.testing

from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Scenario

HEAD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
PIPELINE = f"{HEAD}:image-pipeline/web-base-nightly"
VERSION_ARN = f"{HEAD}:image/web-base/1.4.0"
ENDLESS = f"{HEAD}:image/endless/1.0.0/1"
AMIS = {"us-east-1": "ami-0a1b2c3d4e5f60718", "eu-west-1": "ami-0b2c3d4e5f6071829"}


def pipeline_to_available() -> Scenario:
    """PIPELINE starts builds of VERSION_ARN that end AVAILABLE with AMIS after 30 s of
    scenario time: 50 ms at this time scale."""
    return scenario(
        [],
        time_scale=600,
        pipelines=[
            {
                "arn": PIPELINE,
                "image": VERSION_ARN,
                "timeline": timeline(("PENDING", 10), ("BUILDING", 20), ("AVAILABLE", None)),
                "amis": [{"region": region, "image": ami} for region, ami in AMIS.items()],
            }
        ],
    )


def endless_build() -> Scenario:
    """ENDLESS, BUILDING for ever: what a timeout or a cancelled job ends."""
    return scenario([{"arn": ENDLESS, "timeline": timeline(("BUILDING", None))}])


def aws_env(home: Path, endpoint: str) -> dict[str, str]:
    """The AWS side of a job's environment: dummy keys, as after
    aws-actions/configure-aws-credentials or in CI/CD variables, botocore pointed at
    the simulator for every service (AWS_ENDPOINT_URL: Image Builder and CloudWatch
    Logs), and nothing of this machine's own AWS files or instance role."""
    return {
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_ENDPOINT_URL": endpoint,
    }


def check_jsonschema(*args: str) -> click.testing.Result:
    """check-jsonschema's CLI in this process: its import takes most of a second, paid
    once for every file of both CI tests instead of once per subprocess."""
    from check_jsonschema import main

    return click.testing.CliRunner().invoke(main, list(args))
