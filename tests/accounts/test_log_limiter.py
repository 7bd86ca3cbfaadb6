"""CloudWatch Logs' quota is per account and Region, like Image Builder's, so the log
reads are paced per (account, region) too: a throttled log read in one account does
not slow another account's.

Two simulators on loopback, one per account, each named by a profile of the AWS
config file (its `services` section, botocore's per-service endpoint setting): the
default chain's reads go to one whose GetLogEvents is throttled, B's profile's to
one that answers. One fake clock drives both and the reads, so a wait for a token
shows as time passing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.accounts.support import ARN_B, ARN_OWN, B, image
from tests.support import scenario
from watcher.aws import AwsImageSource
from watcher.config.aws import AccountConfig
from watcher.errors import Throttled
from watcher.simulator import Simulator
from watcher.testing import FakeClock

BUILD = (("BUILDING", 600), ("AVAILABLE", None))
THROTTLED = {
    "outages": [{"code": "ThrottlingException", "end": "1d", "operations": ["GetLogEvents"]}]
}


def services(name: str, url: str) -> str:
    """A `services` section sending Image Builder and CloudWatch Logs to `url` (keys:
    the service ids, lower case, spaces as underscores)."""
    return (
        f"[services {name}]\nimagebuilder =\n  endpoint_url = {url}\n"
        f"cloudwatch_logs =\n  endpoint_url = {url}\n"
    )


async def test_a_throttled_log_read_in_one_account_does_not_slow_anothers(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    throttled = Simulator(scenario([image(ARN_OWN, *BUILD)], faults=THROTTLED), clock=clock)
    calm = Simulator(scenario([image(ARN_B, *BUILD)]), clock=clock)
    async with throttled as own_url, calm as b_url:
        # tests/conftest.py points AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE here.
        (tmp_path / "no-aws-config").write_text(
            "[default]\nservices = own\n[profile images-b]\nservices = b\n"
            + services("own", own_url)
            + services("b", b_url)
        )
        (tmp_path / "no-aws-credentials").write_text(
            "[images-b]\naws_access_key_id = AKIDPROFILEB\naws_secret_access_key = x\n"
        )
        async with AwsImageSource(
            clock=clock, accounts={B: AccountConfig(profile="images-b")}
        ) as source:
            clock.advance(60)  # both builds have written to their logs by now
            with pytest.raises(Throttled):
                await source.log_tail(ARN_OWN, "/aws/imagebuilder/app-own", "1.0.0/1", 1)
            before = clock.monotonic()
            tail = await source.log_tail(ARN_B, "/aws/imagebuilder/app-b", "1.0.0/1", 1)
            waited = clock.monotonic() - before
    assert throttled.counters.requests["GetLogEvents"] == 3, "retried on its own limiter"
    assert calm.counters.requests["GetLogEvents"] == 1
    assert len(tail) == 1
    assert waited == 0, "B's read waited for a token the other account's throttles took"
