"""`ibwatch_api_calls_total` counts each GetImage call under the region called, as AWS's
request quotas and ibwatch's rate limiters go (per account and Region), and has the
series of each configured ARN's account and region at 0 before the first call."""

from __future__ import annotations

import pytest

from watcher.errors import Throttled
from watcher.metrics import OUTCOMES, MeteredSource, Metrics, Readiness
from watcher.testing import FakeClock, ScriptedSource

EAST = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
WEST = "arn:aws:imagebuilder:eu-west-1:123456789012:image/web-base/1.4.0/8"
PIPELINE = "arn:aws:imagebuilder:ap-south-1:123456789012:image-pipeline/nightly"


def calls(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    return {
        (sample.labels["outcome"], sample.labels["account"], sample.labels["region"]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "ibwatch_api_calls_total"
    }


async def test_calls_are_counted_per_region_from_series_made_at_0() -> None:
    clock = FakeClock()
    metrics = Metrics()
    throttled = Throttled("CallRateLimitExceededException", code="CallRateLimitExceededException")
    source = ScriptedSource(clock, {EAST: ["BUILDING"], WEST: [throttled]})
    metered = MeteredSource(
        source, metrics, Readiness(clock), clock, region="us-east-1", arns=[WEST, PIPELINE]
    )
    before = calls(metrics)
    await metered.get(EAST)
    with pytest.raises(Throttled):
        await metered.get(WEST)
    regions = ("us-east-1", "eu-west-1", "ap-south-1")
    assert before == {(o, "default", r): 0 for o in OUTCOMES for r in regions}
    assert calls(metrics) == {
        **before,
        ("ok", "default", "us-east-1"): 1,
        ("throttled", "default", "eu-west-1"): 1,
    }
