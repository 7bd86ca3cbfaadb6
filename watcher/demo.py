"""`ibwatch demo`: the daemon's engine, outbox and sinks with the embedded simulator
in one process.

Plays the demo scenario, prints each transition as it happens, and exits 0 once
every build in the scenario has ended and every event was delivered; the closing
summary says why each failed build failed, with the last lines of its build log
(redacted: the demo's failing build logs a password on purpose). Needs no AWS
account: the simulator takes any credentials, so the demo signs with placeholder
ones of its own.

With `push`, the simulator also sends an EventBridge event per status change to an
SQS queue, and the daemon reads it (`[events]`), polling the builds events come from
only every `PUSH_SAFETY` polls otherwise: the push fast path, played out. The queue is
moto's SQS server (`moto[server]`, an optional dependency), started on loopback in
this process; never our own SQS, and nothing beyond loopback.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
from aiobotocore.session import AioSession

from watcher.clock import Clock
from watcher.config import from_mapping
from watcher.daemon import Service, open_service
from watcher.diagnostics import Diagnostics
from watcher.engine import Watch
from watcher.model import ImageStatus, Transition
from watcher.simulator import Simulator, load_scenario
from watcher.summary import duration_text
from watcher.wait import diagnostics_block

# Shipped inside the package so `ibwatch demo` works wherever it is installed;
# config/demo-scenario.toml in the repository is a link to it.
DEMO_SCENARIO = Path(__file__).resolve().parent / "simulator" / "scenarios" / "demo.toml"
LOG_LINES = 5
"""The build log lines a FAILED event carries in the demo (`[diagnostics] log_lines`)."""
PUSH_SAFETY = 10
"""With `push`, builds are polled every this many `interval`s, as a safety net (`[events]
safety_interval`); events make the daemon poll a build at once."""
MOTO_MISSING = "ibwatch demo --push needs moto's SQS server on loopback: pip install 'moto[server]'"


def push_available() -> bool:
    """Whether `run_demo(push=True)` can run: moto's server is installed."""
    try:
        return importlib.util.find_spec("moto.server") is not None
    except (ImportError, ValueError):  # no moto at all, or one that cannot be imported
        return False


async def run_demo(
    scenario_path: Path, *, clock: Clock, out: TextIO, interval: float = 0.5, push: bool = False
) -> int:
    """Play the scenario; with `push`, through an SQS queue too (needs `push_available()`)."""
    if not push:
        return await _run(scenario_path, clock=clock, out=out, interval=interval, queue=None)
    async with _local_queue() as queue:
        return await _run(scenario_path, clock=clock, out=out, interval=interval, queue=queue)


async def _run(
    scenario_path: Path, *, clock: Clock, out: TextIO, interval: float, queue: _Queue | None
) -> int:
    scenario = load_scenario(scenario_path)
    pipelines = [str(pipeline.arn) for pipeline in scenario.pipelines]
    # Builds no pipeline made are watched by their own ARN; the rest are found by
    # following their pipelines, as a platform team's daemon would.
    names = {pipeline.pipeline_name for pipeline in scenario.pipelines}
    arns = [image.arn for image in scenario.images if image.pipeline not in names]
    session = AioSession()
    session.set_credentials("DEMOACCESSKEY", "demo-secret-not-used-by-the-simulator")
    started = clock.monotonic()
    with tempfile.TemporaryDirectory(prefix="ibwatch-demo-") as state_dir:
        events: dict[str, Any] = {}
        if queue is not None:
            events = {
                "queue_url": queue.url,
                "safety_interval": interval * PUSH_SAFETY,
                # Short long polls: the demo stops while one is under way.
                "wait_time": 1,
            }
        config = from_mapping(
            {
                "aws": {"region": "us-east-1"},
                "watch": {
                    "arns": arns,
                    "pipelines": pipelines,
                    "discovery_interval": interval * 2,
                    "intervals": {"default": interval},
                    # The demo account's GetImage quota (its scenario's rate limit).
                    "max_tps": 20,
                },
                "state": {"path": str(Path(state_dir) / "demo-state.db")},
                "sinks": [{"type": "log"}],
                "diagnostics": {"log_lines": LOG_LINES},
                "events": events,
            },
            source="ibwatch demo",
        )
        simulator = Simulator(scenario, clock=clock, events_queue=queue.url if queue else None)
        async with simulator as endpoint_url:
            _say(
                out,
                f"ibwatch demo: following {len(pipelines)} pipelines and {len(arns)} builds on "
                f"the embedded simulator at {endpoint_url} (scenario {scenario.name!r}, "
                f"{scenario.time_scale:g}x speed)",
            )
            if queue is not None:
                _say(
                    out,
                    f"ibwatch demo: the simulator pushes each status change to the SQS queue "
                    f"{queue.url} (moto's server on loopback); the daemon polls a build at "
                    f"once on its event, and every {interval * PUSH_SAFETY:g}s "
                    "otherwise",
                )
            async with open_service(
                config, clock=clock, endpoint_url=endpoint_url, source_session=session
            ) as service:
                await service.source.warm(arns + pipelines)
                failures = _Failures()
                service.engine.add_listener(failures)
                push = service.push

                async def finish_once_settled() -> None:
                    # Past the scenario's last change, list once more so the last
                    # scheduled run is found, then stop when every build has ended.
                    await clock.sleep(max(0.0, simulator.settled_at() - clock.monotonic()))
                    await service.discovery.discover_once()
                    service.engine.finish_when_ended()

                async with anyio.create_task_group() as group:
                    group.start_soon(service.dispatcher.run)
                    group.start_soon(service.discovery.run)
                    group.start_soon(finish_once_settled)
                    if push is not None:
                        group.start_soon(push.run)
                    result = await service.engine.run(arns)
                    await service.dispatcher.drained()
                    group.cancel_scope.cancel()
                calls = service.metrics.calls_total("ok")
                matched = _sample(service, "ibwatch_push_events_total", "matched")
    # Discovery finds builds in no set order: list them by image and build.
    watches = sorted(result.watches.values(), key=_by_image)
    # Why each failed build failed, then the list of every build as the last lines.
    for watch in watches:
        snapshot = watch.tracked.snapshot if watch.tracked else None
        diagnostics = failures.by_build.get(snapshot.arn) if snapshot else None
        if diagnostics is not None and snapshot and snapshot.status is ImageStatus.FAILED:
            _say(out, f"ibwatch demo: why {_name(watch)} failed:")
            for line in diagnostics_block(diagnostics):
                _say(out, line)
    _say(
        out,
        f"ibwatch demo: every build has ended after {duration_text(clock.monotonic() - started)}:",
    )
    for watch in watches:
        snapshot = watch.tracked.snapshot if watch.tracked else None
        status = snapshot.status.value if snapshot else f"error: {watch.error}"
        _say(out, f"  {_name(watch):<28} {status}")
    if queue is not None:
        _say(
            out,
            f"ibwatch demo: {matched:g} push events had a watched build polled at once "
            f"(ibwatch_push_events_total matched); {failures.transitions} transitions, "
            f"{calls:g} GetImage calls in all",
        )
    return 0


def _sample(service: Service, name: str, outcome: str) -> float:
    return service.metrics.registry.get_sample_value(name, {"outcome": outcome}) or 0.0


@dataclass(frozen=True)
class _Queue:
    endpoint_url: str
    url: str


@asynccontextmanager
async def _local_queue() -> AsyncIterator[_Queue]:
    """moto's SQS server on 127.0.0.1 and a free port, with a new queue; while inside,
    `AWS_ENDPOINT_URL_SQS` points there, as the daemon's SQS client takes its endpoint
    from botocore's settings (it never uses `[aws] endpoint_url`)."""
    from moto.server import ThreadedMotoServer

    # Its werkzeug logs a line per request: noise among the demo's lines.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        session = AioSession()
        session.set_credentials("DEMOACCESSKEY", "demo-secret-not-used-by-moto")
        async with session.create_client(
            "sqs", region_name="us-east-1", endpoint_url=endpoint_url
        ) as sqs:
            # A name of its own: moto keeps its queues per process, not per server.
            created = await sqs.create_queue(QueueName=f"ibwatch-demo-{uuid.uuid4().hex[:8]}")
        with _environment("AWS_ENDPOINT_URL_SQS", endpoint_url):
            yield _Queue(endpoint_url, str(created["QueueUrl"]))
    finally:
        server.stop()


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _name(watch: Watch) -> str:
    snapshot = watch.tracked.snapshot if watch.tracked else None
    return f"{snapshot.name} {snapshot.version}/{snapshot.build}" if snapshot else watch.arn


class _Failures:
    """The diagnostics of each build's FAILED event, for the summary: the log sink's
    line names the failed step, not the log. Counts the transitions too."""

    def __init__(self) -> None:
        self.by_build: dict[str, Diagnostics] = {}
        self.transitions = 0

    async def send(self, event: Transition) -> None:
        self.transitions += 1
        if event.diagnostics is not None:
            self.by_build[event.image.arn] = event.diagnostics


def _by_image(watch: Watch) -> tuple[str, str, int]:
    snapshot = watch.tracked.snapshot if watch.tracked else None
    return (snapshot.name, snapshot.version, snapshot.build) if snapshot else (watch.arn, "", 0)


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
