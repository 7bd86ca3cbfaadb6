"""What every contender shares: reading its job, the ARNs, and reporting a result
as one JSON document on stdout. A contender is a separate process so that its CPU
time and memory are its own."""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    endpoint_url: str
    arns: list[str]
    interval: float = 5.0
    concurrency: int = 16
    max_tps: float = 50.0
    calls: int | None = None
    """Stop after this many successful calls (overhead benchmark)."""
    duration: float | None = None
    """Stop after this many seconds (lag, throttle and scale benchmarks)."""
    passes: int | None = None
    """Stop once this many discovery passes are done (discovery benchmark)."""
    intervals: dict[str, float] | None = None
    """Poll intervals by status, as `[watch.intervals]` (discovery benchmark)."""
    queue_url: str | None = None
    """`[events] queue_url`: push+poll; None: poll only (push benchmark)."""
    sqs_endpoint: str | None = None
    """Where that queue is served (AWS_ENDPOINT_URL_SQS), a local SQS (push benchmark)."""
    safety_interval: float | None = None
    """`[events] safety_interval`; None: the daemon's default (push benchmark)."""

    @classmethod
    def from_argv(cls) -> Job:
        with open(sys.argv[1]) as handle:
            return cls(**json.load(handle))


@dataclass
class Result:
    ok: int = 0
    errors: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    observed: dict[str, float] = field(default_factory=dict)
    """arn -> time.monotonic() when AVAILABLE was first seen (a system-wide clock)."""
    steady_from: tuple[float, int] | None = None
    """(CPU seconds, successes) when every ARN had been polled once."""
    steady_cpu_per_call: float | None = None

    def finish_steady(self, cpu_now: float) -> None:
        if self.steady_from is not None and self.ok > self.steady_from[1]:
            cpu, ok = self.steady_from
            self.steady_cpu_per_call = (cpu_now - cpu) / (self.ok - ok)

    def report(self, **extra: Any) -> None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fields = {k: v for k, v in self.__dict__.items() if k != "steady_from"}
        json.dump({**fields, "peak_rss_kib": peak_kib, **extra}, sys.stdout)
        sys.stdout.write("\n")


class Stopwatch:
    """CPU and wall time of the polling itself, not of start-up."""

    def __enter__(self) -> Stopwatch:
        self._cpu, self._wall = time.process_time(), time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.monotonic() - self._wall


def client_kwargs(job: Job) -> dict[str, Any]:
    from aiobotocore.config import AioConfig

    return {
        "region_name": "us-east-1",
        "endpoint_url": job.endpoint_url,
        "aws_access_key_id": "BENCH",
        "aws_secret_access_key": "bench-not-a-secret",
        "config": AioConfig(
            retries={"total_max_attempts": 1}, max_pool_connections=job.concurrency
        ),
    }
