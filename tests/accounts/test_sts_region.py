"""A role is assumed at STS's endpoint in the Region of the ARN being read, never at
the global one (https://sts.amazonaws.com, where botocore sends an STS client that
has no Region): "Session tokens from the global STS endpoint are valid only in AWS
Regions that are enabled by default" (IAM User Guide, "Manage AWS STS in an AWS
Region"). moto's STS records the Region each AssumeRole was signed for (the SigV4
credential scope it reads the Region from)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from moto.sts.models import sts_backends

from tests.accounts.support import ARN_A, ARN_A_EU, ROLES, A, image, signed_by
from tests.support import scenario
from watcher.aws import AwsImageSource
from watcher.simulator import Simulator
from watcher.testing import FakeClock


async def test_each_region_is_read_with_keys_from_its_own_regional_sts(
    sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `[aws] region` and no AWS_REGION: A's build in eu-west-1 is read with keys
    that eu-west-1's STS issued, its build in us-east-1 with us-east-1's."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    simulator = Simulator(scenario([image(ARN_A), image(ARN_A_EU)]))
    async with (
        simulator as url,
        AwsImageSource(
            clock=FakeClock(epoch=datetime.now(UTC)), endpoint_url=url, accounts=ROLES
        ) as source,
    ):
        keys = {arn: await signed_by(simulator, source, arn) for arn in (ARN_A_EU, ARN_A) * 2}
    issued = {role.access_key_id: role.region_name for role in sts_backends[A]["aws"].assumed_roles}
    assert {arn: issued.get(key) for arn, key in keys.items()} == {
        ARN_A_EU: "eu-west-1",
        ARN_A: "us-east-1",
    }
    assert len(issued) == 2, "one AssumeRole per region, each reused"
