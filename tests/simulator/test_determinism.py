"""The same scenario with the same seed answers the same requests the same way."""

from __future__ import annotations

import aiohttp

from tests.support import WEB_BASE, raw_get_image, scenario
from watcher.simulator import Scenario, Simulator
from watcher.testing import FakeClock

FAULTY = {
    "errors": {
        "ServiceUnavailableException": 0.1,
        "ServiceException": 0.1,
        "CallRateLimitExceededException": 0.1,
    },
    "dropped_connections": 0.1,
    "malformed_bodies": 0.1,
    "latency": {"fixed": "10ms", "random": "50ms"},
    "rate_limits": {"GetImage": {"rate": 5, "burst": 3}},
}


async def _answers(plan: Scenario) -> list[tuple[object, ...]]:
    clock = FakeClock()
    answers: list[tuple[object, ...]] = []
    async with Simulator(plan, clock=clock) as url, aiohttp.ClientSession() as http:
        for _ in range(60):
            started = clock.monotonic()
            try:
                status, headers, body = await raw_get_image(http, url, WEB_BASE)
                answers.append(
                    (
                        status,
                        headers.get("x-amzn-ErrorType"),
                        headers.get("x-amzn-RequestId"),
                        body,
                        clock.monotonic() - started,
                    )
                )
            except aiohttp.ClientError as exc:
                answers.append((type(exc).__name__,))
            clock.advance(0.1)
    return answers


async def test_same_seed_gives_the_same_sequence_of_answers() -> None:
    first = await _answers(scenario(faults=FAULTY, seed=42))
    second = await _answers(scenario(faults=FAULTY, seed=42))
    assert first == second
    # The run exercised the faults, not just the happy path.
    kinds = {a[1] if len(a) > 1 else a[0] for a in first}
    assert {None, "ServiceUnavailableException", "CallRateLimitExceededException"} <= kinds
    assert "ServerDisconnectedError" in kinds


async def test_another_seed_gives_another_sequence() -> None:
    assert await _answers(scenario(faults=FAULTY, seed=1)) != await _answers(
        scenario(faults=FAULTY, seed=2)
    )
