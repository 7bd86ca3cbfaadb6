"""`ibwatch run` with `[aws.accounts]` following `image-pipeline/*` of two accounts:
each account's pipelines are listed with that account's own credentials (a role's
for a listed account, the default chain's for the others) and each build found is
watched under its own pipeline. In-process, on virtual time, against the simulator
and moto's STS over loopback."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
import structlog

from tests.accounts.support import ROLE_A, A, B, caller_may_assume
from tests.cli.in_process import daemon_config, daemon_on, until
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

RUN = timeline(("BUILDING", 60), ("AVAILABLE", None))


@pytest.fixture
def sts(moto: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's server as STS (AWS_ENDPOINT_URL_STS): AssumeRole goes there."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto)
    return moto


def head(account: str) -> str:
    return f"arn:aws:imagebuilder:us-east-1:{account}"


def every_pipeline(account: str) -> str:
    return f"{head(account)}:image-pipeline/*"


def pipeline_of(account: str) -> str:
    # Names differ by account: the simulator's scenario wants them unique.
    return f"{head(account)}:image-pipeline/nightly-{account}"


def build_of(account: str) -> str:
    """The first build of `account`'s pipeline."""
    return f"{head(account)}:image/app-{account}/1.0.0/1"


def nightly(account: str) -> dict[str, object]:
    """A pipeline of `account` that runs once, 30 s in."""
    return {
        "arn": pipeline_of(account),
        "image": f"{head(account)}:image/app-{account}/1.0.0",
        "timeline": RUN,
        "schedule": {"every": "1d", "first": "30s"},
    }


async def test_every_pipeline_of_each_account_is_listed_with_that_accounts_credentials(
    tmp_path: Path, sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await caller_may_assume(sts, monkeypatch, ROLE_A)
    default_key = os.environ["AWS_ACCESS_KEY_ID"]
    clock = VirtualClock()
    # The simulator serves every pipeline to every caller; B's is not followed.
    simulator = Simulator(
        scenario([], pipelines=[nightly(A), nightly(ACCOUNT), nightly(B)]), clock=clock
    )
    watch = (
        f'pipelines = ["{every_pipeline(A)}", "{every_pipeline(ACCOUNT)}"]\n'
        'discovery_interval = "10s"\n[watch.intervals]\ndefault = "10s"\n'
    )
    accounts = f'[aws.accounts."{A}"]\nrole_arn = "{ROLE_A}"\n'
    config = tmp_path / "watcher.toml"
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with AsyncExitStack() as stack:
                url = await stack.enter_async_context(simulator)
                text = daemon_config(url, tmp_path / "state.db", watch)
                config.write_text(text.replace("[watch]\n", accounts + "[watch]\n", 1))
                service = await stack.enter_async_context(daemon_on(config, clock))
                build_a, build_own = build_of(A), build_of(ACCOUNT)

                def both_available() -> bool:
                    watches = service.engine.watches
                    return all(
                        (w := watches.get(arn)) is not None and w.ended
                        for arn in (build_a, build_own)
                    )

                await until(both_available, logs)
                role_a = await (
                    await service.source.accounts.session(A, "us-east-1").get_credentials()
                ).get_frozen_credentials()
                events = await service.store.events()
            group.cancel_scope.cancel()
    # Only the AVAILABLEs are certain: virtual time runs on while AssumeRole goes to
    # moto (real I/O the clock cannot see), so a BUILDING may be passed unseen.
    assert {(e.image.arn, e.watched) for e in events} == {
        (build_a, pipeline_of(A)),
        (build_own, pipeline_of(ACCOUNT)),
    }
    assert {e.image.arn for e in events if e.current.status.value == "AVAILABLE"} == {
        build_a,
        build_own,
    }
    assert build_of(B) not in service.engine.watches
    counters = simulator.counters
    assert counters.keys_used("ListImagePipelines") == {role_a.access_key, default_key}
    # Each pipeline's builds, and each build, are read with its own account's keys.
    assert counters.keys_used("ListImagePipelineImages") == {role_a.access_key, default_key}
    assert counters.signed_with(role_a.access_key, "ListImagePipelineImages") == 1
    assert counters.signed_with(default_key, "ListImagePipelineImages") == 1
    assert counters.signed_with(role_a.access_key, "GetImage") >= 1
    assert counters.requests["GetImagePipeline"] == 0
