"""The daemon's engine recovers from failures the world outside heals: an ARN parked
on denied access or refused credentials is polled again on a slow backoff, and at
once when asked (SIGHUP). The simulator over loopback, on virtual time."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import structlog

from tests.support import ACCOUNT, aws_session, scenario, timeline
from watcher.aws import AwsImageSource
from watcher.engine import Engine, Recovery, RunResult, Schedule
from watcher.model import ImageSnapshot
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.simulator import Scenario, Simulator
from watcher.store import MemoryStore
from watcher.testing import RecordingSink, VirtualClock

BUILD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/7"
MISSING = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/nothing-here/1.0.0/1"
DAEMON = Recovery(cap=300.0)
"""What the daemon sets: back off up to 5 minutes."""


@dataclass
class Watched:
    result: RunResult
    sink: RecordingSink
    simulator: Simulator
    logs: list[dict[str, Any]]
    seen_at: list[tuple[float, str]]
    """(virtual time, status) of each event, as the engine reported it."""

    def responses(self, outcome: str) -> int:
        return self.simulator.counters.responses["GetImage", outcome]

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.logs if line["event"] == event]


class HeldSource:
    """GetImage with the virtual clock held during the call: on a loaded machine a
    loopback call can outlast the clock's idle rounds, and virtual time must not
    leap to the next deadline (the run's time limit, say) while a poll is under way."""

    def __init__(self, inner: AwsImageSource, clock: VirtualClock) -> None:
        self._inner, self._clock = inner, clock

    async def get(self, arn: str) -> ImageSnapshot:
        with self._clock.held():
            return await self._inner.get(arn)


class TimedSink(RecordingSink):
    def __init__(self, clock: VirtualClock, seen_at: list[tuple[float, str]]) -> None:
        super().__init__()
        self._clock, self._seen_at = clock, seen_at

    async def send(self, event: Any) -> None:
        self._seen_at.append((self._clock.monotonic(), event.current.status.value))
        await super().send(event)


async def watch(
    plan: Scenario,
    arns: Sequence[str],
    *,
    seconds: float,
    interval: float = 30.0,
    recovery: Recovery | None = DAEMON,
    not_found_grace: float = 120.0,
    meanwhile: Callable[[Engine, VirtualClock], Awaitable[None]] | None = None,
) -> Watched:
    clock = VirtualClock()
    simulator = Simulator(plan, clock=clock)
    seen_at: list[tuple[float, str]] = []
    sink = TimedSink(clock, seen_at)
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(clock.drive)
            async with (
                simulator as url,
                AwsImageSource(clock=clock, endpoint_url=url, session=aws_session()) as source,
            ):
                engine = Engine(
                    source=HeldSource(source, clock),
                    store=MemoryStore(),
                    listeners=[sink],
                    clock=clock,
                    limiter=CubicLimiter(100, clock),
                    schedule=Schedule(
                        interval_for=lambda _: interval, not_found_grace=not_found_grace
                    ),
                    retry=RetryPolicy(attempts=3, base=0.05, cap=1.0),
                    rng=random.Random(5),
                    recovery=recovery,
                )
                await source.warm(arns)
                async with anyio.create_task_group() as side:
                    if meanwhile is not None:
                        side.start_soon(meanwhile, engine, clock)
                    result = await engine.run(arns, time_limit=seconds)
                    side.cancel_scope.cancel()
            group.cancel_scope.cancel()
    return Watched(result, sink, simulator, logs, seen_at)


def outage(code: str, minutes: float) -> dict[str, Any]:
    return {"outages": [{"code": code, "end": f"{minutes}m", "operations": ["GetImage"]}]}


@pytest.mark.parametrize(
    ("code", "error"),
    [("ForbiddenException", "AccessDenied"), ("ExpiredTokenException", "BadCredentials")],
)
async def test_an_arn_refused_for_ten_minutes_is_polled_again_and_its_build_reported(
    code: str, error: str
) -> None:
    building = timeline(("BUILDING", 20 * 60), ("AVAILABLE", None))
    plan = scenario([{"arn": BUILD, "timeline": building}], faults=outage(code, 10))
    watched = await watch(plan, [BUILD], seconds=30 * 60)
    assert [status for _, status in watched.seen_at] == ["BUILDING", "AVAILABLE"]
    assert watched.seen_at[0][0] >= 10 * 60, "first seen once the outage ended"
    assert watched.result.watches[BUILD].error is None
    # 30 s doubling to the 5 min cap: refused at about 0, 30, 90, 210 and 450 s, not
    # every 30 s (20 times) as a healthy build is polled.
    assert 4 <= watched.responses(code) <= 6
    (paused,) = watched.logged("image.watch_paused")
    assert (paused["error"], paused["code"]) == (error, code)
    (resumed,) = watched.logged("image.watch_resumed")
    assert resumed["after_failures"] == watched.responses(code)


async def test_the_backoff_never_waits_longer_than_its_cap() -> None:
    """An hour of refusals: after the doubling reaches the cap, one poll per cap."""
    plan = scenario(
        [{"arn": BUILD, "timeline": timeline(("BUILDING", None))}],
        faults=outage("ForbiddenException", 60),
    )
    watched = await watch(plan, [BUILD], seconds=65 * 60, interval=60.0)
    refused = watched.responses("ForbiddenException")
    # 60, 120, 240 s, then at most 300 s (jitter only shortens it): 0, 60, 180, 420,
    # then every 270 to 300 s until 3600 s.
    # Failed once in a loaded full run and never alone: the messages keep what the
    # simulator answered and when the build was seen, to explain a repeat.
    answered = dict(watched.simulator.counters.responses)
    assert 14 <= refused <= 16, (refused, answered, watched.seen_at)
    assert [status for _, status in watched.seen_at] == ["BUILDING"], (answered, watched.seen_at)
    assert 60 * 60 <= watched.seen_at[0][0] <= 65 * 60, (answered, watched.seen_at)


async def test_retry_parked_polls_a_paused_arn_at_once_and_only_once() -> None:
    """SIGHUP's path: the retry replaces the pending backoff poll, not adds one."""
    plan = scenario(
        [{"arn": BUILD, "timeline": timeline(("BUILDING", None))}],
        faults=outage("ForbiddenException", 1),
    )
    retried: list[list[str]] = []

    async def sighup_at_100s(engine: Engine, clock: VirtualClock) -> None:
        await clock.sleep(100)  # past the outage, long before the 600 s backoff
        retried.append(engine.retry_parked())

    watched = await watch(plan, [BUILD], seconds=900, interval=600.0, meanwhile=sighup_at_100s)
    assert retried == [[BUILD]]
    assert watched.seen_at[0] == (100.0, "BUILDING"), "polled when asked, not at 600 s"
    # Refused once at 0 s, then 100 s, then the normal 600 s interval (jittered):
    # the backoff poll that was due at about 600 s never ran as well.
    assert watched.responses("ForbiddenException") == 1
    assert watched.responses("ok") == 2


async def test_a_not_found_build_past_its_grace_stays_parked_in_the_daemon() -> None:
    watched = await watch(scenario([]), [MISSING], seconds=3600, interval=1.0, not_found_grace=5)
    assert type(watched.result.watches[MISSING].error).__name__ == "NotFound"
    # About once a second for the 5 s grace, then never again in the hour.
    assert watched.responses("ResourceNotFoundException") <= 7
    assert watched.logged("image.watch_stopped")
    assert not watched.logged("image.watch_paused")


async def test_a_not_found_build_is_not_retried_when_asked() -> None:
    async def sighup_later(engine: Engine, clock: VirtualClock) -> None:
        await clock.sleep(60)
        assert engine.retry_parked() == []
        assert engine.paused() == {}

    watched = await watch(
        scenario([]), [MISSING], seconds=120, not_found_grace=0, meanwhile=sighup_later
    )
    assert watched.responses("ResourceNotFoundException") == 1


async def test_without_recovery_a_denied_arn_is_parked_for_good() -> None:
    """The one-shot wait keeps its contract: access denied ends the watch (exit 4)."""
    plan = scenario(
        [{"arn": BUILD, "timeline": timeline(("BUILDING", None))}],
        faults=outage("ForbiddenException", 1),
    )
    watched = await watch(plan, [BUILD], seconds=3600, recovery=None)
    assert type(watched.result.watches[BUILD].error).__name__ == "AccessDenied"
    assert watched.responses("ForbiddenException") == 1
    assert watched.responses("ok") == 0


async def test_paused_names_each_cause_and_how_many_arns_it_holds() -> None:
    others = [BUILD.replace("/7", f"/{n}") for n in (8, 9)]
    plan = scenario(
        [{"arn": a, "timeline": timeline(("BUILDING", None))} for a in (BUILD, *others)],
        faults=outage("ForbiddenException", 60),
    )
    causes: list[dict[str, int]] = []

    async def look(engine: Engine, clock: VirtualClock) -> None:
        await clock.sleep(10)
        causes.append(engine.paused())

    await watch(plan, [BUILD, *others], seconds=20, meanwhile=look)
    assert causes == [{"AccessDenied (ForbiddenException)": 3}]
