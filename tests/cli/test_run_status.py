"""The daemon's /status: the watched builds in progress with their status and
running workflow step, for operators; and `progress` on the events it stores.
In-process, on virtual time, against the simulator over loopback."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import structlog
from aiohttp.test_utils import TestClient, TestServer

from tests.cli.in_process import daemon_config, daemon_on, until
from tests.support import ACCOUNT, scenario, timeline
from watcher import daemon, server
from watcher.daemon import Service
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

RUNNING = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/1"
DONE = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/db-base/2.0.0/3"


@asynccontextmanager
async def daemon_with_http(
    tmp_path: Path, watch: str
) -> AsyncIterator[tuple[Service, TestClient[Any, Any], list[dict[str, Any]]]]:
    clock = VirtualClock()
    plan = scenario(
        [
            # TESTING from 100s on, for good: three steps, the last one never ending.
            {"arn": RUNNING, "timeline": timeline(("BUILDING", 100), ("TESTING", None))},
            {"arn": DONE, "timeline": timeline(("AVAILABLE", None))},
        ]
    )
    config_path = tmp_path / "watcher.toml"
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with AsyncExitStack() as stack:
                url = await stack.enter_async_context(Simulator(plan, clock=clock))
                config_path.write_text(daemon_config(url, tmp_path / "state.db", watch))
                service = await stack.enter_async_context(daemon_on(config_path, clock))
                app = server.create_app(daemon.probes_of(service))
                http = await stack.enter_async_context(TestClient(TestServer(app)))
                yield service, http, logs
            group.cancel_scope.cancel()


def shows_a_testing_step(service: Service) -> bool:
    watch = service.engine.watches.get(RUNNING)
    return watch is not None and watch.progress is not None and watch.progress.workflow == "TEST"


async def test_status_lists_builds_in_progress_with_their_running_step(tmp_path: Path) -> None:
    watch = f'arns = ["{RUNNING}", "{DONE}"]\n[watch.intervals]\ndefault = "30s"\n'
    async with daemon_with_http(tmp_path, watch) as (service, http, logs):
        await until(lambda: shows_a_testing_step(service), logs)
        response = await http.get("/status")
        body = await response.json()
        everything = await (await http.get("/status?all=1")).json()
        metrics = await (await http.get("/metrics")).text()
        events = await service.store.events()
    assert response.status == 200
    assert (body["count"], body["watched"], body["all"]) == (1, 2, False)
    (build,) = body["builds"]
    assert (build["arn"], build["image"], build["status"]) == (
        RUNNING,
        "web-base 1.4.0/1",
        "TESTING",
    )
    progress = build["progress"]
    assert (progress["workflow"], progress["steps"]) == ("TEST", 3)
    assert progress["step"] in (1, 2, 3)
    assert progress["step_name"] in (
        "LaunchTestInstance",
        "ApplyTestComponents",
        "TerminateTestInstance",
    )
    assert build["error"] is None
    # ?all=1 lists the ended build too, which runs no workflow.
    assert [b["arn"] for b in everything["builds"]] == sorted([RUNNING, DONE])
    assert next(b for b in everything["builds"] if b["arn"] == DONE)["progress"] is None
    done = re.search(r'^ibwatch_progress_lookups_total\{outcome="done"\} (\S+)$', metrics, re.M)
    assert done is not None
    assert float(done.group(1)) >= 2  # at least the BUILD and the TEST workflow's
    # The daemon's events carry the step running when they were seen.
    testing = next(e for e in events if e.current.status.value == "TESTING")
    assert testing.progress is not None
    assert testing.progress.workflow == "TEST"


async def test_progress_share_zero_turns_the_look_ups_off(tmp_path: Path) -> None:
    watch = f'arns = ["{RUNNING}"]\n[watch.intervals]\ndefault = "30s"\n'
    off = watch + "[diagnostics]\nprogress_share = 0\n"
    async with daemon_with_http(tmp_path, off) as (service, http, logs):
        await until(
            lambda: (
                (w := service.engine.watches.get(RUNNING)) is not None
                and w.tracked is not None
                and w.tracked.snapshot.status.value == "TESTING"
            ),
            logs,
        )
        body = await (await http.get("/status")).json()
    assert body["builds"][0]["status"] == "TESTING"
    assert body["builds"][0]["progress"] is None
    assert service.engine.progress_lookups is None


async def test_a_reload_that_changes_sections_it_cannot_apply_says_which_keys(
    tmp_path: Path,
) -> None:
    """[aws] and [diagnostics] need a restart: SIGHUP's reload names their changed keys
    (it once raised on any section but [watch] while listing them)."""
    watch = f'arns = ["{RUNNING}"]\n[watch.intervals]\ndefault = "30s"\n'
    async with daemon_with_http(tmp_path, watch) as (service, _, logs):
        config_path = tmp_path / "watcher.toml"
        text = config_path.read_text()
        changed = text.replace('region = "us-east-1"', 'region = "eu-west-1"').replace(
            "[state]", "[diagnostics]\nlog_lines = 5\n[events]\nfollow_all = true\n[state]"
        )
        config_path.write_text(changed)
        await daemon._reload(service, config_path)
    (warning,) = [line for line in logs if line["event"] == "config.needs_restart"]
    assert warning["sections"] == ["aws", "diagnostics", "events"]
    assert warning["keys"] == ["aws.region", "diagnostics.log_lines", "events.follow_all"]
    assert service.config.diagnostics.log_lines == 0, "kept until a restart"


async def test_status_shows_why_a_build_is_not_polled_without_the_endpoint_url(
    tmp_path: Path,
) -> None:
    """Nothing listens on the endpoint: `last_error` says so, naming its host only."""
    clock = VirtualClock()
    with socket.socket() as probe:  # a loopback port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/some/path?token=abc"
    config_path = tmp_path / "watcher.toml"
    watch = f'arns = ["{RUNNING}"]\n[watch.intervals]\ndefault = "30s"\n'
    config_path.write_text(daemon_config(url, tmp_path / "state.db", watch))
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with (
                daemon_on(config_path, clock) as service,
                TestClient(TestServer(server.create_app(daemon.probes_of(service)))) as http,
            ):
                await until(
                    lambda: (
                        (w := service.engine.watches.get(RUNNING)) is not None
                        and w.last_error is not None
                    ),
                    logs,
                )
                body = await (await http.get("/status")).json()
            group.cancel_scope.cancel()
    (build,) = body["builds"]
    assert build["status"] is None
    error = build["last_error"]
    assert error["type"] == "Unavailable"
    assert "http://127.0.0.1/…" in error["message"]
    assert "some/path" not in error["message"]
    assert "token" not in error["message"]


async def test_a_pipeline_that_does_not_exist_is_named_in_status_and_counted_while_ready(
    tmp_path: Path,
) -> None:
    """One source failing to list (here a pipeline ARN with a typo) keeps the daemon
    ready for the rest, but is not only a log line: /status names it with its error,
    /readyz mentions it, and a gauge counts it for an alert."""
    missing = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/web-base-nightyl"
    watch = f'arns = ["{RUNNING}"]\npipelines = ["{missing}"]\n'
    async with daemon_with_http(tmp_path, watch) as (service, http, logs):
        await until(
            lambda: (
                bool(service.discovery.failing())
                and service.discovery.passes > 0
                and (w := service.engine.watches.get(RUNNING)) is not None
                and w.tracked is not None
            ),
            logs,
        )
        status = await (await http.get("/status")).json()
        ready = await http.get("/readyz")
        readiness = await ready.json()
        metrics = await (await http.get("/metrics")).text()
    [failing] = status["discovery"]["failing"]
    assert failing["source"] == missing
    assert (failing["error"]["type"], failing["error"]["code"]) == (
        "NotFound",
        "ResourceNotFoundException",
    )
    assert failing["since"].startswith("20")  # ISO-8601
    assert ready.status == 200, readiness
    assert readiness["discovery"] == "1 source of builds failing to list: see /status"
    gauge = 'ibwatch_discovery_sources_failing{account="default",region="us-east-1"} 1.0'
    assert gauge in metrics.splitlines()


async def test_a_daemon_whose_only_source_is_a_typo_is_ready_and_says_it_fails(
    tmp_path: Path,
) -> None:
    """No build ARN to poll, one pipeline that does not exist: its NotFound is an
    answer of the API, so /readyz is 200 (with the discovery note), not 503 with "no
    call has been made yet"; ibwatch_ready says the same."""
    missing = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/web-base-nightyl"
    async with daemon_with_http(tmp_path, f'pipelines = ["{missing}"]\n') as (service, http, logs):
        await until(lambda: service.discovery.passes > 0, logs)
        ready = await http.get("/readyz")
        readiness = await ready.json()
        metrics = (await (await http.get("/metrics")).text()).splitlines()
    assert [f.source for f in service.discovery.failing()] == [missing]
    assert (ready.status, readiness) == (
        200,
        {"status": "ready", "discovery": "1 source of builds failing to list: see /status"},
    )
    assert "ibwatch_ready 1.0" in metrics
    assert 'ibwatch_discovery_sources_failing{account="default",region="us-east-1"} 1.0' in metrics


async def test_a_reload_that_stops_following_a_region_drops_its_failing_gauge(
    tmp_path: Path,
) -> None:
    """SIGHUP removes the only source of eu-west-1: its series leaves
    ibwatch_discovery_sources_failing, rather than stay at 0 for good."""

    def missing(region: str) -> str:
        return f"arn:aws:imagebuilder:{region}:{ACCOUNT}:image-pipeline/no-such-pipeline"

    def gauge(service: Service) -> dict[str, float]:
        registry = service.metrics.registry
        return {
            sample.labels["region"]: sample.value
            for family in registry.collect()
            if family.name == "ibwatch_discovery_sources_failing"
            for sample in family.samples
        }

    both = f'pipelines = ["{missing("us-east-1")}", "{missing("eu-west-1")}"]\n'
    async with daemon_with_http(tmp_path, both) as (service, _, logs):
        await until(lambda: service.discovery.passes > 0, logs)
        before = gauge(service)
        config_path = tmp_path / "watcher.toml"
        config_path.write_text(config_path.read_text().replace(f', "{missing("eu-west-1")}"', ""))
        passes = service.discovery.passes
        await daemon._reload(service, config_path)
        # The pass under way at the reload (if any) lists the old sources; the next the new.
        await until(lambda: service.discovery.passes >= passes + 2, logs)
        after = gauge(service)
    assert before == {"us-east-1": 1, "eu-west-1": 1}
    assert after == {"us-east-1": 1}
