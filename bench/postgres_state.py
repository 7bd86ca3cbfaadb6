"""Section 8: PostgreSQL state and high availability, against the SQLite state file
in the same run, on one throwaway PostgreSQL server (`bench.local_postgres`: the
pgserver wheel's PostgreSQL 16 with its durable defaults, reached over TCP on
127.0.0.1).

- Failover: two `ibwatch run` replicas on one database against the simulator; the
  leader is SIGKILLed, and the seconds until the standby leads and until it sends
  its first GetImage are timed; the killed one comes back as the new standby, and so
  on. The reference is what the SQLite file allows: the one daemon restarted in
  place the moment it died (a supervisor's own delay not counted).
- CPU per poll: one daemon watching many builds in progress, SQLite state then
  PostgreSQL state (alternating which goes first), over the same number of
  successful GetImage calls once its first sightings are behind it, each build
  changing status once among them; the daemon's CPU from /proc, and the
  PostgreSQL server's. A bare aiobotocore loop (section 1's) gives the scale.
- Commit latency: the store's `commit` of a poll result (state, event, two delivery
  rows) into a store already holding every build's rows, through `open_store`, in
  this process.

Never leaves a daemon or the server running: each is stopped as its context ends.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from bench.daemon_process import Daemon, running, wait_for, write_config
from bench.local_postgres import LocalPostgres, Via, local_postgres
from watcher.config.ha import BEATS_PER_FAILOVER, HaConfig
from watcher.config.state import StateConfig
from watcher.model import ImageSnapshot, ImageStatus
from watcher.simulator import Scenario, Simulator
from watcher.store import PostgresStore, StateStore, open_store
from watcher.testing import FakeClock
from watcher.tracker import Tracked, observe

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
DEFAULT_FAILOVER: float = HaConfig.model_fields["failover"].default
SQLITE = "SQLite file"
POSTGRES = "PostgreSQL"
CPU_GOAL = 1.3
"""PostgreSQL's CPU per poll, daemon side, at most this many times SQLite's."""


@dataclass(frozen=True)
class Sizes:
    runs: int
    """Runs of the CPU and commit measurements; medians over them."""
    kills: int
    failover: float | None
    """`[ha] failover`; None: the default (15 s), what users get."""
    failover_builds: int
    cpu_runs: int
    """Runs of the CPU measurement (each over a minute in full); an even number, so
    each store goes first as often."""
    cpu_builds: int
    cpu_interval: float
    """Every status's poll interval in the CPU runs."""
    cpu_max_tps: float
    cpu_polls: int
    """Successful GetImage calls measured per CPU run after the first pass: each
    build changes status once among them."""
    commit_builds: int
    commits: int
    """Measured commits per store per run."""
    commit_chunk: int


FULL = Sizes(
    runs=5,
    kills=5,
    failover=None,
    failover_builds=1000,
    cpu_runs=4,
    cpu_builds=1000,
    # 100 polls a second: the daemon, the simulator and the server fit this 2-core
    # machine together. 4,000 polls: a transition in one poll of four.
    cpu_interval=10.0,
    cpu_max_tps=200.0,
    cpu_polls=4000,
    commit_builds=1000,
    commits=500,
    commit_chunk=100,
)
QUICK = Sizes(
    runs=1,
    kills=2,
    failover=2.0,
    failover_builds=100,
    cpu_runs=1,
    cpu_builds=200,
    cpu_interval=2.0,
    cpu_max_tps=200.0,
    cpu_polls=1000,
    commit_builds=200,
    commits=200,
    commit_chunk=50,
)


def build_arns(prefix: str, count: int) -> list[str]:
    return [
        f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/{prefix}-{n}/1.0.0/1" for n in range(count)
    ]


def _scenario(arns: Sequence[str], seed: int, building: tuple[float, float] | None) -> Scenario:
    """Every build BUILDING; with `building`, each turns TESTING after a random time in
    that range (real seconds) and stays there: in progress throughout."""
    rng = random.Random(seed)
    images = []
    for arn in arns:
        timeline: list[dict[str, Any]] = [{"status": "BUILDING"}]
        if building is not None:
            timeline = [
                {"status": "BUILDING", "duration": rng.uniform(*building)},
                {"status": "TESTING"},
            ]
        images.append({"arn": arn, "timeline": timeline})
    return Scenario.model_validate({"images": images, "seed": seed})


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class FirstCalls(Counter[tuple[str, str]]):
    """The simulator's `counters.access_keys`, also noting when each (access key,
    operation) was first served: whose first GetImage came when."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[tuple[str, str], float] = {}

    def __setitem__(self, key: tuple[str, str], count: int) -> None:
        self.first.setdefault(key, time.monotonic())
        super().__setitem__(key, count)


class OnEachCall(Counter[tuple[str, str]]):
    """The simulator's `counters.responses`, calling `then(n)` in the very request
    that makes the n-th successful GetImage: CPU is sampled at that moment, not a
    sampling period later."""

    def __init__(self, then: Callable[[int], None]) -> None:
        super().__init__()
        self._then = then

    def __setitem__(self, key: tuple[str, str], count: int) -> None:
        super().__setitem__(key, count)
        if key == ("GetImage", "ok"):
            self._then(count)


# ----------------------------------------------------------------------- failover


async def failover(pg: LocalPostgres, sizes: Sizes) -> dict[str, Any]:
    """SIGKILL the leader of two replicas `sizes.kills` times; between kills, SIGKILL
    and restart the one SQLite daemon too (the reference)."""
    seconds = sizes.failover if sizes.failover is not None else DEFAULT_FAILOVER
    beat = seconds / BEATS_PER_FAILOVER
    names = build_arns("ha", sizes.failover_builds)
    simulator = Simulator(_scenario(names, seed=0, building=None))
    calls = simulator.counters.access_keys = FirstCalls()
    keys = (f"AKIDBENCHHA{n:04d}" for n in itertools.count())
    database = "bench_failover"
    await anyio.to_thread.run_sync(pg.create_database, database)
    kills: list[dict[str, Any]] = []
    restarts: list[dict[str, Any]] = []
    rng = random.Random(0)
    try:
        async with simulator as url, AsyncExitStack() as stack:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            ha = {"failover": f"{sizes.failover:g}s"} if sizes.failover is not None else None
            shared = write_config(
                home / "replica.toml",
                endpoint_url=url,
                arns=names,
                state={"url": pg.url(database)},
                ha=ha,
            )
            alone = write_config(
                home / "sqlite.toml",
                endpoint_url=url,
                arns=names,
                state={"path": str(home / "state.db")},
            )

            async def start(config: Path) -> Daemon:
                return await stack.enter_async_context(running(config, next(keys)))

            async def polling(daemon: Daemon) -> float:
                """When `daemon` sent its first GetImage, once it has sent five."""
                key = (daemon.access_key, "GetImage")
                await wait_for(lambda: calls[key] >= 5)
                return calls.first[key]

            async def first_get_image(daemon: Daemon) -> float:
                key = (daemon.access_key, "GetImage")
                await wait_for(lambda: key in calls.first)
                return calls.first[key]

            first, second = await start(shared), await start(shared)
            roles = ("ibwatch.leader.acquired", "ibwatch.leader.standby")
            for one in (first, second):
                await one.until_logged(*roles)
            leader, standby = (first, second) if first.logged(roles[0]) else (second, first)
            sqlite = await start(alone)
            for kill in range(sizes.kills):
                # The leader is polling, the standby has found it leading.
                await polling(leader)
                await standby.until_logged("ibwatch.leader.standby")
                # At a random moment of the standby's cycle of attempts.
                await anyio.sleep(rng.uniform(0, beat))
                killed = time.monotonic()
                await leader.kill()
                acquired = await standby.until_logged("ibwatch.leader.acquired")
                polled = await first_get_image(standby)
                ready = await standby.get_json("/readyz")
                leading = await standby.metric("ibwatch_leader")
                kills.append(
                    {
                        "leader_s": acquired - killed,
                        "first_get_image_s": polled - killed,
                        "readyz_role": ready.get("role"),
                        "ibwatch_leader": leading,
                    }
                )
                print(f"postgres: kill {kill + 1}: {kills[-1]}", file=sys.stderr)
                leader, standby = standby, await start(shared)
                await standby.until_logged(*roles)

                # The reference: the SQLite daemon killed and started again at once.
                await polling(sqlite)
                killed = time.monotonic()
                await sqlite.kill()
                sqlite = await start(alone)
                started = await sqlite.until_logged("ibwatch.started")
                polled = await first_get_image(sqlite)
                restarts.append(
                    {"started_s": started - killed, "first_get_image_s": polled - killed}
                )
    finally:
        await anyio.to_thread.run_sync(pg.drop_database, database)
    summary: dict[str, Any] = {"failover": seconds, "heartbeat": beat, "builds": len(names)}
    for label, runs, measures in (
        (POSTGRES, kills, ("leader_s", "first_get_image_s")),
        (SQLITE, restarts, ("started_s", "first_get_image_s")),
    ):
        summary[label] = {
            m: {"median": statistics.median(r[m] for r in runs), "max": max(r[m] for r in runs)}
            for m in measures
        }
        summary[label]["runs"] = runs
    summary["checked"] = all(
        k["readyz_role"] == "leader" and k["ibwatch_leader"] == 1 for k in kills
    )
    return summary


# ------------------------------------------------------------------- CPU per poll


@dataclass
class Window:
    """Where a CPU run's window opens and closes, sampled in the simulator's request
    handler: (successful GetImage calls, time, daemon CPU, server CPU) at each end."""

    builds: int
    polls: int
    sample: Callable[[], tuple[float, float, float]]
    delivered: Callable[[], int]
    first: tuple[int, float, float, float] | None = None
    last: tuple[int, float, float, float] | None = None
    started: float | None = None
    opened: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)

    def __call__(self, count: int) -> None:
        if self.started is None:
            self.started = time.monotonic()
        if self.first is None:
            # Once every first sighting was delivered: the first pass's work is done.
            if self.delivered() >= self.builds:
                self.first = (count, *self.sample())
                self.opened.set()
        elif (
            # After as many polls again, and once every change was delivered too.
            self.last is None
            and count >= self.first[0] + self.polls
            and self.delivered() >= 2 * self.builds
        ):
            self.last = (count, *self.sample())
            self.closed.set()


async def cpu_run(pg: LocalPostgres, sizes: Sizes, store: str, run: int) -> dict[str, Any]:
    """One daemon on `store` state: its CPU per successful GetImage (and, PostgreSQL,
    the server's) from the moment its first sightings are all delivered, over at least
    `cpu_polls` polls, in which each build changes once, until every change is
    delivered: the same work for either store, whatever its outbox's pace."""
    names = build_arns("cpu", sizes.cpu_builds)
    rate = min(sizes.cpu_max_tps, sizes.cpu_builds / sizes.cpu_interval)
    seconds = sizes.cpu_polls / rate
    # The simulator's time stands still until the window opens, then follows the
    # real clock: every change falls in the first half of the window, whenever it
    # opens, leaving the other half for their deliveries.
    clock = FakeClock()
    plan = _scenario(names, seed=run, building=(1.0, 0.5 * seconds))
    simulator = Simulator(plan, clock=clock)
    daemon: Daemon | None = None
    event = "image.state_changed"  # the log sink's line: an event delivered

    def sample() -> tuple[float, float, float]:
        assert daemon is not None
        server = pg.cpu_seconds() if store == POSTGRES else 0.0
        return time.monotonic(), daemon.cpu_seconds(), server

    def delivered() -> int:
        assert daemon is not None
        return daemon.counts[event]

    window = Window(sizes.cpu_builds, sizes.cpu_polls, sample, delivered)
    simulator.counters.responses = OnEachCall(window)

    async def follow_real_time() -> None:
        await window.opened.wait()
        before = time.monotonic()
        while True:
            await anyio.sleep(0.02)
            now = time.monotonic()
            clock.advance(now - before)
            before = now

    database = f"bench_cpu_{run}"
    with tempfile.TemporaryDirectory() as home:
        if store == POSTGRES:
            await anyio.to_thread.run_sync(pg.create_database, database)
            state = {"url": pg.url(database)}
        else:
            state = {"path": str(Path(home) / "state.db")}
        try:
            async with simulator as url:
                config = write_config(
                    Path(home) / "watcher.toml",
                    endpoint_url=url,
                    arns=names,
                    state=state,
                    watch={"max_tps": sizes.cpu_max_tps, "concurrency": 16},
                    intervals={"default": f"{sizes.cpu_interval:g}s"},
                )
                async with (
                    running(config, f"AKIDBENCHCPU{run:04d}") as daemon,
                    anyio.create_task_group() as group,
                ):
                    daemon.watch(event)
                    group.start_soon(follow_real_time)
                    with anyio.fail_after(10 * (seconds + 60)):
                        await window.closed.wait()
                    group.cancel_scope.cancel()
        finally:
            if store == POSTGRES:
                await anyio.to_thread.run_sync(pg.drop_database, database)
    assert window.first is not None
    assert window.last is not None
    assert window.started is not None
    (c0, t0, cpu0, server0), (c1, t1, cpu1, server1) = window.first, window.last
    polls = c1 - c0
    return {
        "daemon_us": (cpu1 - cpu0) / polls * 1e6,
        "server_us": (server1 - server0) / polls * 1e6,
        "total_us": (cpu1 - cpu0 + server1 - server0) / polls * 1e6,
        "polls": polls,
        "seconds": t1 - t0,
        # From the first successful GetImage to the last first sighting delivered.
        "first_pass_delivered_s": daemon.reached[event, sizes.cpu_builds] - window.started,
    }


async def bare_loop(sizes: Sizes, run: int) -> float:
    """For scale: CPU µs per call of section 1's bare aiobotocore loop (flat out, 16
    in flight) on this machine now, as busy as it is during this section."""
    names = build_arns("bare", sizes.cpu_builds)
    async with Simulator(_scenario(names, seed=run, building=None)) as url:
        job = {
            "endpoint_url": url,
            "arns": names,
            "interval": 0.0,
            "concurrency": 16,
            "max_tps": 1e6,
            "calls": sizes.cpu_polls,
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
            json.dump(job, handle)
            handle.flush()
            done = await anyio.run_process(
                [sys.executable, "-m", "bench.contenders.bare_loop", handle.name],
                cwd=ROOT,
            )
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return float(result["cpu_seconds"]) / int(result["ok"]) * 1e6


async def cpu_per_poll(pg: LocalPostgres, sizes: Sizes) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {SQLITE: [], POSTGRES: []}
    bare: list[float] = []
    for run in range(sizes.cpu_runs):
        # Interleaved, the first one alternating: a machine that slows down part-way
        # hurts neither more.
        order = (SQLITE, POSTGRES) if run % 2 == 0 else (POSTGRES, SQLITE)
        for store in order:
            runs[store].append(await cpu_run(pg, sizes, store, run))
            print(f"postgres: cpu run {run} {store}: {runs[store][-1]}", file=sys.stderr)
        bare.append(await bare_loop(sizes, run))
    found: dict[str, Any] = {
        "builds": sizes.cpu_builds,
        "interval": sizes.cpu_interval,
        "max_tps": sizes.cpu_max_tps,
        "polls": sizes.cpu_polls,
        "runs": sizes.cpu_runs,
        "bare_us": statistics.median(bare),
    }
    stores: dict[str, Any] = {}
    for store, per_run in runs.items():
        stores[store] = {m: statistics.median(r[m] for r in per_run) for m in per_run[0]}
    ratio = stores[POSTGRES]["daemon_us"] / stores[SQLITE]["daemon_us"]
    found |= {
        "stores": stores,
        "daemon_ratio": ratio,
        "total_ratio": stores[POSTGRES]["total_us"] / stores[SQLITE]["total_us"],
        "paired_daemon_ratios": [
            p["daemon_us"] / s["daemon_us"]
            for s, p in zip(runs[SQLITE], runs[POSTGRES], strict=True)
        ],
        "met": ratio <= CPU_GOAL,
    }
    found["per_run"] = runs
    return found


# ----------------------------------------------------------------- commit latency

START = datetime(2026, 1, 1, tzinfo=UTC)
IN_PROGRESS = [ImageStatus.BUILDING, ImageStatus.TESTING, ImageStatus.DISTRIBUTING]
SINKS = ["chat", "hook"]


@dataclass(frozen=True)
class CommitStore:
    label: str
    database: str | None = None
    """None: the SQLite file."""
    via: Via = "tcp"
    settings: tuple[tuple[str, str], ...] = ()
    """The database's own settings."""

    def state(self, pg: LocalPostgres, home: Path) -> dict[str, str]:
        """`[state]` as a config gives it."""
        if self.database is None:
            return {"path": str(home / "state.db")}
        return {"url": pg.url(self.database, via=self.via)}


COMMIT_STORES = [
    CommitStore(SQLITE),
    CommitStore(POSTGRES, "bench_commit_tcp"),
    CommitStore(f"{POSTGRES}, Unix socket", "bench_commit_socket", "socket"),
    CommitStore(
        f"{POSTGRES}, synchronous_commit off",
        "bench_commit_async",
        settings=(("synchronous_commit", "off"),),
    ),
]


class Builds:
    """The same poll results for every store: each build's tracked state, moved on
    one status per commit through the in-progress statuses."""

    def __init__(self, count: int) -> None:
        self.arns = build_arns("commit", count)
        self.tracked: dict[str, Tracked | None] = dict.fromkeys(self.arns)
        self.step: Counter[str] = Counter()

    def next_result(self, arn: str) -> tuple[Tracked, list[Any], dict[str, list[str]]]:
        n = self.step[arn]
        self.step[arn] += 1
        snapshot = ImageSnapshot(
            arn=arn,
            status=IN_PROGRESS[n % len(IN_PROGRESS)],
            name=arn.split("/")[1],
            version="1.0.0",
            build=1,
            type="AMI",
            platform="Linux",
            created=START,
            observed_at=START + timedelta(seconds=n),
        )
        tracked, events = observe(arn, self.tracked[arn], snapshot)
        self.tracked[arn] = tracked
        return tracked, events, {e.id: list(SINKS) for e in events}


async def _open(state: dict[str, str]) -> StateStore:
    opened = await open_store(StateConfig.model_validate(state), exclusive=True)
    if isinstance(opened, PostgresStore):
        import psycopg

        # As a leader writes: each commit first checks the leadership epoch.
        async with await psycopg.AsyncConnection.connect(state["url"]) as connection:
            cursor = await connection.execute("SELECT epoch FROM leadership WHERE id = 1")
            row = await cursor.fetchone()
        opened.fence_epoch = int(row[0]) if row else 0
    return opened


async def _deliver_all(store: StateStore) -> None:
    """What the dispatcher does once each sink acknowledged: the outbox emptied."""
    for sink in SINKS:
        while batch := await store.pending(sink, limit=500):
            for delivery in batch:
                await store.delivered(delivery.seq)


async def commit_latency(pg: LocalPostgres, sizes: Sizes) -> dict[str, Any]:
    """p50/p99 of `commit` per store, each already holding `commit_builds` builds'
    rows and three events each, the outbox emptied between chunks (untimed)."""
    stores = COMMIT_STORES
    with tempfile.TemporaryDirectory() as directory:
        for store in stores:
            if store.database is not None:
                await anyio.to_thread.run_sync(
                    partial(pg.create_database, store.database, **dict(store.settings))
                )
        opened: dict[str, StateStore] = {}
        builds: dict[str, Builds] = {}
        times: dict[str, list[list[float]]] = {s.label: [] for s in stores}

        async def fill(store: CommitStore) -> None:
            opened[store.label] = target = await _open(store.state(pg, Path(directory)))
            builds[store.label] = history = Builds(sizes.commit_builds)
            for _ in range(3):  # a first sighting and two transitions each
                for arn in history.arns:
                    await target.commit(arn, *history.next_result(arn), now=0.0)
            await _deliver_all(target)

        try:
            # Untimed, so all at once.
            async with anyio.create_task_group() as group:
                for store in stores:
                    group.start_soon(fill, store)
            rng = random.Random(0)
            for run in range(sizes.runs):
                for store in stores:
                    times[store.label].append([])
                for chunk in range(sizes.commits // sizes.commit_chunk):
                    arns = rng.sample(builds[SQLITE].arns, sizes.commit_chunk)
                    shift = (run * 7 + chunk) % len(stores)
                    for store in stores[shift:] + stores[:shift]:
                        target, history = opened[store.label], builds[store.label]
                        for arn in arns:
                            result = history.next_result(arn)
                            began = time.perf_counter()
                            await target.commit(arn, *result, now=float(chunk))
                            times[store.label][-1].append(time.perf_counter() - began)
                        await _deliver_all(target)
        finally:
            for target in opened.values():
                await target.close()
            for store in stores:
                if store.database is not None:
                    await anyio.to_thread.run_sync(pg.drop_database, store.database)
    found: dict[str, Any] = {}
    for label, per_run in times.items():
        found[label] = {
            "p50_ms": statistics.median(_pct(r, 50) for r in per_run) * 1000,
            "p99_ms": statistics.median(_pct(r, 99) for r in per_run) * 1000,
            "max_ms": max(max(r) for r in per_run) * 1000,
            "runs_p99_ms": [_pct(r, 99) * 1000 for r in per_run],
        }
    return {"builds": sizes.commit_builds, "commits": sizes.commits, "stores": found}


# ------------------------------------------------------------------------ section


async def measure(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    started = time.monotonic()
    with local_postgres() as pg:
        # The failover first: the part that depends on most of the daemon fails soonest.
        figures: dict[str, Any] = {
            "failover": await failover(pg, sizes),
            "commit": await commit_latency(pg, sizes),
            "cpu": await cpu_per_poll(pg, sizes),
        }
    figures["runs"] = sizes.runs
    figures["seconds"] = time.monotonic() - started
    return figures


# ------------------------------------------------------------------------- report


def render(r: dict[str, Any], when: str) -> list[str]:
    f, c, k = r["failover"], r["cpu"], r["commit"]
    lines = [
        "## 8. PostgreSQL state and high availability",
        "",
        when,
        "",
        "One PostgreSQL 16 server on this machine (the `pgserver` wheel's, with "
        "PostgreSQL's durable defaults: fsync and synchronous_commit on), reached over TCP "
        "on 127.0.0.1 unless a row says otherwise, against the daemon's SQLite state file "
        "(WAL, synchronous=NORMAL) in the same run (`bench/postgres_state.py`). "
        f"The section took {r['seconds'] / 60:.1f} minutes.",
        "",
        f"### Failover: the leader SIGKILLed, {len(f[POSTGRES]['runs'])} times",
        "",
        f"{f['builds']} builds in progress (BUILDING, the default poll intervals and "
        "max_tps) watched by two `ibwatch run` replicas on one database, "
        f"`[ha] failover` = {f['failover']:g} s"
        f"{' (the default)' if f['failover'] == DEFAULT_FAILOVER else ''}: the leader "
        f"heartbeats and a standby tries for the lock every {f['heartbeat']:g} s. The "
        "leader is SIGKILLed at a random moment of the standby's cycle of attempts; the "
        "killed one is started again as the new standby before the next kill. Timed from "
        "the kill: the standby's `ibwatch.leader.acquired` line (logged as it sets "
        "`ibwatch_leader` to 1; its /readyz said role leader and the metric 1 after "
        f"{'every' if f['checked'] else '**NOT every**'} takeover), and its first "
        "GetImage (the simulator's, by the replica's access key). The reference is what "
        "the SQLite file allows, one daemon: killed the same way and started again at "
        "once (a supervisor's own delay, seconds to minutes in Kubernetes' back-off, not "
        "counted), timed to its first GetImage.",
        "",
        "| state | from the kill to | median s | max s |",
        "| --- | --- | ---: | ---: |",
    ]
    for label, measure, what in (
        (POSTGRES, "leader_s", "the standby leads"),
        (POSTGRES, "first_get_image_s", "the new leader's first GetImage"),
        (SQLITE, "started_s", "the restarted daemon is up (`ibwatch.started`)"),
        (SQLITE, "first_get_image_s", "the restarted daemon's first GetImage"),
    ):
        m = f[label][measure]
        lines.append(f"| {label} | {what} | {m['median']:.2f} | {m['max']:.2f} |")
    worst = f[POSTGRES]["first_get_image_s"]["max"]
    lines += [
        "",
        f"Against the configured failover ({f['failover']:g} s): the worst kill was polling "
        f"again after **{worst:.2f} s** ({worst / f['failover']:.0%} of it). A killed "
        "leader's database session ends with it, and its advisory lock with the session, "
        f"so a standby takes over at its next attempt (within {f['heartbeat']:g} s); "
        "`failover` bounds the other case, a leader alive but silent (paused, cut off), "
        "not measured here. Per kill (s, standby leads / first GetImage): "
        + ", ".join(
            f"{x['leader_s']:.2f} / {x['first_get_image_s']:.2f}" for x in f[POSTGRES]["runs"]
        )
        + ".",
        "",
        f"### CPU per poll: {c['builds']} builds in progress",
        "",
        f"One `ibwatch run` watching {c['builds']} builds, every status polled every "
        f"{c['interval']:g} s (max_tps {c['max_tps']:g}), one log sink. The window opens "
        "at the first successful GetImage after its first sightings (a commit of state, "
        "event and delivery row each) have all been delivered; in its first half each "
        "build turns from BUILDING to TESTING once, at a random moment (the simulator's "
        "clock stands still until the window opens); it closes at the first successful "
        f"GetImage at least {c['polls']} after its opening once every transition has "
        "been delivered too: the same work for either store, whatever the pace of its "
        f"outbox. One poll in about {c['polls'] / c['builds']:g} commits a transition; a "
        "daemon polling builds every minute through statuses that last tens of minutes "
        "commits in far fewer, so this leans on the store. SQLite state and PostgreSQL "
        "state (a fresh file, a fresh database), one after the other, the first "
        "alternating from run to run. The simulator samples CPU in the very request "
        "that opens or closes the window. Daemon: user+sys CPU of the `ibwatch run` "
        "process (/proc/PID/stat, all its threads). Server: the PostgreSQL postmaster "
        "and every process it forked (sessions, checkpointer, WAL writer, autovacuum), "
        f"ended ones included. Medians of {c['runs']} run(s). For scale, section 1's "
        f"bare aiobotocore loop cost {c['bare_us']:.0f} µs per call on this machine "
        "during this section (one run after each pair of daemon runs; the median): "
        "compare ratios, not microseconds, with sections measured at another time.",
        "",
        "| state | daemon CPU µs per poll | PostgreSQL server CPU µs per poll "
        "| total µs per poll | polls in the window | seconds | first sightings all "
        "delivered after s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in (SQLITE, POSTGRES):
        s = c["stores"][label]
        server = f"{s['server_us']:.0f}" if label == POSTGRES else "n/a"
        lines.append(
            f"| {label} | {s['daemon_us']:.0f} | {server} | {s['total_us']:.0f} | "
            f"{s['polls']:g} | {s['seconds']:.1f} | {s['first_pass_delivered_s']:.1f} |"
        )
    verdict = "**met**" if c["met"] else "**NOT met**"
    lines += [
        "",
        f"Goal: PostgreSQL's CPU per poll, daemon side, at most {CPU_GOAL:g} times "
        f"SQLite's: **{c['daemon_ratio']:.2f}**, {verdict} (run by run: "
        + ", ".join(f"{x:.2f}" for x in c["paired_daemon_ratios"])
        + "). With the PostgreSQL server's own CPU, a real cost on the same machine: "
        f"**{c['total_ratio']:.2f}** times SQLite's (whose store is inside the daemon). "
        "The last column is the outbox's pace: a sink's deliveries go one at a time, "
        "and each one's acknowledgement is a commit of its own (fsync'd on PostgreSQL), "
        f"so {c['builds']} first sightings reach a sink that many commits later.",
        "",
        f"### Commit latency: a store holding {k['builds']} builds",
        "",
        f"`Store.commit` of one poll result (a build's new state, its transition event, "
        f"a delivery row for each of two sinks), timed in this process through "
        f"`open_store`, into a store already holding {k['builds']} builds' rows and three "
        "events each; PostgreSQL's writes fenced as a leader's are (each first reads the "
        f"leadership epoch). {k['commits']} commits per store per run, in chunks whose "
        "order rotates among the stores; after each chunk the outbox is emptied as the "
        f"dispatcher would (untimed). p50/p99: medians over {r['runs']} run(s).",
        "",
        "| store | p50 ms | p99 ms | max ms | p99 of each run, ms |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, s in k["stores"].items():
        each = ", ".join(f"{x:.1f}" for x in s["runs_p99_ms"])
        lines.append(
            f"| {label} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['max_ms']:.1f} | {each} |"
        )
    lines += [
        "",
        "The durability differs: PostgreSQL's default commit waits for its WAL to reach "
        "the disk (fsync), SQLite's synchronous=NORMAL in WAL mode does not (a power cut "
        "can lose its last commits; a crash of the process cannot). The "
        "synchronous_commit off row is PostgreSQL with the same bargain. Over a network "
        "each PostgreSQL commit also pays its round trips (three statements and the "
        "transaction's BEGIN/COMMIT), which 127.0.0.1 hides.",
        "",
    ]
    return lines
