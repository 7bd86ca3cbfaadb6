"""The daemon with `[aws.accounts]`, from its config file to /metrics: builds of a
role's account and of the default chain's are reported AVAILABLE while a second
account, whose role the default chain may not assume (moto's IAM says so), is paused
on AccessDenied; the calls are counted and paced per account. In-process, on virtual
time, against the simulator and moto's STS over loopback."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.accounts.support import (
    ARN_A,
    ARN_B,
    ARN_OWN,
    ROLE_A,
    ROLE_B,
    A,
    B,
    caller_may_assume,
    image,
)
from tests.cli.in_process import daemon_config, daemon_on, until
from tests.support import scenario
from watcher import daemon, server
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

ACCOUNTS = (
    f'[aws.accounts."{A}"]\nrole_arn = "{ROLE_A}"\n'
    f'[aws.accounts."{B}"]\nrole_arn = "{ROLE_B}"\nexternal_id = "platform-images"\n'
)


async def test_the_daemon_reads_each_account_with_its_role_and_counts_calls_by_account(
    tmp_path: Path, sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await caller_may_assume(sts, monkeypatch, ROLE_A)
    build = (("BUILDING", 60), ("AVAILABLE", None))
    clock = VirtualClock()
    simulator = Simulator(
        scenario([image(arn, *build) for arn in (ARN_A, ARN_B, ARN_OWN)]), clock=clock
    )
    config = tmp_path / "watcher.toml"
    watch = f'arns = ["{ARN_A}", "{ARN_B}", "{ARN_OWN}"]\n[watch.intervals]\ndefault = "30s"\n'
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with AsyncExitStack() as stack:
                url = await stack.enter_async_context(simulator)
                text = daemon_config(url, tmp_path / "state.db", watch)
                config.write_text(text.replace("[watch]\n", ACCOUNTS + "[watch]\n", 1))
                service = await stack.enter_async_context(daemon_on(config, clock))
                app = server.create_app(daemon.probes_of(service))
                http = await stack.enter_async_context(TestClient(TestServer(app)))

                def settled() -> bool:
                    watches = service.engine.watches
                    return all(
                        (w := watches.get(arn)) is not None and w.ended
                        for arn in (ARN_A, ARN_B, ARN_OWN)
                    )

                await until(settled, logs)
                role_a = await (
                    await service.source.accounts.session(A, "us-east-1").get_credentials()
                ).get_frozen_credentials()
                metrics = await (await http.get("/metrics")).text()
                ready = await (await http.get("/readyz")).json()
                events = await service.store.events()
            group.cancel_scope.cancel()
    available = {e.image.arn for e in events if e.current.status.value == "AVAILABLE"}
    assert available == {ARN_A, ARN_OWN}
    assert {e.image.arn for e in events} == {ARN_A, ARN_OWN}, "nothing of B's was reported"
    refused = service.engine.watches[ARN_B].error
    assert refused is not None
    assert refused.code == "AccessDenied"
    why = " ".join(ready.get("why", []))
    assert "1 watched ARN paused on AssumeRoleDenied (AccessDenied)" in why
    assert simulator.counters.keys_used() == {role_a.access_key, os.environ["AWS_ACCESS_KEY_ID"]}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }

    def calls(account: str, outcome: str) -> float:
        labels = (("account", account), ("outcome", outcome), ("region", "us-east-1"))
        return samples[("ibwatch_api_calls_total", labels)]

    # What was counted per account is what the simulator saw signed by its keys.
    assert calls(A, "ok") == simulator.counters.signed_with(role_a.access_key, "GetImage") > 0
    default = os.environ["AWS_ACCESS_KEY_ID"]
    assert calls("default", "ok") == simulator.counters.signed_with(default, "GetImage") > 0
    assert calls(B, "ok") == 0
    assert calls(B, "final") >= 1  # and again on its paused backoff
    assert calls(A, "final") == calls("default", "final") == 0
    rates = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "ibwatch_rate_limit_requests_per_second"
    }
    assert set(rates) == {
        (("account", account), ("region", "us-east-1")) for account in (A, B, "default")
    }
    assert all(rate > 0 for rate in rates.values())
    assert not any(arn in metrics for arn in (ARN_A, ARN_B, ARN_OWN)), "no ARN is a label"
