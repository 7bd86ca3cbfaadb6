"""Each account's builds are read with that account's credentials: an assumed role's
(STS on moto's server), a profile's, or, for an account not listed, the default
chain's. The simulator says which access key signed each request."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from moto.sts.models import sts_backends

from tests.accounts.support import (
    ARN_A,
    ARN_B,
    ARN_OWN,
    DEFAULT_KEY,
    ROLE_A,
    ROLES,
    A,
    B,
    image,
    signed_by,
    sts_client,
)
from tests.support import scenario
from watcher.aws import AwsImageSource
from watcher.config.aws import AccountConfig
from watcher.simulator import Simulator
from watcher.testing import FakeClock

THREE_ACCOUNTS = scenario([image(ARN_A), image(ARN_B), image(ARN_OWN)])


async def test_each_listed_account_is_read_with_its_own_assumed_role(sts: str) -> None:
    """A's ARNs only with A's role's keys, B's with B's, the rest with the default keys."""
    simulator = Simulator(THREE_ACCOUNTS)
    clock = FakeClock(epoch=datetime.now(UTC))
    async with (
        simulator as url,
        AwsImageSource(clock=clock, endpoint_url=url, accounts=ROLES) as source,
    ):
        used: dict[str, set[str]] = {}
        for arn in (ARN_A, ARN_B, ARN_OWN) * 2:
            used.setdefault(arn, set()).add(await signed_by(simulator, source, arn))
        frozen = {
            account: await (
                await source.accounts.session(account, "us-east-1").get_credentials()
            ).get_frozen_credentials()
            for account in (A, B)
        }
        identities = {}
        for account, keys in frozen.items():
            async with sts_client(sts, keys) as client:
                identities[account] = (await client.get_caller_identity())["Arn"]
    assert used == {
        ARN_A: {frozen[A].access_key},
        ARN_B: {frozen[B].access_key},
        ARN_OWN: {DEFAULT_KEY},
    }
    assert len({frozen[A].access_key, frozen[B].access_key, DEFAULT_KEY}) == 3
    # STS itself says whose keys they are: each role's, with ibwatch's session name.
    assert identities == {
        A: f"arn:aws:sts::{A}:assumed-role/ibwatch-reader/ibwatch",
        B: f"arn:aws:sts::{B}:assumed-role/ibwatch-reader/ibwatch",
    }


async def test_the_external_id_and_session_name_reach_assume_role(sts: str) -> None:
    access = AccountConfig(role_arn=ROLE_A, external_id="platform-images", session_name="ci-42")
    simulator = Simulator(THREE_ACCOUNTS)
    async with (
        simulator as url,
        AwsImageSource(
            clock=FakeClock(epoch=datetime.now(UTC)), endpoint_url=url, accounts={A: access}
        ) as source,
    ):
        await source.get(ARN_A)
    # What moto's STS recorded of the AssumeRole call (its own state: it keeps no log).
    (assumed,) = sts_backends[A]["aws"].assumed_roles
    assert (assumed.role_arn, assumed.external_id, assumed.session_name) == (
        ROLE_A,
        "platform-images",
        "ci-42",
    )


async def test_a_profile_account_is_read_with_that_profiles_credentials(tmp_path: Path) -> None:
    # tests/conftest.py points AWS_SHARED_CREDENTIALS_FILE here, empty until now.
    (tmp_path / "no-aws-credentials").write_text(
        "[images-b]\naws_access_key_id = AKIDPROFILEB\naws_secret_access_key = not-a-secret\n"
    )
    simulator = Simulator(THREE_ACCOUNTS)
    async with (
        simulator as url,
        AwsImageSource(
            clock=FakeClock(), endpoint_url=url, accounts={B: AccountConfig(profile="images-b")}
        ) as source,
    ):
        keys = {arn: await signed_by(simulator, source, arn) for arn in (ARN_A, ARN_B, ARN_OWN)}
    assert keys == {ARN_A: DEFAULT_KEY, ARN_B: "AKIDPROFILEB", ARN_OWN: DEFAULT_KEY}


async def test_without_accounts_every_arn_is_read_with_the_default_chain() -> None:
    simulator = Simulator(THREE_ACCOUNTS)
    async with (
        simulator as url,
        AwsImageSource(clock=FakeClock(), endpoint_url=url) as source,
    ):
        keys = {await signed_by(simulator, source, arn) for arn in (ARN_A, ARN_B, ARN_OWN)}
    assert keys == {DEFAULT_KEY}
    assert source.account_keys == ("default",)
