"""The daemon in-process, on virtual time, against the simulator over loopback:
credentials that appear after start, SIGHUP retrying parked ARNs at once, /readyz
saying why, and a reload that cannot be built leaving the running config whole.
Signals come through a memory stream, as `run_daemon` feeds them from the OS."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from anyio.streams.memory import MemoryObjectSendStream

from tests.support import ACCOUNT, aws_session, scenario, timeline
from watcher import daemon, server
from watcher.config import load
from watcher.daemon import Service, open_service, serve
from watcher.engine import Engine
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

BUILD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/7"
OTHER = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/api-runtime/2.0.3/1"


def config_text(
    endpoint_url: str, state: Path, watched: list[str], interval: str, extra: str = ""
) -> str:
    listed = ", ".join(f'"{a}"' for a in watched)
    return (
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f"[watch]\narns = [{listed}]\n"
        f'[watch.intervals]\ndefault = "{interval}"\n'
        f'[watch.retry]\nattempts = 2\nbase = "0.05s"\ncap = "0.2s"\n'
        f'[state]\npath = "{state}"\n[server]\nlisten = "127.0.0.1:0"\n'
        f'[[sinks]]\ntype = "log"\n{extra}'
    )


@dataclass
class Running:
    service: Service
    clock: VirtualClock
    signals: MemoryObjectSendStream[int]
    logs: list[dict[str, Any]]
    http: TestClient[Any, Any]
    config: Path

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.logs if line["event"] == event]

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for a condition of the daemon, whatever virtual time it takes."""
        with anyio.move_on_after(30):  # real seconds: only a hang reaches it
            # The engine's state has no event to wait on: this polls a condition
            # (every 5 ms of real time), it never waits for a duration to pass.
            while not condition():  # noqa: ASYNC110
                await anyio.sleep(0.005)
            return
        raise AssertionError(f"never came true; the daemon logged {self.logs}")

    async def readyz(self) -> tuple[int, Any]:
        response = await self.http.get("/readyz")
        return response.status, await response.json()


@asynccontextmanager
async def running(tmp_path: Path, images: list[str], watched: list[str]) -> AsyncIterator[Running]:
    clock = VirtualClock()
    plan = scenario([{"arn": a, "timeline": timeline(("BUILDING", None))} for a in images])
    config_path = tmp_path / "watcher.toml"
    send, receive = anyio.create_memory_object_stream[int](4)
    with structlog.testing.capture_logs() as logs, send, receive:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with AsyncExitStack() as stack:  # closed before the clock stops
                url = await stack.enter_async_context(Simulator(plan, clock=clock))
                # A long interval: a poll within it can only be the one SIGHUP asked for.
                config_path.write_text(config_text(url, tmp_path / "state.db", watched, "1h"))
                config = load(config_path)
                service = await stack.enter_async_context(
                    open_service(config, clock=clock, source_session=aws_session())
                )
                app = server.create_app(daemon.probes_of(service))
                http = await stack.enter_async_context(TestClient(TestServer(app)))
                async with anyio.create_task_group() as daemon_group:
                    daemon_group.start_soon(serve, service, receive, config_path)
                    try:
                        yield Running(service, clock, send, logs, http, config_path)
                    finally:
                        await send.send(signal.SIGTERM)  # serve returns once drained
            group.cancel_scope.cancel()


def seen(engine: Engine, arn: str) -> bool:
    watch = engine.watches.get(arn)
    return watch is not None and watch.tracked is not None


def without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere botocore looks (the suite's conftest points the shared
    files at paths that do not exist and turns instance metadata off)."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")


def mount_credentials(tmp_path: Path) -> None:
    """What an IRSA token or a mounted secret does later: credentials appear."""
    (tmp_path / "no-aws-credentials").write_text(
        "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = not-a-secret\n"
    )


async def test_a_daemon_started_without_credentials_polls_once_sighup_says_they_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_credentials(monkeypatch)
    async with running(tmp_path, [BUILD], [BUILD]) as daemon_:
        engine = daemon_.service.engine
        with daemon_.clock.held():  # no retry can come due before the SIGHUP
            await daemon_.until(lambda: bool(engine.paused()))
            (paused,) = daemon_.logged("image.watch_paused")
            backoff_due = daemon_.clock.monotonic() + paused["retry_in_s"]
            mount_credentials(tmp_path)
            await daemon_.signals.send(signal.SIGHUP)
        await daemon_.until(lambda: seen(engine, BUILD))
        seen_at = daemon_.clock.monotonic()
        events = await daemon_.service.store.events()
    assert seen_at < backoff_due, "polled on SIGHUP, not when its backoff came due"
    assert [e.current.status.value for e in events] == ["BUILDING"]
    assert engine.watches[BUILD].error is None
    assert daemon_.logged("image.retrying_paused")[0]["arns"] == 1
    assert daemon_.logged("image.watch_resumed")


async def test_credentials_that_appear_later_are_found_by_the_backoff_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No SIGHUP needed: the first retry after they came (at most the 5 minute cap
    later) finds them, with a client made afresh."""
    without_credentials(monkeypatch)
    async with running(tmp_path, [BUILD], [BUILD]) as daemon_:
        engine = daemon_.service.engine
        with daemon_.clock.held():  # no retry can come due before they are there
            await daemon_.until(lambda: bool(engine.paused()))
            mount_credentials(tmp_path)
        await daemon_.until(lambda: seen(engine, BUILD))
    (resumed,) = daemon_.logged("image.watch_resumed")
    assert resumed["after_failures"] == 1, "the first retry after they came found them"
    assert not daemon_.logged("image.retrying_paused")
    assert not engine.paused()


async def test_the_backoff_cap_comes_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[watch] paused_retry_cap` (here from its environment variable): with polls an
    hour apart, the first retry of a paused ARN still comes within the cap."""
    without_credentials(monkeypatch)
    monkeypatch.setenv("IBWATCH_WATCH_PAUSED_RETRY_CAP", "30s")
    async with running(tmp_path, [BUILD], [BUILD]) as daemon_:
        await daemon_.until(lambda: bool(daemon_.service.engine.paused()))
    (paused,) = daemon_.logged("image.watch_paused")
    assert 0 < paused["retry_in_s"] <= 30
    assert "up to 30s" in paused["note"]


async def test_readyz_names_the_cause_while_arns_are_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_credentials(monkeypatch)
    async with running(tmp_path, [BUILD, OTHER], [BUILD, OTHER]) as daemon_:
        engine = daemon_.service.engine
        await daemon_.until(lambda: sum(engine.paused().values()) == 2)
        paused = await daemon_.readyz()
        mount_credentials(tmp_path)
        await daemon_.signals.send(signal.SIGHUP)
        await daemon_.until(lambda: not engine.paused())
        ready = await daemon_.readyz()
    status, body = paused
    assert status == 503
    assert (
        "2 watched ARNs paused on BadCredentials (NoCredentialsError): polled again with "
        "backoff, and at once on SIGHUP"
    ) in body["why"]
    assert ready == (200, {"status": "ready"})


async def test_a_reload_whose_sink_cannot_be_built_keeps_the_running_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """webhook-id is the envelope's own header: the sink refuses to be built with it."""
    monkeypatch.setenv("OPS_HOOK", "https://hooks.example.com/x")
    async with running(tmp_path, [BUILD, OTHER], [BUILD]) as daemon_:
        service = daemon_.service
        await daemon_.until(lambda: seen(service.engine, BUILD))
        before = service.config
        text = daemon_.config.read_text().replace(f'"{BUILD}"', f'"{BUILD}", "{OTHER}"')
        daemon_.config.write_text(
            text + '[[sinks]]\ntype = "webhook"\nname = "hook"\n'
            'url_env = "OPS_HOOK"\nheaders = { "webhook-id" = "x" }\n'
        )
        await daemon_.signals.send(signal.SIGHUP)
        await daemon_.until(lambda: bool(daemon_.logged("config.reload_refused")))
        assert set(service.engine.watches) == {BUILD}, "no ARN of the refused file"
        assert service.dispatcher.sinks == ["log"]
        assert service.config is before
        assert service.engine.running, "the daemon runs on"
    (refused,) = daemon_.logged("config.reload_refused")
    assert any("webhook-id" in problem for problem in refused["problems"]), refused
    assert not daemon_.logged("config.reloaded")


async def test_a_reload_refused_by_a_failing_builder_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever building raises (a sink the file's validation cannot foresee), the
    reload is all or nothing."""

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("cannot build that sink")

    async with running(tmp_path, [BUILD, OTHER], [BUILD]) as daemon_:
        service = daemon_.service
        await daemon_.until(lambda: seen(service.engine, BUILD))
        daemon_.config.write_text(daemon_.config.read_text().replace(f'"{BUILD}"', f'"{OTHER}"'))
        monkeypatch.setattr(daemon, "build_routes", broken)
        await daemon_.signals.send(signal.SIGHUP)
        await daemon_.until(lambda: bool(daemon_.logged("config.reload_refused")))
        assert set(service.engine.watches) == {BUILD}
        assert service.engine.running
    (refused,) = daemon_.logged("config.reload_refused")
    assert refused["problems"] == ["RuntimeError: cannot build that sink"]
