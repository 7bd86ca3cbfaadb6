"""Benchmarks of ibwatch against what users would otherwise run, measured in one
run on one machine, against the embedded simulator. Prints a table of absolute
figures and ratios and rewrites bench/RESULTS.md (never edit it by hand).

    .venv/bin/python -m bench            # every benchmark, 5 runs each, medians
    .venv/bin/python -m bench --quick    # small sizes, one run each: under a minute

Contenders run as separate processes, so CPU time and memory are theirs alone.
Detection lag is measured on the system's monotonic clock, which the simulator
(here, in this process) and the contenders share.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from bench import postgres_state
from watcher.clock import SystemClock
from watcher.config import DEFAULT_INTERVALS, WatchConfig
from watcher.simulator import Scenario, Simulator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
STORE = ROOT / "bench" / "results.json"
"""The figures behind RESULTS.md, so `--only` re-runs one benchmark and keeps the rest."""
AWSCLI_VENV = ROOT / "bench" / ".venv-awscli"
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Sizes:
    runs: int
    overhead_arns: int
    overhead_calls: int
    throttle_arns: int
    throttle_duration: float
    throttle_changes: tuple[float, float]
    lag_arns: int
    lag_duration: float
    lag_changes: tuple[float, float]
    scale_arns: int
    scale_duration: float
    ci_runs: int
    discovery_pipelines: int
    discovery_passes: int
    discovery_history: tuple[int, ...]
    discovery_lag_pipelines: int
    discovery_lag_duration: float
    discovery_slow_speedup: float
    discovery_slow_runs: int
    push_runs: int
    push_builds: int
    push_warmup: float
    push_window: float
    push_tail: float
    push_safety: float


FULL = Sizes(
    runs=5,
    overhead_arns=2000,
    overhead_calls=6000,
    throttle_arns=1000,
    throttle_duration=90,
    throttle_changes=(10, 30),
    lag_arns=500,
    lag_duration=30,
    lag_changes=(5, 15),
    scale_arns=10_000,
    scale_duration=120,
    ci_runs=21,
    discovery_pipelines=200,
    discovery_passes=5,
    discovery_history=(1, 40),
    discovery_lag_pipelines=200,
    discovery_lag_duration=18,
    # The lag runs again 10 times faster rather than 30: each run then takes 44 s, so
    # ibwatch alone and three runs, or the section would take over 8 minutes.
    discovery_slow_speedup=10,
    discovery_slow_runs=3,
    # Three runs, not five: one run of section 7 takes over five minutes.
    push_runs=3,
    push_builds=1000,
    # The first pass takes 50 s at R; the daemons' start and the start events' sends
    # come before it (the margin is checked run by run).
    push_warmup=75,
    push_window=60,
    # Past the lossy contender's safety interval, so a build whose event was lost
    # near the window's end is seen by its safety poll, not counted at the end.
    push_tail=200,
    # Longer than BUILDING's interval (60 s), or the engine keeps the status
    # interval; short enough for a run: 1000 / 180 safety polls a second plus the
    # window's 13.3 events a second stay under R.
    push_safety=180,
)
QUICK = Sizes(
    runs=1,
    overhead_arns=500,
    overhead_calls=1500,
    throttle_arns=200,
    throttle_duration=12,
    throttle_changes=(2, 4),
    lag_arns=100,
    lag_duration=9,
    lag_changes=(2, 4),
    scale_arns=2000,
    scale_duration=8,
    ci_runs=3,
    discovery_pipelines=50,
    discovery_passes=4,
    discovery_history=(1, 30),
    discovery_lag_pipelines=50,
    discovery_lag_duration=14,
    discovery_slow_speedup=10,
    discovery_slow_runs=1,
    push_runs=1,
    push_builds=200,
    push_warmup=20,
    push_window=10,
    push_tail=12,
    push_safety=10,
)


def arns(prefix: str, count: int) -> list[str]:
    return [
        f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/{prefix}-{n}/1.0.0/1" for n in range(count)
    ]


def scenario(
    names: Sequence[str],
    changes: tuple[float, float] | None,
    seed: int,
    rate: float | None = None,
    steady: Sequence[str] = (),
) -> Scenario:
    """Every build BUILDING, then (with `changes`) AVAILABLE at a random moment;
    the builds in `steady` stay BUILDING throughout."""
    rng = random.Random(seed)
    images = []
    for arn in [*names, *steady]:
        if changes is None or arn in steady:
            timeline: list[dict[str, Any]] = [{"status": "BUILDING"}]
        else:
            timeline = [
                {"status": "BUILDING", "duration": rng.uniform(*changes)},
                {"status": "AVAILABLE"},
            ]
        images.append({"arn": arn, "timeline": timeline})
    faults = {"rate_limits": {"GetImage": {"rate": rate, "burst": rate}}} if rate else {}
    return Scenario.model_validate({"images": images, "faults": faults, "seed": seed})


async def contend(name: str, job: dict[str, Any], *flags: str) -> dict[str, Any]:
    """Run one contender process on `job`; its JSON result."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(job, handle)
    try:
        done = await anyio.run_process(
            [sys.executable, "-m", f"bench.contenders.{name}", handle.name, *flags],
            cwd=ROOT,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr.decode()[-2000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def lags(
    simulator: Simulator, observed: dict[str, float], names: Sequence[str], horizon: float
) -> tuple[list[float], int]:
    """Seconds from each build's change to its detection; unseen builds count as
    detected at `horizon` (a lower bound on their lag), and are counted."""
    values, unseen = [], 0
    for arn in names:
        changed = simulator.entered_at(arn, "AVAILABLE")
        assert changed is not None
        if arn in observed:
            values.append(observed[arn] - changed)
        else:
            unseen += 1
            values.append(horizon - changed)
    return values, unseen


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --------------------------------------------------------------------- benchmarks


async def overhead(sizes: Sizes) -> dict[str, Any]:
    """CPU seconds per successful get_image: ibwatch vs a bare aiobotocore loop."""
    names = arns("overhead", sizes.overhead_arns)
    per_call: dict[str, list[float]] = {"ibwatch": [], "bare aiobotocore": []}
    steady: dict[str, list[float]] = {"ibwatch": [], "bare aiobotocore": []}
    for run in range(sizes.runs):
        for contender, label in (("ibwatch_engine", "ibwatch"), ("bare_loop", "bare aiobotocore")):
            async with Simulator(scenario(names, None, seed=run)) as url:
                job = {
                    "endpoint_url": url,
                    "arns": names,
                    "interval": 0.0,
                    "concurrency": 16,
                    "max_tps": 1e6,
                    "calls": sizes.overhead_calls,
                }
                result = await contend(contender, job)
            per_call[label].append(result["cpu_seconds"] / result["ok"])
            steady[label].append(result["steady_cpu_per_call"])
    medians = {k: statistics.median(v) for k, v in per_call.items()}
    steady_medians = {k: statistics.median(v) for k, v in steady.items()}
    return {
        "cpu_per_call_us": {k: v * 1e6 for k, v in medians.items()},
        "ratio": medians["ibwatch"] / medians["bare aiobotocore"],
        "steady_cpu_per_call_us": {k: v * 1e6 for k, v in steady_medians.items()},
        "steady_ratio": steady_medians["ibwatch"] / steady_medians["bare aiobotocore"],
        "runs": per_call,
    }


async def throttle(sizes: Sizes) -> dict[str, Any]:
    """R = 20 req/s, far more demand than budget: goodput, throttled share, lag."""
    rate = 20.0
    # Half the builds turn AVAILABLE (their lag is measured); half stay BUILDING,
    # so demand exceeds the budget for the whole run and goodput is not diluted by
    # an idle end once every change has been seen.
    everything = arns("throttle", sizes.throttle_arns)
    names, steady = everything[: len(everything) // 2], everything[len(everything) // 2 :]
    contenders = {
        "ibwatch": ("ibwatch_engine", ()),
        "tenacity, no shared limiter": ("ibwatch_engine", ("--no-shared-limiter",)),
        "naive fixed-sleep loop": ("naive_loop", ()),
    }
    figures: dict[str, dict[str, list[float]]] = {
        k: {"goodput": [], "throttled": [], "lag_p50": [], "lag_p99": [], "unseen": []}
        for k in contenders
    }
    for run in range(sizes.runs):

        async def one(label: str, module: str, flags: tuple[str, ...], run: int) -> None:
            plan = scenario(names, sizes.throttle_changes, seed=run, rate=rate, steady=steady)
            simulator = Simulator(plan)
            async with simulator as url:
                job = {
                    "endpoint_url": url,
                    "arns": everything,
                    "interval": 5.0,
                    "concurrency": 16,
                    "max_tps": 50.0,
                    "duration": sizes.throttle_duration,
                }
                result = await contend(module, job, *flags)
                horizon = time.monotonic()
            counters = simulator.counters
            calls = counters.requests["GetImage"]
            values, unseen = lags(simulator, result["observed"], names, horizon)
            # Over the contender's polling window, not its start-up.
            figures[label]["goodput"].append(counters.outcome("ok") / result["wall_seconds"] / rate)
            figures[label]["throttled"].append(
                counters.outcome("CallRateLimitExceededException") / max(1, calls)
            )
            figures[label]["lag_p50"].append(pct(values, 50))
            figures[label]["lag_p99"].append(pct(values, 99))
            figures[label]["unseen"].append(unseen)

        # Each contender against its own simulator, side by side.
        async with anyio.create_task_group() as group:
            for label, (module, flags) in contenders.items():
                group.start_soon(one, label, module, flags, run)
    return {k: {m: statistics.median(v) for m, v in f.items()} for k, f in figures.items()}


async def lag(sizes: Sizes) -> dict[str, Any]:
    """No throttling, T = 5 s: detection lag of ibwatch and of the naive loop."""
    interval = 5.0
    names = arns("lag", sizes.lag_arns)
    figures: dict[str, dict[str, list[float]]] = {
        k: {"lag_p50": [], "lag_p99": [], "unseen": []}
        for k in ("ibwatch", "naive fixed-sleep loop")
    }
    for run in range(sizes.runs):
        for label, module in (
            ("ibwatch", "ibwatch_engine"),
            ("naive fixed-sleep loop", "naive_loop"),
        ):
            simulator = Simulator(scenario(names, sizes.lag_changes, seed=run))
            async with simulator as url:
                job = {
                    "endpoint_url": url,
                    "arns": names,
                    "interval": interval,
                    "concurrency": 16,
                    "max_tps": 1000.0,
                    "duration": sizes.lag_duration,
                }
                result = await contend(module, job)
                horizon = time.monotonic()
            values, unseen = lags(simulator, result["observed"], names, horizon)
            figures[label]["lag_p50"].append(pct(values, 50))
            figures[label]["lag_p99"].append(pct(values, 99))
            figures[label]["unseen"].append(unseen)
    medians = {k: {m: statistics.median(v) for m, v in f.items()} for k, f in figures.items()}
    return {"interval": interval, **medians}


async def scale(sizes: Sizes) -> dict[str, Any]:
    """Many ARNs at a 60 s interval: peak RSS, RSS per ARN, CPU share of one core."""
    small, big = 10, sizes.scale_arns
    runs: dict[str, list[float]] = {"peak_rss_mib": [], "rss_per_arn_kib": [], "cpu_percent": []}
    for run in range(max(1, sizes.runs // 2)):
        peaks = {}
        for count in (small, big):
            names = arns("scale", count)
            async with Simulator(scenario(names, None, seed=run)) as url:
                # The small run only gives the fixed footprint: a short one does.
                duration = sizes.scale_duration if count == big else min(10.0, sizes.scale_duration)
                job = {
                    "endpoint_url": url,
                    "arns": names,
                    "interval": 60.0,
                    "concurrency": 32,
                    "max_tps": 500.0,
                    "duration": duration,
                }
                result = await contend("ibwatch_engine", job)
            peaks[count] = result["peak_rss_kib"]
            if count == big:
                runs["cpu_percent"].append(100 * result["cpu_seconds"] / result["wall_seconds"])
        runs["peak_rss_mib"].append(peaks[big] / 1024)
        runs["rss_per_arn_kib"].append((peaks[big] - peaks[small]) / (big - small))
    return {
        "arns": big,
        "seconds": sizes.scale_duration,
        **{k: statistics.median(v) for k, v in runs.items()},
    }


CI_IBWATCH = "ibwatch wait-until-available"
CI_AWSCLI = "aws imagebuilder get-image"
CI_BARE = "bare aiobotocore get_image"


async def ci_latency(sizes: Sizes) -> dict[str, Any]:
    """Start to exit on an already-AVAILABLE image: ibwatch wait vs one AWS CLI call,
    and vs one bare aiobotocore call (the floor: the same client ibwatch uses, no
    more). Each run starts every command once, in an order that rotates from run to
    run, so a machine that slows down part-way hurts none of them more."""
    aws = _awscli()
    [arn] = arns("ci", 1)
    ready = Scenario.model_validate(
        {"images": [{"arn": arn, "timeline": [{"status": "AVAILABLE"}]}]}
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "BENCH",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    async with Simulator(ready) as url:
        commands = {
            CI_IBWATCH: [
                str(Path(sys.executable).parent / "ibwatch"),
                "wait-until-available",
                "--endpoint-url",
                url,
                arn,
            ],
            CI_BARE: [sys.executable, "-m", "bench.contenders.one_get_image", url, arn],
        }
        if aws is not None:
            commands[CI_AWSCLI] = [
                str(aws),
                "imagebuilder",
                "get-image",
                "--endpoint-url",
                url,
                "--image-build-version-arn",
                arn,
            ]
        times: dict[str, list[float]] = {label: [] for label in commands}
        order = list(commands)
        # One unmeasured round first: byte-code caches and the page cache warm.
        for run in range(-1, sizes.ci_runs):
            for label in order[run % len(order) :] + order[: run % len(order)]:
                started = time.monotonic()
                done = await anyio.run_process(commands[label], check=False, env=env, cwd=ROOT)
                elapsed = time.monotonic() - started
                if done.returncode != 0:
                    raise RuntimeError(f"{label} failed: {done.stderr.decode()[-1000:]}")
                if run >= 0:
                    times[label].append(elapsed)
    medians = {k: statistics.median(v) for k, v in times.items()}
    baseline = CI_AWSCLI if aws is not None else CI_BARE
    return {
        "seconds": medians,
        "runs": sizes.ci_runs,
        "baseline": baseline,
        "awscli": str(aws) if aws is not None else None,
        "ratio": medians[CI_IBWATCH] / medians[baseline],
        "ratio_to_bare": medians[CI_IBWATCH] / medians[CI_BARE],
        "bare_to_awscli": medians[CI_BARE] / medians[CI_AWSCLI] if aws is not None else None,
    }


def _awscli() -> Path | None:
    """The AWS CLI: `IBWATCH_BENCH_AWSCLI` if set, else the one in bench/.venv-awscli,
    else one on PATH, else installed into bench/.venv-awscli; None when none can be
    had (no network): section 5 then compares with the bare aiobotocore call alone."""
    named = os.environ.get("IBWATCH_BENCH_AWSCLI")
    if named:
        return Path(named)
    aws = AWSCLI_VENV / "bin" / "aws"
    if aws.exists():
        return aws
    found = shutil.which("aws")
    if found:
        return Path(found)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
        subprocess.run(
            [str(AWSCLI_VENV / "bin" / "pip"), "install", "--quiet", "awscli"], check=True
        )
    except subprocess.CalledProcessError:
        return None
    return aws


# Discovery runs the daemon's 60 s defaults SPEEDUP times faster: a 2 s discovery
# interval, poll intervals and the request budget scaled alike, and the simulator's
# time_scale to match, so each pass has the share of the budget it has in production.
DEFAULT_DISCOVERY_INTERVAL: float = WatchConfig.model_fields["discovery_interval"].default
DISCOVERY_INTERVAL = 2.0
SPEEDUP = DEFAULT_DISCOVERY_INTERVAL / DISCOVERY_INTERVAL
DEFAULT_MAX_TPS: float = WatchConfig.model_fields["max_tps"].default
PIPELINE_RUN = [
    {"status": "PENDING", "duration": 120},
    {"status": "BUILDING", "duration": 1800},
    {"status": "TESTING", "duration": 600},
    {"status": "DISTRIBUTING", "duration": 300},
    {"status": "AVAILABLE"},
]
"""One run of a pipeline, in scenario seconds (a 47-minute build)."""
DISCOVERY_CONTENDERS = {"ibwatch": "ibwatch_discovery", "hand-written list loop": "pipeline_loop"}


def pipelines_scenario(
    prefix: str,
    count: int,
    history: int,
    seed: int,
    first_runs: Sequence[float] = (),
    speedup: float = SPEEDUP,
) -> Scenario:
    """`count` pipelines, each with `history` AVAILABLE builds it ran before; with
    `first_runs` (real seconds after start), pipeline n runs once more then. Scenario
    time runs `speedup` times faster than real time."""
    head = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
    images, pipelines = [], []
    for n in range(count):
        name, version = f"{prefix}-{n}", f"{head}:image/{prefix}-{n}/1.0.0"
        images += [
            {"arn": f"{version}/{b}", "pipeline": name, "timeline": [{"status": "AVAILABLE"}]}
            for b in range(1, history + 1)
        ]
        pipeline: dict[str, Any] = {
            "arn": f"{head}:image-pipeline/{name}",
            "image": version,
            "timeline": PIPELINE_RUN,
        }
        if n < len(first_runs):
            at = first_runs[n] * speedup
            pipeline["schedule"] = {"every": "1d", "first": at, "until": at}
        pipelines.append(pipeline)
    return Scenario.model_validate(
        {"images": images, "pipelines": pipelines, "seed": seed, "time_scale": speedup}
    )


def discovery_job(
    url: str, scenario: Scenario, speedup: float = SPEEDUP, **fields: Any
) -> dict[str, Any]:
    """The daemon's defaults played `speedup` times faster."""
    return {
        "endpoint_url": url,
        "arns": [p.arn for p in scenario.pipelines],
        "interval": DEFAULT_DISCOVERY_INTERVAL / speedup,
        "concurrency": 16,
        "max_tps": DEFAULT_MAX_TPS * speedup,
        "intervals": {k: v / speedup for k, v in DEFAULT_INTERVALS.items()},
        **fields,
    }


class Arrivals(Counter[str]):
    """`simulator.counters.requests` that also notes when each request arrived, so
    a contender's requests can be split exactly at the end of its first pass."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[float, str]] = []

    def __setitem__(self, operation: str, count: int) -> None:
        if count > self.get(operation, 0):
            self.log.append((time.monotonic(), operation))
        super().__setitem__(operation, count)


async def idle_pipelines(label: str, sizes: Sizes, history: int, run: int) -> dict[str, Any]:
    """One contender following pipelines that do not run: requests per operation in
    its first pass and in the passes after it."""
    count, passes = sizes.discovery_pipelines, sizes.discovery_passes
    plan = pipelines_scenario("idle", count, history, seed=run)
    simulator = Simulator(plan)
    arrivals = simulator.counters.requests = Arrivals()
    async with simulator as url:
        result = await contend(DISCOVERY_CONTENDERS[label], discovery_job(url, plan, passes=passes))
    ends = result["passes"]
    # A pass's requests all arrive before its end is noted, the next pass's after.
    first = dict(Counter(op for at, op in arrivals.log if at <= ends[0]))
    later = dict(Counter(op for at, op in arrivals.log if at > ends[0]))
    per_pass = sum(later.values()) / (len(ends) - 1) / count
    return {
        "first": first,
        "later": later,
        "passes": len(ends),
        # Start to start, from the second pass: the first one lists, and can
        # overrun the interval.
        "spacing": (result["pass_starts"][-1] - result["pass_starts"][1]) / (len(ends) - 2),
        "first_pass_seconds": ends[0] - result["began"],
        "first_pass_per_pipeline": sum(first.values()) / count,
        "per_pipeline_hour": per_pass * 3600 / 60,
        "cpu_ms_per_pipeline_pass": (result["pass_cpu"][-1] - result["pass_cpu"][0])
        * 1000
        / (len(ends) - 1)
        / count,
        "errors": result["errors"],
    }


class GatedClock:
    """The system clock for a simulator, except that its monotonic time stands still
    until `open()`: scenario time starts when the contender first calls, not when
    the simulator starts. A contender's process can take seconds to start on a
    loaded machine (imports alone took 11 s at a load of 6 on 2 cores), and runs
    timed from the simulator's start would all begin before its first pass."""

    def __init__(self) -> None:
        self._system = SystemClock()
        self._frozen = time.monotonic()
        self._opened_at: float | None = None

    def open(self) -> None:
        if self._opened_at is None:
            self._opened_at = time.monotonic()

    @property
    def shift(self) -> float:
        """System monotonic time minus this clock's, once open."""
        return 0.0 if self._opened_at is None else self._opened_at - self._frozen

    def monotonic(self) -> float:
        return self._frozen if self._opened_at is None else time.monotonic() - self.shift

    def now(self) -> datetime:
        return self._system.now()

    async def sleep(self, seconds: float) -> None:
        await self._system.sleep(seconds)

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        return self._system.move_on_after(seconds)


class OpensOnFirstRequest(Arrivals):
    """`Arrivals` that opens a `GatedClock` on the first request."""

    def __init__(self, clock: GatedClock) -> None:
        super().__init__()
        self._clock = clock

    def __setitem__(self, operation: str, count: int) -> None:
        self._clock.open()
        super().__setitem__(operation, count)

    def peak_rate(self, window: float) -> float:
        """The most requests that arrived within `window` seconds, per second."""
        times = [at for at, _ in self.log]
        most, first = 0, 0
        for last, at in enumerate(times):
            while times[first] <= at - window:
                first += 1
            most = max(most, last - first + 1)
        return most / window


LAG_TRIES = 3
"""Tries of one lag run before giving up: on a loaded machine the contender can
take so long to start that every run began before its first pass (all early)."""


async def scheduled_pipelines(
    label: str, sizes: Sizes, run: int, speedup: float = SPEEDUP
) -> dict[str, Any]:
    """`scheduled_lag` of one run, tried again (another seed) while no run of a
    pipeline started after the contender's first pass: there is nothing to time."""
    for attempt in range(LAG_TRIES):
        found = await scheduled_lag(label, sizes, run + 1000 * attempt, speedup)
        if found["builds"]:
            return {**found, "tries": attempt + 1}
        print(f"discovery lag, {label}, run {run}: every run early; again", file=sys.stderr)
    raise RuntimeError(
        f"discovery lag, {label}: every pipeline run started before the contender's "
        f"first pass, {LAG_TRIES} times; is the machine overloaded?"
    )


LAG_SETTLE = 5.0
"""Real seconds from a contender's first call to the first run of the lag runs:
its first pass is over by then."""


def lag_window(sizes: Sizes, speedup: float) -> tuple[float, float]:
    """(last run's latest start, run's duration), real seconds, of the lag runs at
    `speedup`. At every speed-up the runs start over the same span of scenario time
    as at SPEEDUP, so they ask the same share of the request budget; each run ends 3
    discovery intervals after the last start, so every build can be found."""
    scenario_span = (sizes.discovery_lag_duration - 3 * DISCOVERY_INTERVAL - LAG_SETTLE) * SPEEDUP
    latest = LAG_SETTLE + scenario_span / speedup
    return latest, latest + 3 * DEFAULT_DISCOVERY_INTERVAL / speedup


def asked_share(starts: Sequence[float], speedup: float, pipelines: int) -> float:
    """What lag runs starting at `starts` (real seconds at `speedup`) ask of ibwatch
    at their busiest start, as a share of max_tps: the same at every speed-up. One
    GetImagePipeline per pipeline per interval, a poll of each build in progress at
    its status's default interval (the first one included), and the listing of each
    pipeline that ran within the last interval (step look-ups aside)."""
    runs = [at * speedup for at in starts]  # scenario seconds
    window = DEFAULT_DISCOVERY_INTERVAL
    peak = 0.0
    for now in runs:
        begun = [now - at for at in runs if at <= now]
        asked = pipelines / window + sum(_poll_rate(age) for age in begun)
        asked += sum(age < window for age in begun) / window
        peak = max(peak, asked)
    return peak / DEFAULT_MAX_TPS


def _poll_rate(age: float) -> float:
    """Polls per second of a PIPELINE_RUN build `age` scenario seconds after it began."""
    for step in PIPELINE_RUN:
        if "duration" not in step:
            return 0.0  # ended: no longer polled
        if age < step["duration"]:
            return 1.0 / DEFAULT_INTERVALS.get(step["status"], DEFAULT_INTERVALS["default"])
        age -= step["duration"]
    return 0.0


async def scheduled_lag(
    label: str, sizes: Sizes, run: int, speedup: float = SPEEDUP
) -> dict[str, Any]:
    """One contender following pipelines that each run once during the window:
    seconds from each run's start to the contender's first event for that build."""
    count = sizes.discovery_lag_pipelines
    latest, duration = lag_window(sizes, speedup)
    rng = random.Random(run)
    starts = [rng.uniform(LAG_SETTLE, latest) for _ in range(count)]
    plan = pipelines_scenario("sched", count, 1, seed=run, first_runs=starts, speedup=speedup)
    clock = GatedClock()
    simulator = Simulator(plan, clock=clock)
    simulator.counters.requests = OpensOnFirstRequest(clock)
    async with simulator as url:
        result = await contend(
            DISCOVERY_CONTENDERS[label], discovery_job(url, plan, speedup, duration=duration)
        )
        horizon = time.monotonic()
    ready = result["passes"][0]
    seen, values, early, unseen = result["first_event"], [], 0, 0
    for pipeline in simulator.pipelines:
        for build in pipeline.runs:
            if build.build_type != "SCHEDULED":
                continue
            started = simulator.real_time(build.started) + clock.shift
            if started < ready:  # before the contender knew what existed
                early += 1
                continue
            if build.arn not in seen:
                unseen += 1
            values.append(seen.get(build.arn, horizon) - started)
    if not values:
        return {"builds": 0, "early": early}
    # The pass under way when the run ended has a start and no end.
    ends = result["passes"]
    spans = [
        end - start for start, end in zip(result["pass_starts"][: len(ends)], ends, strict=True)
    ]
    return {
        "lag_p50": pct(values, 50),
        "lag_p99": pct(values, 99),
        "lag_max": max(values),
        "builds": len(values),
        "early": early,
        "unseen": unseen,
        # What holds the lag back when the contender falls behind: its passes outlast
        # the interval, and its process is busy (a share of one core: it has one thread).
        "longest_pass": max(spans[1:], default=math.nan),
        # Served, not asked: at max_tps when the request budget is what holds it back.
        "peak_share": simulator.counters.requests.peak_rate(DEFAULT_DISCOVERY_INTERVAL / speedup)
        / (DEFAULT_MAX_TPS * speedup),
        "cpu_share": result["cpu_seconds"] / result["wall_seconds"],
        "asked_share": asked_share(starts, speedup, count),
    }


async def side_by_side(
    measure: Callable[..., Awaitable[dict[str, Any]]], *args: Any
) -> dict[str, dict[str, Any]]:
    """Every discovery contender at once, each against its own simulator: calls are
    counted per simulator, so running them side by side changes no count."""
    found: dict[str, dict[str, Any]] = {}

    async def one(label: str) -> None:
        found[label] = await measure(label, *args)

    async with anyio.create_task_group() as group:
        for label in DISCOVERY_CONTENDERS:
            group.start_soon(one, label)
    return found


async def discovery(sizes: Sizes) -> dict[str, Any]:
    """Pipelines as sources of builds: what idle pipelines cost per hour, and how
    soon a new run is found, for ibwatch and for a hand-written list loop."""
    idle: dict[str, dict[str, list[dict[str, Any]]]] = {
        str(h): {k: [] for k in DISCOVERY_CONTENDERS} for h in sizes.discovery_history
    }
    lag_runs: dict[str, list[dict[str, Any]]] = {k: [] for k in DISCOVERY_CONTENDERS}
    for run in range(sizes.runs):
        for history in sizes.discovery_history:
            if history > 1 and run > 0:
                continue  # its counts are exact and the same every run: one run will do
            found = await side_by_side(idle_pipelines, sizes, history, run)
            for label, figures in found.items():
                idle[str(history)][label].append(figures)
        # One after the other: side by side, two contenders and two simulators on
        # this machine's cores delay ibwatch's passes by CPU contention alone.
        for label in DISCOVERY_CONTENDERS:
            lag_runs[label].append(await scheduled_pipelines(label, sizes, run))
    # The same lag runs played slower: a third of the calls per real second, so the
    # contender's CPU is no longer what holds it back (see _render_discovery).
    slow = sizes.discovery_slow_speedup
    slow_runs = [
        await scheduled_pipelines("ibwatch", sizes, run, slow)
        for run in range(sizes.discovery_slow_runs)
    ]

    count, passes = sizes.discovery_pipelines, sizes.discovery_passes
    costs: dict[str, Any] = {}
    for depth, by_label in idle.items():
        summary: dict[str, Any] = {}
        for label, per_run in by_label.items():
            summary[label] = {
                "per_pipeline_hour": statistics.median(r["per_pipeline_hour"] for r in per_run),
                "first_pass_per_pipeline": statistics.median(
                    r["first_pass_per_pipeline"] for r in per_run
                ),
                "spacing": statistics.median(r["spacing"] for r in per_run),
                "first_pass_seconds": statistics.median(r["first_pass_seconds"] for r in per_run),
                "first": _median_counts([r["first"] for r in per_run]),
                "later": _median_counts([r["later"] for r in per_run]),
                "cpu_ms_per_pipeline_pass": statistics.median(
                    r["cpu_ms_per_pipeline_pass"] for r in per_run
                ),
                "runs": len(per_run),
                "errors": statistics.median(r["errors"] for r in per_run),
            }
        pages = -(-int(depth) // 25)  # ListImagePipelineImages pages of 25
        summary["held"] = all(
            r["first"] == {"GetImagePipeline": count, "ListImagePipelineImages": count * pages}
            and r["later"] == {"GetImagePipeline": (passes - 1) * count}
            and r["passes"] == passes
            for r in by_label["ibwatch"]
        )
        summary["ratio"] = (
            summary["ibwatch"]["per_pipeline_hour"]
            / summary["hand-written list loop"]["per_pipeline_hour"]
        )
        costs[depth] = summary
    goal = _lag_goal(SPEEDUP)
    lags_found = {label: _lag_summary(timed, goal) for label, timed in lag_runs.items()}
    return {
        "interval": DISCOVERY_INTERVAL,
        "speedup": SPEEDUP,
        "pipelines": count,
        "passes": passes,
        "lag_pipelines": sizes.discovery_lag_pipelines,
        "lag_seconds": sizes.discovery_lag_duration,
        "goal": goal,
        "idle": costs,
        "lag": lags_found,
        "lag_slow": {
            "speedup": slow,
            "interval": DEFAULT_DISCOVERY_INTERVAL / slow,
            "goal": _lag_goal(slow),
            "seconds": lag_window(sizes, slow)[1],
            "ibwatch": _lag_summary(slow_runs, _lag_goal(slow)),
        },
    }


def _lag_goal(speedup: float) -> float:
    """The discovery interval plus one poll interval (PENDING), at `speedup`."""
    return (DEFAULT_DISCOVERY_INTERVAL + DEFAULT_INTERVALS["PENDING"]) / speedup


def _lag_summary(timed: Sequence[dict[str, Any]], goal: float) -> dict[str, Any]:
    """Medians of a contender's lag runs, its worst run's max, and in how many runs
    every build was found within `goal`."""
    found: dict[str, Any] = {m: statistics.median(r[m] for r in timed) for m in timed[0]}
    found["worst_max"] = max(r["lag_max"] for r in timed)
    found["held"] = sum(r["lag_max"] <= goal and not r["unseen"] for r in timed)
    found["runs"] = len(timed)
    return found


def _median_counts(runs: Sequence[dict[str, int]]) -> dict[str, float]:
    operations = sorted({op for counts in runs for op in counts})
    return {op: statistics.median(counts.get(op, 0) for counts in runs) for op in operations}


# Push+poll: the daemon's [events] fast path against its poll-only self. R and
# max_tps are both 20 req/s: the simulator's budget, and the daemon set to use it.
PUSH_RATE = 20.0
DEFAULT_SAFETY = 600.0
"""`[events] safety_interval`'s default (watcher/config/events.py)."""
POLL_ONLY = "poll-only"
PUSH = "push+poll"
PUSH_LOSSY = "push+poll, 20% of events lost"
PUSH_CONTENDERS = (POLL_ONLY, PUSH, PUSH_LOSSY)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class LocalSqs:
    """moto's server (`moto[server]`, as tests/sqs_support.py uses it) on loopback,
    in a process of its own so that its CPU is not the simulators', one per push
    contender so that one queue's traffic never waits behind another's.

    moto's SendMessage and ReceiveMessage each compute the queue's attributes, which
    count its messages one by one (`Queue.attributes`: ApproximateNumberOfMessages,
    ...Delayed, ...NotVisible, two clock reads a message): every message costs time
    in proportion to the messages the queue holds. Measured here: 13 ms a
    SendMessage into an empty queue, 50 ms with 1,000 waiting. So the queue must
    stay short: see `push_one`."""

    async def __aenter__(self) -> LocalSqs:
        port = _free_port()
        self._process = await anyio.open_process(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # PurgeQueue at any time, as `push_one` needs (moto refuses a second one
            # within 60 s by default, as SQS does).
            env={**os.environ, "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false"},
        )
        self.url = f"http://127.0.0.1:{port}"
        self._stack = AsyncExitStack()
        for _ in range(200):  # a new process: no state to reset
            try:
                await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
            except OSError:
                await anyio.sleep(0.05)
                continue
            self._sqs = await self._stack.enter_async_context(self._client())
            return self
        self._process.kill()
        raise RuntimeError("moto's server did not start")

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()
        self._process.terminate()
        with anyio.move_on_after(10):
            await self._process.wait()

    def _client(self) -> Any:
        from aiobotocore.session import AioSession

        session = AioSession()
        session.set_credentials("BENCH", "bench-not-a-secret")
        return session.create_client("sqs", region_name="us-east-1", endpoint_url=self.url)

    async def queue(self, name: str) -> str:
        created = await self._sqs.create_queue(QueueName=name)
        return str(created["QueueUrl"])

    async def purge(self, queue_url: str) -> None:
        await self._sqs.purge_queue(QueueUrl=queue_url)


SEND_LATE_LIMIT = 0.5
"""Seconds: a run whose window's events reached SQS later than this at p99 is
invalid (the harness, not the daemon, would hold the lag: a quarter of the 2 s
goal). A late send only lengthens push+poll's lags: it can hide a goal met, never
fake one."""


async def push_one(label: str, sizes: Sizes, run: int) -> dict[str, Any]:
    """One contender against its own simulator (and its own moto): every build
    BUILDING, turning AVAILABLE at a random moment of the window after the first
    pass. Says whether the run is valid, and why not."""
    names = arns("push", sizes.push_builds)
    start, end = sizes.push_warmup, sizes.push_warmup + sizes.push_window
    plan = scenario(names, (start, end), seed=run, rate=PUSH_RATE)
    job: dict[str, Any] = {
        "arns": names,
        "concurrency": 16,
        "max_tps": PUSH_RATE,
        "duration": end + sizes.push_tail,
    }
    async with AsyncExitStack() as stack:
        queue_url = None
        if label != POLL_ONLY:
            sqs = await stack.enter_async_context(LocalSqs())
            queue_url = await sqs.queue("bench-push")
            loss = 0.2 if label == PUSH_LOSSY else 0.0
            events = plan.events.model_copy(update={"loss": loss})
            plan = plan.model_copy(update={"events": events})
            safety = sizes.push_safety if label == PUSH_LOSSY else DEFAULT_SAFETY
            job.update(queue_url=queue_url, sqs_endpoint=sqs.url, safety_interval=safety)
        simulator = Simulator(plan, events_queue=queue_url)
        arrivals = simulator.counters.requests = Arrivals()
        async with simulator as url:
            if queue_url is not None:
                # The events of every build's start (its first status, BUILDING) are
                # sent at once; gone before the daemon starts, as if it had been
                # running then: it would poll each build twice over in its first pass
                # otherwise. Purged while they are sent, so moto's queue stays short.
                pushed = simulator.push_counters
                # The simulator's counters have no event to wait on: polled.
                while pushed.changes < len(names) or (
                    pushed.sent + pushed.dropped + pushed.failed < pushed.changes
                ):
                    await sqs.purge(queue_url)
                    await anyio.sleep(0.05)
                await sqs.purge(queue_url)
            result = await contend("ibwatch_push", {**job, "endpoint_url": url})
            horizon = time.monotonic()
    values, unseen = lags(simulator, result["observed"], names, horizon)
    # The window opens with the first change: calls before it are the first pass
    # (a first sighting of every build) and its follow-ups.
    opened = min(t for t in (simulator.entered_at(a, "AVAILABLE") for a in names) if t)
    calls = sum(1 for at, op in arrivals.log if op == "GetImage" and at >= opened)
    first_pass = sum(1 for at, op in arrivals.log if op == "GetImage" and at < opened)
    detected = len(result["observed"])
    pushed = simulator.push_counters
    # The window's events only: the start events were purged.
    late = [delay for at, delay in pushed.late if at >= start]
    invalid = []
    done = result["first_pass_done"]
    margin = opened - done if done is not None else -math.inf
    if result["first_sightings"] < len(names) or margin <= 0:
        invalid.append(
            f"first pass not over before the first change ({result['first_sightings']} of "
            f"{len(names)} builds seen, {margin:.1f} s to spare)"
        )
    if late and pct(late, 99) > SEND_LATE_LIMIT:
        invalid.append(
            f"events reached SQS late (p99 {pct(late, 99):.2f} s > {SEND_LATE_LIMIT:g} s)"
        )
    if pushed.failed:
        invalid.append(f"{pushed.failed} events could not be sent")
    return {
        "lag_p50": pct(values, 50),
        "lag_p99": pct(values, 99),
        "lag_max": max(values),
        "unseen": unseen,
        "calls_per_transition": calls / max(1, detected),
        "calls": calls,
        "first_pass_calls": first_pass,
        "detected": detected,
        "throttled": simulator.counters.outcome("CallRateLimitExceededException"),
        "event_polls": result["push"]["matched"],
        "scheduled_polls": calls - result["push"]["matched"],
        "events_sent": pushed.sent,
        "events_lost": pushed.dropped,
        "send_requests": pushed.requests,
        "send_late_p50": pct(late, 50) if late else 0.0,
        "send_late_p99": pct(late, 99) if late else 0.0,
        "send_late_max": max(late) if late else 0.0,
        "first_pass_margin": margin,
        "cpu_seconds": result["cpu_seconds"],
        "invalid": invalid,
    }


async def push(sizes: Sizes) -> dict[str, Any]:
    """Push+poll (SQS events, each polls its build at once) against poll-only, at
    R = 20 req/s with `push_builds` builds in progress: lag and GetImage calls per
    detected transition. Runs until `push_runs` runs are valid (at most one more
    try); the medians are of the valid runs, or, with too few of them, of every run
    tried, flagged as such."""
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in PUSH_CONTENDERS}
    every: dict[str, list[dict[str, Any]]] = {k: [] for k in PUSH_CONTENDERS}
    tried: list[dict[str, Any]] = []
    seed = 0
    while sum(not t["invalid"] for t in tried) < sizes.push_runs and len(tried) < (
        sizes.push_runs + 1
    ):
        this: dict[str, dict[str, Any]] = {}

        async def one(label: str, run: int, this: dict[str, dict[str, Any]]) -> None:
            this[label] = await push_one(label, sizes, run)

        # Side by side, each against its own simulator and queue: the same seed, so
        # the same builds change at the same moments in all three.
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for label in PUSH_CONTENDERS:
                group.start_soon(one, label, seed, this)
        invalid = [f"{label}: {why}" for label in PUSH_CONTENDERS for why in this[label]["invalid"]]
        tried.append(
            {
                "seed": seed,
                "seconds": time.monotonic() - started,
                "invalid": invalid,
                "send_late_p99": max(this[k]["send_late_p99"] for k in (PUSH, PUSH_LOSSY)),
                "first_pass_margin": min(this[k]["first_pass_margin"] for k in PUSH_CONTENDERS),
            }
        )
        print(f"push: run with seed {seed}: {invalid or 'valid'}", file=sys.stderr)
        for label in PUSH_CONTENDERS:
            every[label].append(this[label])
            if not invalid:
                runs[label].append(this[label])
        seed += 1
    valid = len(runs[POLL_ONLY])
    if valid < sizes.push_runs:
        runs = every
    found: dict[str, Any] = {}
    for label, per_run in runs.items():
        if not per_run:
            continue
        numeric = [m for m, v in per_run[0].items() if isinstance(v, int | float)]
        found[label] = {m: statistics.median(r[m] for r in per_run) for m in numeric}
        found[label]["worst_lag_p99"] = max(r["lag_p99"] for r in per_run)
        found[label]["worst_calls_per_transition"] = max(r["calls_per_transition"] for r in per_run)
        found[label]["per_run"] = per_run
    if runs[POLL_ONLY]:
        base = found[POLL_ONLY]
        for label in PUSH_CONTENDERS:
            for metric in ("lag_p50", "lag_p99", "calls_per_transition"):
                ours = found[label][metric]
                found[label][f"{metric}_ratio"] = ours / base[metric] if base[metric] else math.nan
    goals = {
        "push lag p99 ≤ 2 s": [r["lag_p99"] <= 2.0 for r in runs[PUSH]],
        "push ≤ 1.2 GetImage calls per transition": [
            r["calls_per_transition"] <= 1.2 for r in runs[PUSH]
        ],
        f"20% lost: lag p99 ≤ safety_interval ({sizes.push_safety:g} s)": [
            r["lag_p99"] <= sizes.push_safety for r in runs[PUSH_LOSSY]
        ],
    }
    return {
        "rate": PUSH_RATE,
        "builds": sizes.push_builds,
        "warmup": sizes.push_warmup,
        "window": sizes.push_window,
        "tail": sizes.push_tail,
        "safety": sizes.push_safety,
        "default_safety": DEFAULT_SAFETY,
        "runs": sizes.push_runs,
        "valid": valid,
        "medians_of": len(runs[POLL_ONLY]),
        "tried": tried,
        "send_late_limit": SEND_LATE_LIMIT,
        "contenders": found,
        "goals": {k: {"held": sum(v), "runs": len(v)} for k, v in goals.items()},
    }


BENCHMARKS = {
    "overhead": overhead,
    "throttle": throttle,
    "lag": lag,
    "scale": scale,
    "ci": ci_latency,
    "discovery": discovery,
    "push": push,
    "postgres": lambda sizes: postgres_state.measure(quick=sizes is QUICK),
}


# ------------------------------------------------------------------------ report


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {model}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def render(results: dict[str, Any], sizes: Sizes, quick: bool) -> str:
    # `--only` keeps the other sections' figures, which may come from another machine:
    # then each section names its own.
    machines = {r.get("machine") for r in results.values()}
    one_machine = len(machines) == 1 and None not in machines

    def measured(section: dict[str, Any]) -> str:
        where = "" if one_machine else f" on {section.get('machine', 'an unrecorded machine')}"
        return f"_Measured {section.get('measured', '?')}{where}._"

    lines = [
        "# Benchmark results",
        "",
        "Regenerated by `python -m bench` (never edited by hand). "
        f"{'Quick mode: small sizes, one run.' if quick else f'Medians of {sizes.runs} runs.'}",
        "",
        f"- Machine: {next(iter(machines))}"
        if one_machine
        else "- Machines: each section names the one it was measured on.",
        f"- Written: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; each section says "
        "when it was measured (`--only` re-runs one and keeps the others).",
        "",
    ]
    if "overhead" in results:
        r = results["overhead"]
        lines += [
            "## 1. Overhead per call",
            "",
            measured(results["overhead"]),
            "",
            f"{sizes.overhead_arns} ARNs polled as fast as possible, "
            f"{sizes.overhead_calls} successful calls per contender, concurrency 16.",
            "",
            "| contender | CPU µs per call, all calls | CPU µs per call, steady state |",
            "| --- | ---: | ---: |",
        ]
        lines += [
            f"| {k} | {v:.0f} | {r['steady_cpu_per_call_us'][k]:.0f} |"
            for k, v in r["cpu_per_call_us"].items()
        ]
        lines += [
            "",
            f"Ratio ibwatch / bare: **{r['ratio']:.2f}** over all calls, "
            f"**{r['steady_ratio']:.2f}** in steady state (goal ≤ 1.15). All calls include the "
            "first poll of every ARN, which for ibwatch is a first sighting: a transition and "
            "an SQLite commit. Steady state starts once every ARN has been "
            "polled once.",
            "",
        ]
    if "throttle" in results:
        lines += [
            "## 2. Throttle economy",
            "",
            measured(results["throttle"]),
            "",
            f"Simulator limited to R = 20 req/s; {sizes.throttle_arns} ARNs at a 5 s "
            f"interval; half the builds turn AVAILABLE between {sizes.throttle_changes[0]:g} and "
            f"{sizes.throttle_changes[1]:g} s (their lag is measured), the other half stay "
            f"BUILDING so demand exceeds the budget throughout; {sizes.throttle_duration:g} s "
            "per run, the contenders side by side, each against its own simulator.",
            "",
            "| contender | goodput ÷ R | throttled ÷ calls | lag p50 s | lag p99 s | unseen |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for k, v in results["throttle"].items():
            if not isinstance(v, dict):
                continue
            lines.append(
                f"| {k} | {v['goodput']:.2f} | {v['throttled']:.1%} | {v['lag_p50']:.1f} | "
                f"{v['lag_p99']:.1f} | {v['unseen']:.0f} |"
            )
        lines += [
            "",
            "Goals for ibwatch: goodput ≥ 0.9, throttled ≤ 2%, lag p99 lower than both "
            "others. An unseen build counts as detected at the end of the run.",
            "",
        ]
    if "lag" in results:
        r = results["lag"]
        lines += [
            "## 3. Detection lag without throttling",
            "",
            measured(results["lag"]),
            "",
            f"{sizes.lag_arns} ARNs, interval T = {r['interval']:g} s, no rate limit.",
            "",
            "| contender | lag p50 s | lag p99 s | unseen |",
            "| --- | ---: | ---: | ---: |",
        ]
        for k in ("ibwatch", "naive fixed-sleep loop"):
            lines.append(
                f"| {k} | {r[k]['lag_p50']:.2f} | {r[k]['lag_p99']:.2f} | {r[k]['unseen']:.0f} |"
            )
        lines += [
            "",
            f"Goals: p50 ≈ T/2 = {r['interval'] / 2:g} s, p99 ≤ 1.05 T + 0.2 = "
            f"{1.05 * r['interval'] + 0.2:g} s.",
            "",
        ]
    if "scale" in results:
        r = results["scale"]
        lines += [
            "## 4. Scale",
            "",
            measured(results["scale"]),
            "",
            f"{r['arns']} ARNs at a 60 s interval for {r['seconds']:g} s.",
            "",
            "| peak RSS MiB | RSS per ARN KiB | CPU % of one core |",
            "| ---: | ---: | ---: |",
            f"| {r['peak_rss_mib']:.1f} | {r['rss_per_arn_kib']:.2f} | {r['cpu_percent']:.1f} |",
            "",
            "RSS per ARN = (peak with all ARNs - peak with 10) ÷ the difference in ARNs. "
            "Goals: ≤ 4 KiB per ARN, ≤ 25% CPU.",
            "",
        ]
    if "ci" in results:
        r = results["ci"]
        baseline = r.get("baseline", CI_AWSCLI)
        lines += [
            "## 5. CI step latency",
            "",
            measured(results["ci"]),
            "",
            "An already-AVAILABLE image, start to exit, each command a new process against "
            f"the same simulator; medians of {r.get('runs', sizes.ci_runs)} runs, the order "
            "rotating from run to run, after one unmeasured round. The bare aiobotocore "
            "call (`bench/contenders/one_get_image.py`) is the floor: the client ibwatch "
            "uses, and nothing else.",
            "",
            "| command | seconds |",
            "| --- | ---: |",
        ]
        lines += [f"| {k} | {v:.3f} |" for k, v in r["seconds"].items()]
        lines += [""]
        if baseline == CI_AWSCLI:
            lines += [
                f"Ratio ibwatch / AWS CLI: **{r['ratio']:.2f}** (goal ≤ 1.10); the floor, "
                f"bare aiobotocore / AWS CLI: {r['bare_to_awscli']:.2f}; "
                f"ibwatch / bare aiobotocore: {r['ratio_to_bare']:.2f}. "
                f"AWS CLI: `{r.get('awscli')}`.",
                "",
            ]
        else:
            lines += [
                "No AWS CLI could be had on this machine: the baseline is the bare "
                f"aiobotocore call. Ratio ibwatch / bare aiobotocore: **{r['ratio']:.2f}** "
                "(goal ≤ 1.10 against the AWS CLI, which the bare call matches within a "
                "few percent).",
                "",
            ]
    if "discovery" in results:
        lines += _render_discovery(results["discovery"], measured(results["discovery"]))
    if "push" in results:
        lines += _render_push(results["push"], measured(results["push"]))
    if "postgres" in results:
        lines += postgres_state.render(results["postgres"], measured(results["postgres"]))
    return "\n".join(lines)


def _held(figures: dict[str, Any]) -> str:
    held, runs = figures["held"], figures["runs"]
    return "held in every run" if held == runs else f"NOT held: held in {held} of {runs} runs"


def _render_discovery(r: dict[str, Any], when: str) -> list[str]:
    interval, speedup = r["interval"], r["speedup"]
    baseline = "hand-written list loop"
    lines = [
        "## 6. Discovery: pipelines as sources of builds",
        "",
        when,
        "",
        f"The daemon's defaults played {speedup:g} times faster: discovery every "
        f"{interval:g} s (60 s by default), poll intervals and `max_tps` scaled alike "
        f"(max_tps {DEFAULT_MAX_TPS * speedup:g}), simulator time_scale {speedup:g}, so a "
        "pass takes the share of the interval and of the request budget it takes in "
        "production. ibwatch is `Discovery` and the engine as `ibwatch run` wires them "
        "(`daemon.open_service`). The baseline is what users write today: every interval, "
        "list every pipeline's images (every page), GetImage each build not seen before. "
        "Calls are the simulator's counts.",
        "",
        f"### Idle pipelines: {r['pipelines']} pipelines that ran before, none runs; "
        f"{r['passes']} passes",
        "",
        "Calls per pipeline-hour: the calls of the passes after the first, per pipeline and "
        "pass, times 60 (passes per hour at the default 60 s interval). Pass spacing: start "
        "to start, after the first pass. The contenders run "
        "side by side, each against its own simulator. The deeper history is measured in "
        "one run only: its counts are exact.",
        "",
        "| builds of history | contender | calls per pipeline-hour | after the first pass, "
        "calls by operation | first pass, calls per pipeline | first pass s | pass spacing s "
        "| CPU ms per pipeline-pass | runs |",
        "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for history, figures in r["idle"].items():
        for label in DISCOVERY_CONTENDERS:
            f = figures[label]
            later = ", ".join(f"{op} {n:g}" for op, n in f["later"].items()) or "none"
            lines.append(
                f"| {history} | {label} | {f['per_pipeline_hour']:.1f} | {later} | "
                f"{f['first_pass_per_pipeline']:.2f} | {f['first_pass_seconds']:.2f} | "
                f"{f['spacing']:.2f} | {f['cpu_ms_per_pipeline_pass']:.2f} | {f['runs']} |"
            )
    lines.append("")
    for history, figures in r["idle"].items():
        first = ", ".join(f"{op} {n:g}" for op, n in figures["ibwatch"]["first"].items())
        lines.append(
            f"- {history} build(s) of history: calls ibwatch / baseline "
            f"**{figures['ratio']:.2f}**; ibwatch's first pass: {first}. Claim \"one "
            'GetImagePipeline per pipeline per interval, no list after the first pass": '
            f"**{'held' if figures['held'] else 'NOT held'}** in every run."
        )
    lag = r["lag"]
    lines += [
        "",
        f"### Detection lag: {r['lag_pipelines']} pipelines, each runs once in "
        f"{r['lag_seconds']:g} s",
        "",
        "Seconds from a run's start (the simulator's clock) to the contender's first "
        "event for its build (ibwatch: the first-sighting transition; baseline: the "
        "GetImage answer). Runs that started before a contender's first pass ended are "
        "left out (early); an unseen build counts as found at the end. One contender "
        "after the other: side by side, CPU contention on this machine delays passes. "
        "Peak calls: the simulator's requests in the busiest discovery interval of the run, "
        "per second, as a share of the max_tps ibwatch is given (the baseline has no "
        "limiter); longest pass: start to end, the "
        "first (listing) pass left out; CPU: the contender's CPU time over its run's wall "
        "time (one thread: 100% is a core).",
        "",
        *_lag_table([(label, lag[label]) for label in DISCOVERY_CONTENDERS]),
    ]
    ours, theirs = lag["ibwatch"], lag[baseline]
    lines += [
        "",
        f"Goal: every build found within the discovery interval plus one poll interval "
        f"(PENDING), {r['goal']:g} s: ibwatch **{_held(ours)}** (the baseline "
        f"{_held(theirs)}). At the "
        f"daemon's defaults every lag is {speedup:g} times longer: ibwatch p50 "
        f"{ours['lag_p50'] * speedup:.0f} s, p99 {ours['lag_p99'] * speedup:.0f} s against "
        f"a goal of {r['goal'] * speedup:.0f} s.",
        "",
    ]
    slow = r.get("lag_slow")
    if slow is not None:
        lines += _render_slow_lag(r, slow)
    return lines


def _lag_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = [
        "| contender | lag p50 s | lag p99 s | lag max s | worst run's max s | builds "
        "| early | unseen | peak calls, % of max_tps | longest pass s | CPU % | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, f in rows:
        # Figures measured before these columns existed show a dash there.
        rate = f"{f['peak_share'] * 100:.0f}" if "peak_share" in f else "-"
        longest = f"{f['longest_pass']:.2f}" if "longest_pass" in f else "-"
        cpu = f"{f['cpu_share'] * 100:.0f}" if "cpu_share" in f else "-"
        lines.append(
            f"| {label} | {f['lag_p50']:.2f} | {f['lag_p99']:.2f} | {f['lag_max']:.2f} | "
            f"{f['worst_max']:.2f} | {f['builds']:g} | {f['early']:g} | {f['unseen']:g} | "
            f"{rate} | {longest} | {cpu} | {f['runs']} |"
        )
    return lines


def _render_slow_lag(r: dict[str, Any], slow: dict[str, Any]) -> list[str]:
    fast, ours = r["lag"]["ibwatch"], slow["ibwatch"]
    speedup, interval = slow["speedup"], slow["interval"]
    return [
        f"### Detection lag played {speedup:g} times faster, not {r['speedup']:g}: ibwatch",
        "",
        f"The same runs over the same span of scenario time, so the same share of the "
        f"request budget: discovery every {interval:g} s, max_tps "
        f"{DEFAULT_MAX_TPS * speedup:g}, simulator time_scale {speedup:g}; each run lasts "
        f"{slow['seconds']:g} s, so ibwatch alone, in {ours['runs']} run(s), keeps the section "
        f"within its time. Goal {slow['goal']:g} s.",
        "",
        *_lag_table([(f"ibwatch at {r['speedup']:g}x", fast), (f"ibwatch at {speedup:g}x", ours)]),
        "",
        f"At {speedup:g}x ibwatch **{_held(ours)}** (at {r['speedup']:g}x: {_held(fast)}). "
        f"At the daemon's defaults: p50 {ours['lag_p50'] * speedup:.0f} s, p99 "
        f"{ours['lag_p99'] * speedup:.0f} s against a goal of {slow['goal'] * speedup:.0f} s.",
        "",
        "What each shows. ibwatch polls every build it found until the build ends "
        "(PENDING every 30 s, BUILDING every 60 s at the defaults) beside its one "
        "GetImagePipeline per pipeline per interval; the baseline makes no call about a "
        "build after its first GetImage. At the runs' busiest moment that asks "
        f"{_asked(fast)} of max_tps, at any speed-up (the scenario's arithmetic; the "
        "running-step look-ups, up to `progress_share` = 20% of the rate, come on top): "
        "where it is near or over 100%, discovery's calls wait their turn "
        "at the limiter behind the polls and passes run past the interval (longest "
        "pass). A new build's first poll does "
        "not wait behind them (it goes before the scheduled polls, in the schedule and at "
        "the limiter). "
        f"At {r['speedup']:g}x the contender needs a few ms of CPU per call on its one "
        f"thread (mostly aiobotocore's): {_cpu(fast)} of a core over the run, and it "
        f"serves {_share(fast)} of max_tps at the peak"
        + (
            ": less than it is asked, so passes run longer still, and the lag there is "
            "this machine's as much as ibwatch's. "
            if _falls_behind(fast)
            else ". "
        )
        + f"At {speedup:g}x it uses {_cpu(ours)} of a core and serves {_share(ours)} of "
        "max_tps at the peak: what is left is the daemon's own lag at its default "
        "request budget.",
        "",
    ]


def _falls_behind(figures: dict[str, Any]) -> bool:
    """Served clearly less than asked at the peak (the CPU, not the budget, held it)."""
    asked, served = figures.get("asked_share"), figures.get("peak_share")
    return asked is not None and served is not None and served < min(asked, 1.0) - 0.1


def _asked(figures: dict[str, Any]) -> str:
    return (
        f"{figures['asked_share'] * 100:.0f}%"
        if "asked_share" in figures
        else "an unmeasured share"
    )


def _cpu(figures: dict[str, Any]) -> str:
    return f"{figures['cpu_share'] * 100:.0f}%" if "cpu_share" in figures else "an unmeasured share"


def _share(figures: dict[str, Any]) -> str:
    return f"{figures['peak_share'] * 100:.0f}%" if "peak_share" in figures else "unmeasured"


def _render_push(r: dict[str, Any], when: str) -> list[str]:
    c = r["contenders"]
    lines = [
        "## 7. Push+poll against poll-only",
        "",
        when,
        "",
        f"{r['builds']} builds in progress (BUILDING), the simulator limited to R = "
        f"{r['rate']:g} req/s on GetImage and every contender's `max_tps` set to R; each "
        f"build turns AVAILABLE at a random moment between {r['warmup']:g} and "
        f"{r['warmup'] + r['window']:g} s (after every contender's first pass: "
        f"{r['builds']} first sightings take {r['builds'] / r['rate']:g} s at R; checked "
        f"run by run), and each run ends {r['tail']:g} s after the last change. Each "
        "contender is the daemon as `ibwatch run` wires it (`daemon.open_service`; "
        "`bench/contenders/ibwatch_push.py`), with the default poll intervals "
        f"(BUILDING {DEFAULT_INTERVALS['BUILDING']:g} s, jitter 10%), concurrency 16 and "
        "step look-ups off. Poll-only has no `[events]`; each push+poll contender reads "
        "a queue on a moto SQS server of its own (loopback, its own process) that the "
        "simulator sends an EventBridge-shaped event to at every change (SendMessageBatch, "
        "the events due together in one call); "
        f"{PUSH} keeps the default safety_interval "
        f"({r['default_safety']:g} s, so no safety poll falls within a run), "
        f"{PUSH_LOSSY} uses safety_interval = {r['safety']:g} s (longer than BUILDING's "
        "interval, which the engine would keep otherwise) so the run stays short, "
        "with the simulator's `events.loss = 0.2`. The three run side by side, each "
        "against its own simulator with the same seed (the same changes at the same "
        "moments). The events of every build's start are sent and purged before the "
        "daemon starts, as if it had been running then.",
        "",
        "Lag: from the change on the simulator's clock to the contender's AVAILABLE "
        "event (an unseen build counts as seen at the end). GetImage calls per "
        "transition: the simulator's GetImage requests from the first change to the end "
        "(throttled ones included; the first pass before it is the same for all) ÷ "
        "transitions detected. Event polls: messages whose build was polled "
        '(`ibwatch_push_events_total{outcome="matched"}`); scheduled polls: the other '
        "calls. Send delay: from a change to SQS accepting its event, the window's "
        f"events; a run is invalid, and left out, when its p99 exceeds "
        f"{r['send_late_limit']:g} s or a contender's first pass had not ended before the "
        "first change.",
        "",
    ]
    if r["valid"] >= r["runs"]:
        lines += [f"Medians of {r['medians_of']} valid runs.", ""]
    else:
        lines += [
            f"**INVALID: only {r['valid']} of the {r['runs']} runs asked for passed the "
            f"harness's checks (see the runs tried below). The figures are medians of all "
            f"{r['medians_of']} runs tried, invalid ones included: push+poll's lags hold "
            "the late sends, and the verdicts below are of those runs.**",
            "",
        ]
    lines += [
        "| contender | lag p50 s | lag p99 s | lag max s | GetImage calls per transition "
        "| calls | of them event polls | of them scheduled polls | transitions detected "
        "| unseen | throttled | worst run's p99 s | send delay p99 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for label in PUSH_CONTENDERS:
        f = c[label]
        send = "n/a" if label == POLL_ONLY else f"{f['send_late_p99']:.3f}"
        lines.append(
            f"| {label} | {f['lag_p50']:.2f} | {f['lag_p99']:.2f} | {f['lag_max']:.2f} | "
            f"{f['calls_per_transition']:.2f} | {f['calls']:g} | {f['event_polls']:g} | "
            f"{f['scheduled_polls']:g} | {f['detected']:g} | {f['unseen']:g} | "
            f"{f['throttled']:g} | {f['worst_lag_p99']:.2f} | {send} |"
        )
    lines += [
        "",
        "Ratios against poll-only (medians): "
        + "; ".join(
            f"{label}: lag p50 **{c[label]['lag_p50_ratio']:.3f}**, p99 "
            f"**{c[label]['lag_p99_ratio']:.3f}**, calls per transition "
            f"**{c[label]['calls_per_transition_ratio']:.2f}**"
            for label in (PUSH, PUSH_LOSSY)
        )
        + ".",
        "",
        "Where push+poll's scheduled polls come from: once the queue has answered and "
        "an event from a build's region has arrived, the engine's next poll of it "
        "(`Engine._next_poll`) comes at the safety interval less up to 10% jitter, but "
        "only where that is longer than the status interval (a longer status interval "
        "stands, and so does an equal one); the region's first event "
        "(`Engine.events_from`) also moves every one of its builds whose next poll is due "
        "sooner to a moment drawn evenly within that next-poll time from the event's "
        "moment (never sooner than it was due). Polls already handed "
        "to the workers by then (up to concurrency in flight and as many buffered) still "
        f"run, so {PUSH}'s scheduled polls are those few. " + _lossy_schedule(r) + " Event "
        "polls and scheduled polls share the limiter; an event's poll is served before "
        "the scheduled ones waiting (`CubicLimiter.acquire(urgent=True)`, since commit 156e7a1).",
        "",
        "Goals (issue 12), run by run:",
        "",
    ]
    for goal, held in r["goals"].items():
        verdict = (
            "met in every run"
            if held["held"] == held["runs"]
            else f"NOT met: met in {held['held']} of {held['runs']} runs"
        )
        lines.append(f"- {goal}: **{verdict}**.")
    if r["valid"] < r["runs"]:
        lines.append(
            f"- **NOT enough valid runs: {r['valid']} of the {r['runs']} asked for; "
            "the verdicts above are of invalid runs.**"
        )
    lines += ["", "Runs tried:", ""]
    lines += _push_tries(r)
    lines += [
        "",
        "Caveats: a noisy 2-core machine runs the three daemons, their three simulators "
        "(one process, this one) and two moto servers at once, so lags hold some CPU "
        "contention, and moto's server is a local stand-in whose latency is not SQS's (a "
        "real queue adds tens of milliseconds per receive and delete). EventBridge's own "
        "delivery delay (typically well under a second, documented as best effort) is "
        "not simulated: the simulator sends each event the moment the change happens. "
        "Calls per transition depend on how many builds change per second against how "
        f"many are watched: here {r['builds']} changes in {r['window']:g} s; with fewer "
        "changes, poll-only's calls per transition grow and so does the safety net's "
        f"share of push+poll's ({r['builds']} builds ÷ {r['default_safety']:g} s = "
        f"{r['builds'] / r['default_safety']:.1f} safety polls a second at the default).",
        "",
    ]
    return lines


def _lossy_schedule(r: dict[str, Any]) -> str:
    building, safety, builds = DEFAULT_INTERVALS["BUILDING"], r["safety"], r["builds"]
    if safety > building:
        low, high = 0.9 * safety, safety
        what = f"its safety polls, every {low:g} to {high:g} s"
    else:
        low, high = 0.9 * building, 1.1 * building
        what = (
            f"its status-interval polls: its safety_interval ({safety:g} s) is not longer "
            f"than BUILDING's ({building:g} s), so polls stay every {low:g} to {high:g} s"
        )
    return (
        f"{PUSH_LOSSY}'s are {what}; its first event spreads the next polls of nearly all "
        f"{builds} builds over the following {high:g} s, about {builds / high:.1f} polls "
        f"a second besides the events' (the window's events come at "
        f"{0.8 * builds / r['window']:.1f} a second), against R = {r['rate']:g}."
    )


def _push_tries(r: dict[str, Any]) -> list[str]:
    lines = [
        "| seed | seconds | events' send delay p99 s (worst contender) "
        "| first pass over before the first change by s (least) | valid |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for t in r["tried"]:
        verdict = "yes" if not t["invalid"] else "no: " + "; ".join(t["invalid"])
        lines.append(
            f"| {t['seed']} | {t['seconds']:.0f} | {t['send_late_p99']:.3f} | "
            f"{t['first_pass_margin']:.1f} | {verdict} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: under a minute")
    parser.add_argument(
        "--only",
        choices=sorted(BENCHMARKS),
        action="append",
        help="run only these benchmarks (repeatable)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite RESULTS.md from bench/results.json",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    chosen = args.only or list(BENCHMARKS)
    results: dict[str, Any] = {}

    async def run_all() -> None:
        for name in chosen:
            started = time.monotonic()
            results[name] = await BENCHMARKS[name](sizes)
            results[name]["measured"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            results[name]["machine"] = machine()
            print(f"{name}: done in {time.monotonic() - started:.0f}s", file=sys.stderr)

    previous = json.loads(STORE.read_text()) if STORE.exists() else {}
    if args.render_only:
        args.quick, chosen = previous.get("quick", args.quick), []
        sizes = QUICK if args.quick else FULL
    if previous.get("quick") == args.quick:
        results.update({k: v for k, v in previous.get("results", {}).items() if k not in chosen})
    if chosen:
        anyio.run(run_all)
    report = render(results, sizes, args.quick)
    print(report)
    if not args.no_write:
        RESULTS.write_text(report + "\n")
        STORE.write_text(json.dumps({"quick": args.quick, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
