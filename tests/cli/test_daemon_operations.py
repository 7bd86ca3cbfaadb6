"""Running the daemon in production: probes, metrics, SIGTERM with deliveries in
flight, SIGHUP reloads. Real subprocesses, the simulator and receivers on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.support import IBWATCH, LineReader
from tests.support import ACCOUNT, scenario, timeline
from watcher.simulator import Simulator
from watcher.testing import FakeClock


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def arns(prefix: str, count: int) -> list[str]:
    return [
        f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/{prefix}-{n}/1.0.0/1" for n in range(count)
    ]


def config_text(endpoint_url: str, watched: list[str], port: int, extra: str = "") -> str:
    listed = ", ".join(f'"{a}"' for a in watched)
    return (
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f"[watch]\narns = [{listed}]\nmax_tps = 50\n"
        f'[watch.intervals]\ndefault = "0.1s"\n[watch.retry]\nbase = "0.05s"\ncap = "0.2s"\n'
        f'[state]\npath = "state.db"\n[server]\nlisten = "127.0.0.1:{port}"\n'
        f'[[sinks]]\ntype = "log"\n{extra}'
    )


def changes(reader: LineReader) -> list[dict[str, Any]]:
    return [c for c in reader.json_lines() if c.get("event") == "image.state_changed"]


@asynccontextmanager
async def daemon(config: Path, env: dict[str, str] | None = None) -> AsyncIterator[LineReader]:
    command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]
    async with (
        await anyio.open_process(command, env={**os.environ, **(env or {})}) as process,
        anyio.create_task_group() as group,
    ):
        reader = LineReader(process)
        group.start_soon(reader.pump)
        try:
            await reader.until(lambda lines: any('"ibwatch.started"' in line for line in lines))
            yield reader
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    await process.wait()


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


@pytest.mark.timeout(90)
async def test_probes_and_metrics_match_what_the_simulator_served(tmp_path: Path) -> None:
    watched = arns("ready", 6)
    plan = scenario(
        [{"arn": a, "timeline": timeline(("AVAILABLE", None))} for a in watched],
        faults={"rate_limits": {"GetImage": {"rate": 4, "burst": 2}}},
    )
    port = free_port()
    simulator = Simulator(plan)
    async with simulator as url:
        (tmp_path / "watcher.toml").write_text(config_text(url, watched, port))
        async with daemon(tmp_path / "watcher.toml") as reader:
            # Every build is AVAILABLE at once, so each leaves the schedule after one
            # acknowledged call: once all six are seen, no more calls are made.
            await reader.until(lambda lines: len(changes(reader)) >= len(watched))
            health = await get(port, "/healthz")
            ready = await get(port, "/readyz")
            status, text = await get(port, "/metrics")
    assert health == (200, '{"status": "ok"}')
    assert ready == (200, '{"status": "ready"}')
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    calls = {
        outcome: samples[
            (
                "ibwatch_api_calls_total",
                (("account", "default"), ("outcome", outcome), ("region", "us-east-1")),
            )
        ]
        for outcome in ("ok", "throttled", "unavailable", "final")
    }
    assert calls["ok"] == simulator.counters.outcome("ok") == len(watched)
    assert calls["throttled"] == simulator.counters.outcome("CallRateLimitExceededException")
    assert calls["throttled"] > 0, "the scenario's rate limit was felt"
    assert sum(calls.values()) == simulator.counters.requests["GetImage"]
    assert samples[("ibwatch_images_watched", (("status", "AVAILABLE"),))] == len(watched)
    assert samples[
        ("ibwatch_transitions_total", (("from_status", "none"), ("to_status", "AVAILABLE")))
    ] == len(watched)
    rate = (
        "ibwatch_rate_limit_requests_per_second",
        (("account", "default"), ("region", "us-east-1")),
    )
    assert samples[rate] > 0
    assert ("ibwatch_outbox_pending", (("sink", "log"),)) in samples
    assert samples[("ibwatch_poll_duration_seconds_count", ())] == sum(calls.values())
    assert not any(a in text for a in watched), "no ARN is a label"


@pytest.mark.timeout(60)
async def test_not_ready_while_every_call_is_denied(tmp_path: Path) -> None:
    watched = arns("denied", 2)
    plan = scenario(
        [{"arn": a, "timeline": timeline(("BUILDING", None))} for a in watched],
        faults={"errors": {"ForbiddenException": 1.0}},
    )
    port = free_port()
    async with Simulator(plan) as url:
        (tmp_path / "watcher.toml").write_text(config_text(url, watched, port))
        async with daemon(tmp_path / "watcher.toml") as reader:
            # Paused, not stopped: the daemon polls them again on a slow backoff.
            await reader.until(
                lambda lines: sum('"image.watch_paused"' in line for line in lines) >= len(watched)
            )
            status, body = await get(port, "/readyz")
            health = await get(port, "/healthz")
            _, metrics = await get(port, "/metrics")
    assert status == 503
    assert "\nibwatch_ready 0.0\n" in metrics, "the gauge says what /readyz answers"
    why = json.loads(body)["why"]
    assert "AccessDenied: ForbiddenException" in why[0]
    assert "2 watched ARNs paused on AccessDenied (ForbiddenException)" in why[1]
    assert health[0] == 200, "alive, only not ready"


class SlowReceiver:
    """Acknowledges each POST after a real delay, recording webhook ids."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.ids: list[str] = []
        self.arrived = anyio.Event()
        self._acknowledged = anyio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived.set()
        await anyio.sleep(self.delay)  # the slowness under test, not a wait for a condition
        self.ids.append(request.headers["webhook-id"])
        self._acknowledged.set()
        self._acknowledged = anyio.Event()
        return web.Response(status=204)

    async def until_acknowledged(self, wanted: set[str], also: set[str]) -> None:
        with anyio.fail_after(30):
            while not wanted <= set(self.ids) | also:
                await self._acknowledged.wait()


@asynccontextmanager
async def serving(receiver: SlowReceiver, port: int) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


@pytest.mark.timeout(120)
async def test_sigterm_during_slow_deliveries_exits_in_grace_and_restart_sends_the_rest(
    tmp_path: Path,
) -> None:
    watched = arns("burst", 8)
    plan = scenario([{"arn": a, "timeline": timeline(("AVAILABLE", None))} for a in watched])
    port, hook_port, grace = free_port(), free_port(), 2.0
    webhook = (
        f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl_env = "OPS_HOOK"\n'
        f'[shutdown]\ngrace = "{grace}s"\n'
    )
    env = {"OPS_HOOK": f"http://127.0.0.1:{hook_port}/hook"}
    slow = SlowReceiver(delay=1.0)
    async with Simulator(plan) as url:
        (tmp_path / "watcher.toml").write_text(config_text(url, watched, port, webhook))
        command = [
            str(IBWATCH),
            "run",
            "--config",
            str(tmp_path / "watcher.toml"),
            "--log-format",
            "json",
        ]
        async with (
            serving(slow, hook_port),
            await anyio.open_process(command, env={**os.environ, **env}) as first,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(first)
            group.start_soon(reader.pump)
            await reader.until(lambda lines: len(changes(reader)) >= len(watched))
            await slow.arrived.wait()
            first.send_signal(signal.SIGTERM)
            # Only a guard against a hang: how long the shutdown took is read from the
            # daemon's own log below, so that a loaded machine's slow process start-up
            # and teardown, which no grace period governs, cannot fail the test.
            with anyio.fail_after(grace + 15):
                assert await first.wait() == 0
        [stopping] = [c for c in reader.json_lines() if c.get("event") == "ibwatch.stopping"]
        stopped = [c for c in reader.json_lines() if c.get("event") == "ibwatch.stopped"]
        took = datetime.fromisoformat(stopped[0]["timestamp"]) - datetime.fromisoformat(
            stopping["timestamp"]
        )
        # The drain is cut at the grace; counting what is left takes a quarter of it
        # at most (watcher.daemon.UNDELIVERED_WITHIN); the rest is closing sockets.
        assert took.total_seconds() <= grace + grace / 4 + 0.5, took
        [started] = [c for c in reader.json_lines() if c.get("event") == "ibwatch.started"]
        all_ids = {c["id"] for c in changes(reader)}

        fast = SlowReceiver(delay=0)
        async with serving(fast, hook_port), daemon(tmp_path / "watcher.toml", env):
            await fast.until_acknowledged(all_ids, also=set(slow.ids))
    from watcher import __version__

    assert (started["version"], started["build_arns"], started["version_arns"]) == (
        __version__,
        8,
        0,
    )
    assert (started["pipelines"], started["sinks"]) == (0, 2)
    assert (started["level"], started["config"]["sinks"][1]["url"]) == (
        "info",
        "http://127.0.0.1/…",
    )
    assert "/hook" not in json.dumps(started), "the start-up line shows no secret URL"
    assert 0 < len(slow.ids) < len(watched), "the grace period ended mid-burst"
    # Left in the outbox: all not acknowledged, plus at most the one whose
    # acknowledgement the deadline cut off (it is sent again, under its id).
    left = stopped[0]["undelivered"]
    assert len(watched) - len(slow.ids) <= left <= len(watched) - len(slow.ids) + 1
    assert set(slow.ids) | set(fast.ids) == all_ids, "every event arrived, by its own id"
    assert set(fast.ids) - set(slow.ids) == all_ids - set(slow.ids)


@pytest.mark.timeout(90)
async def test_sighup_adds_an_arn_and_a_broken_file_keeps_the_old_config(tmp_path: Path) -> None:
    first, added = arns("hup", 2)
    plan = scenario([{"arn": a, "timeline": timeline(("BUILDING", None))} for a in (first, added)])
    port = free_port()
    clock = FakeClock()
    async with Simulator(plan, clock=clock) as url:
        config = tmp_path / "watcher.toml"
        config.write_text(config_text(url, [first], port))
        async with daemon(config) as reader:
            await reader.until(lambda lines: len(changes(reader)) >= 1)
            config.write_text(config_text(url, [first, added], port))
            reader.process.send_signal(signal.SIGHUP)
            await reader.until(lambda lines: {c["arn"] for c in changes(reader)} == {first, added})

            config.write_text(config_text(url, [first], port).replace("[watch]", "[wacth]"))
            reader.process.send_signal(signal.SIGHUP)
            await reader.until(lambda lines: any('"config.reload_refused"' in x for x in lines))
            status, body = await get(port, "/metrics")
    reloaded = [c for c in reader.json_lines() if c.get("event") == "config.reloaded"]
    refused = [c for c in reader.json_lines() if c.get("event") == "config.reload_refused"]
    assert reloaded[0]["added_arns"] == [added]
    assert any("wacth: unknown key" in problem for problem in refused[0]["problems"])
    families = {f.name: f for f in text_string_to_metric_families(body)}
    watched_now = sum(s.value for s in families["ibwatch_images_watched"].samples)
    assert (status, watched_now) == (200, 2), "the old configuration (both ARNs) still runs"


@pytest.mark.timeout(90)
async def test_sighup_adds_a_pipeline_whose_builds_are_then_followed(tmp_path: Path) -> None:
    (first,) = arns("hup", 1)
    pipeline = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/nightly"
    version = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/nightly/2.0.0"
    plan = scenario(
        [
            {"arn": first, "timeline": timeline(("BUILDING", None))},
            {
                "arn": f"{version}/1",
                "pipeline": "nightly",
                "timeline": timeline(("BUILDING", None)),
            },
        ],
        pipelines=[{"arn": pipeline, "image": version, "timeline": timeline(("BUILDING", None))}],
    )
    port = free_port()
    async with Simulator(plan, clock=FakeClock()) as url:
        config = tmp_path / "watcher.toml"
        config.write_text(config_text(url, [first], port))
        async with daemon(config) as reader:
            await reader.until(lambda lines: len(changes(reader)) >= 1)
            config.write_text(
                config_text(url, [first], port).replace(
                    "[watch]\n",
                    f'[watch]\npipelines = ["{pipeline}"]\n',
                )
            )
            reader.process.send_signal(signal.SIGHUP)
            await reader.until(lambda lines: len(changes(reader)) >= 2)
    # Listed at once, not a discovery interval (60 s by default) later.
    events = [c.get("event") for c in reader.json_lines()]
    assert "config.reloaded" in events
    assert "config.needs_restart" not in events, [
        c for c in reader.json_lines() if c.get("event") == "config.needs_restart"
    ]
    found = changes(reader)[1]
    assert (found["arn"], found["status"]) == (f"{version}/1", "BUILDING")
