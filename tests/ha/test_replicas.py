"""Replicas of `ibwatch run` on one PostgreSQL database: exactly one polls and
delivers; when it is killed, paused or cut off by a database restart, another takes
over and every transition still reaches the receiver, each under one event id.
SIGTERM stops a replica in either role at once, even with the database down.

Real processes and signals, a real PostgreSQL (tests/pg_support.py), the simulator
(its time moved by the test) and a signed-webhook receiver, all on loopback.
Takeover times are measured on the real clock, as the replicas run on it.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from tests.delivery.receiver import HANG, Receiver, receiving
from tests.ha.support import (
    ARNS,
    FAILOVER,
    GRACE,
    HEARTBEAT,
    HOOK_PATH,
    LEADER_GAUGES,
    PIPELINE,
    STATUSES,
    STEPS,
    Replica,
    all_arrived,
    arrived,
    duplicates,
    eventually,
    outbox_empty,
    replica,
    stored_events,
    until,
    write_config,
)
from tests.pg_support import PASSWORD, RestartablePostgres
from tests.support import scenario
from watcher.clock import SystemClock
from watcher.simulator import Simulator
from watcher.testing import FakeClock


@dataclass
class Cluster:
    """The world of one test: the simulator (on `clock`), the receiver, the config."""

    clock: FakeClock
    simulator: Simulator
    receiver: Receiver
    config: Path
    database_url: str
    stack: AsyncExitStack

    async def start(self, *names: str) -> list[Replica]:
        """Replicas `names`, spawned together, once each has started."""
        replicas = [
            await self.stack.enter_async_context(
                replica(name, self.config, self.database_url, self.receiver.url)
            )
            for name in names
        ]
        for one in replicas:
            await one.started()
        return replicas

    async def leader_and_standby(self) -> tuple[Replica, Replica]:
        """Two replicas, started together, once each knows its role: (leader, standby)."""
        first, second = await self.start("a", "b")
        for one in (first, second):
            await one.reader.until(
                lambda lines: any(
                    '"ibwatch.leader.acquired"' in line or '"ibwatch.leader.standby"' in line
                    for line in lines
                )
            )
        leaders = [r for r in (first, second) if r.logged("ibwatch.leader.acquired")]
        assert len(leaders) == 1, "exactly one replica leads"
        [leader] = leaders
        return leader, second if leader is first else first


@asynccontextmanager
async def cluster(
    tmp_path: Path, database_url: str, *answers: tuple[int, dict[str, str]] | str
) -> AsyncIterator[Cluster]:
    """`answers`: the receiver's first answers (then 200 to everything)."""
    clock = FakeClock()  # the simulator's time moves only when the test says so
    image = f"{PIPELINE.replace('image-pipeline', 'image')}/1.0.0"
    plan = scenario(
        [{"arn": a, "timeline": STEPS} for a in ARNS],
        pipelines=[{"arn": PIPELINE, "image": image, "timeline": STEPS}],
    )
    simulator = Simulator(plan, clock=clock)
    async with (
        simulator as url,
        receiving(SystemClock(), *answers, path=HOOK_PATH) as receiver,
        AsyncExitStack() as stack,
    ):
        yield Cluster(clock, simulator, receiver, write_config(tmp_path, url), database_url, stack)


async def committed(database_url: str, status: str) -> bool:
    """Whether every build's transition into `status` is committed."""
    events = await stored_events(database_url)
    return all((arn, status) in events for arn in ARNS)


async def discovered(one: Replica) -> bool:
    """Whether `one` exports what discovery found: the pipeline ENABLED (the missing
    one has no status) and the missing one failing."""
    return (
        await one.metric("ibwatch_pipelines_followed") == 1
        and await one.metric("ibwatch_discovery_sources_failing") == 1
    )


async def body(one: Replica, path: str) -> tuple[int, dict[str, object]]:
    status, text = await one.get(path)
    return status, json.loads(text)


def assert_each_transition_stored_once(stored: dict[tuple[str, str], int]) -> None:
    assert stored == {(arn, status): 1 for arn in ARNS for status in STATUSES}


@pytest.mark.timeout(60)
async def test_of_two_replicas_one_polls_and_the_other_stands_by_ready(
    tmp_path: Path, postgres_url: str
) -> None:
    async with cluster(tmp_path, postgres_url) as world:
        leader, standby = await world.leader_and_standby()
        await until(all_arrived(world.receiver, ["BUILDING"]))
        counters = world.simulator.counters
        polled = counters.signed_with(leader.access_key, "GetImage")
        # The leader polls every 0.1 s: ten more polls while the standby runs beside it.
        await until(lambda: counters.signed_with(leader.access_key, "GetImage") >= polled + 10)

        assert counters.signed_with(standby.access_key) == 0, "the standby called nothing"
        assert await body(leader, "/readyz") == (
            200,
            {
                "status": "ready",
                "role": "leader",
                "discovery": "1 source of builds failing to list: see /status",
            },
        )
        assert await body(standby, "/readyz") == (200, {"status": "ready", "role": "standby"})
        assert await body(standby, "/healthz") == (200, {"status": "ok"})
        assert (await leader.metric("ibwatch_leader"), await standby.metric("ibwatch_leader")) == (
            1,
            0,
        )
        # What /readyz answers, for Prometheus: a standby that could take over is ready.
        assert (await leader.metric("ibwatch_ready"), await standby.metric("ibwatch_ready")) == (
            1,
            1,
        )
        assert await standby.metric("ibwatch_outbox_pending") == 0, "the leader reports it"
        _, status = await body(standby, "/status")
        assert (status["role"], status["watched"]) == ("standby", 0)
        assert standby.logged("ibwatch.leader.standby")[0]["epoch"] == 1
        # The leader's gauges with their values (discovery's after its first pass: one
        # pipeline followed, one missing), and none of them, not even empty, on the standby.
        await eventually(lambda: discovered(leader))
        assert await leader.sampled() >= LEADER_GAUGES
        assert not LEADER_GAUGES & await standby.families()

        # SIGTERM in each role: exit 0 within the grace (nothing is left to drain).
        stopped = {"standby": await standby.stop(), "leader": await leader.stop()}
    print("SIGTERM: " + ", ".join(f"{r} exit {c} in {s:.2f}s" for r, (c, s) in stopped.items()))
    for code, seconds in stopped.values():
        assert code == 0
        assert seconds < GRACE
    [stopped_line] = leader.logged("ibwatch.stopped")
    assert stopped_line["undelivered"] == 0


@pytest.mark.timeout(60)
async def test_a_killed_leader_is_replaced_within_the_failover_and_nothing_is_lost(
    tmp_path: Path, postgres_url: str
) -> None:
    """Killed while the receiver holds its first TESTING delivery unanswered: the new
    leader sends that event again (the one duplicate, same id) and the rest once."""
    ok: tuple[int, dict[str, str]] = (200, {})
    async with cluster(tmp_path, postgres_url, ok, ok, HANG) as world:
        leader, standby = await world.leader_and_standby()
        await until(all_arrived(world.receiver, ["BUILDING"]))
        world.clock.advance(150)  # TESTING: committed by the leader, then it dies
        await eventually(lambda: committed(postgres_url, "TESTING"))
        await until(lambda: len(world.receiver.arrivals) == len(ARNS) + 1)
        killed_at = anyio.current_time()
        leader.process.kill()
        await standby.until_logged("ibwatch.leader.acquired")
        took = anyio.current_time() - killed_at
        world.clock.advance(100)  # AVAILABLE: seen by the new leader only
        await until(all_arrived(world.receiver, STATUSES))
        ids = arrived(world.receiver)
        stored = await stored_events(postgres_url)

    # The server ends a killed session's lock at once: the next attempt takes it.
    assert took < FAILOVER, f"took over {took:.2f}s after the kill"
    print(f"takeover after SIGKILL: {took:.2f}s; duplicate deliveries: {duplicates(ids)}")
    assert duplicates(ids) == 1, "the event in flight at the kill, and nothing else"
    assert standby.logged("ibwatch.leader.acquired")[0]["epoch"] == 2
    assert_each_transition_stored_once(stored)


PAUSED_TAKEOVER_MARGIN = 0.5
"""Seconds a takeover may take past `failover` after SIGSTOP. The standby looks again
1/20 heartbeat (20 ms) after the paused leader's silence passes `failover`, ends its
session, looks for the freed lock every 20 ms, bumps the epoch and logs: some 50 ms
on an idle machine (measured: 2.06 s). The rest is headroom for a busy CI machine
sharing its cores with other tests and two daemons."""


@pytest.mark.timeout(60)
async def test_a_paused_leader_is_deposed_within_the_failover_and_acts_on_nothing_after(
    tmp_path: Path, postgres_url: str
) -> None:
    """Resumed after SIGCONT, the former leader steps down before it polls, writes or
    sends anything: its lease ran out (or its session is found ended, or a write is
    refused: whichever it meets first), and it no longer exports the leader's gauges."""
    async with cluster(tmp_path, postgres_url) as world:
        leader, standby = await world.leader_and_standby()
        await until(all_arrived(world.receiver, ["BUILDING"]))
        # Paused between writes (none in flight), as most of a leader's life is.
        await eventually(lambda: outbox_empty(postgres_url))
        stopped_at = anyio.current_time()
        leader.process.send_signal(signal.SIGSTOP)
        await standby.until_logged("ibwatch.leader.acquired")
        took = anyio.current_time() - stopped_at
        world.clock.advance(150)  # TESTING, seen by the new leader
        await until(all_arrived(world.receiver, ["BUILDING", "TESTING"]))

        # The new leader's first pass sets discovery's gauges again.
        await eventually(lambda: discovered(standby))

        counters = world.simulator.counters
        polled = counters.signed_with(leader.access_key, "GetImage")
        leader.process.send_signal(signal.SIGCONT)
        await leader.until_logged("ibwatch.leader.lost")
        ready = await body(leader, "/readyz")
        leading = await leader.metric("ibwatch_leader")
        families = await leader.families()
        world.clock.advance(100)  # AVAILABLE
        await until(all_arrived(world.receiver, STATUSES))
        ids = arrived(world.receiver)
        stored = await stored_events(postgres_url)
        polled_after = counters.signed_with(leader.access_key, "GetImage") - polled

    [deposing] = standby.logged("ibwatch.leader.deposing")
    assert deposing["silent_s"] >= FAILOVER  # rounded to 0.1 s
    # Its last heartbeat came at most a heartbeat (and a round trip) before the pause.
    assert FAILOVER - HEARTBEAT - 0.1 <= took <= FAILOVER + PAUSED_TAKEOVER_MARGIN, (
        f"took over {took:.2f}s after the pause"
    )
    [lost] = leader.logged("ibwatch.leader.lost")
    assert lost["why"].startswith(
        ("no heartbeat got through", "the session holding the lock ended", "a write was refused")
    )
    assert polled_after == 0, "polled after the pause"
    assert (ready, leading) == ((200, {"status": "ready", "role": "standby"}), 0)
    assert not LEADER_GAUGES & families, "a former leader exports the leader's gauges"
    assert leader.changes() == {(arn, "BUILDING") for arn in ARNS}, "nothing after the pause"
    print(f"takeover after SIGSTOP: {took:.2f}s; duplicate deliveries: {duplicates(ids)}")
    assert duplicates(ids) == 0
    assert_each_transition_stored_once(stored)


@pytest.mark.timeout(90)
async def test_a_database_restart_ends_the_term_and_the_next_one_misses_nothing(
    tmp_path: Path, restartable_postgres: RestartablePostgres
) -> None:
    """With the database down, the leader's term ends and SIGTERM stops it at once (the
    outbox count it logs is unknown); once the database is back, the other leads."""
    database = restartable_postgres
    async with cluster(tmp_path, database.url) as world:
        [first] = await world.start("a")
        await first.until_logged("ibwatch.leader.acquired")
        [second] = await world.start("b")
        await second.until_logged("ibwatch.leader.standby")
        await until(all_arrived(world.receiver, ["BUILDING"]))

        await anyio.to_thread.run_sync(database.stop)
        await first.until_logged("ibwatch.leader.lost")
        await eventually(lambda: _not_ready(first))
        # The standby cannot take over without its database: unready, and says so.
        await eventually(lambda: _standby_unready(second))
        assert await first.metric("ibwatch_ready") == 0
        code, took = await first.stop()
        world.clock.advance(150)  # TESTING, while no one can store it
        await anyio.to_thread.run_sync(database.start)

        await second.until_logged("ibwatch.leader.acquired")
        await until(all_arrived(world.receiver, ["BUILDING", "TESTING"]))
        world.clock.advance(100)  # AVAILABLE
        await until(all_arrived(world.receiver, STATUSES))
        ids = arrived(world.receiver)
        stored = await stored_events(database.url)

    print(f"SIGTERM with the database down: exit {code} in {took:.2f}s")
    assert code == 0
    assert took < GRACE
    assert [line["undelivered"] for line in first.logged("ibwatch.stopped")] == ["unknown"]
    assert [line["epoch"] for line in second.logged("ibwatch.leader.acquired")] == [2]
    [unreachable, *_] = first.logged("ibwatch.leader.database_unreachable")
    assert PASSWORD not in unreachable["database"]
    for one in (first, second):
        assert not any(PASSWORD in line or "SECRET-HA" in line for line in one.reader.lines)
    print(f"duplicate deliveries across the restart: {duplicates(ids)}")
    assert_each_transition_stored_once(stored)


async def _not_ready(one: Replica) -> bool:
    status, text = await one.get("/readyz")
    return status == 503 and "was not reached" in text


async def _standby_unready(one: Replica) -> bool:
    """/readyz says the database is out of reach, and ibwatch_ready says the same."""
    status, text = await one.get("/readyz")
    unready = status == 503 and '"role": "standby"' in text and "database" in text
    return unready and await one.metric("ibwatch_ready") == 0
