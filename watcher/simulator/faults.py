"""Fault injection for the simulated endpoint: request-rate limits and random
errors, latency, dropped connections, malformed bodies, and outages (one error for
every request during a window of scenario time).

Deterministic: every request draws the same fixed number of values from one
seeded generator, so the same seed and the same requests give the same answers.
Time comes from the injected clock. Decides only; never writes a response.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from watcher.clock import Clock
from watcher.simulator.scenario import COMMON_AUTH_ERRORS, Faults, Outage, RateLimit

THROTTLED = "CallRateLimitExceededException"

FaultKind = Literal["none", "error", "dropped", "malformed"]


class TokenBucket:
    """Allows `rate` requests per second on average, `burst` at once."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self.rate = limit.rate
        self.capacity = limit.burst if limit.burst is not None else max(1.0, limit.rate)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock.monotonic()

    def take(self) -> bool:
        now = self._clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class Decision:
    """What one request gets besides its honest answer."""

    request_id: str
    kind: FaultKind
    latency: float
    error_code: str | None = None
    throttled: bool = False
    truncate: bool = False
    """For a malformed body: cut JSON (True) or a non-JSON page (False)."""
    status: int | None = None
    """The HTTP status of an error the model does not list; None: the model's."""


@dataclass
class Counters:
    """What the simulator served and injected, readable in-process.

    `responses[(operation, outcome)]` where outcome is `ok`, an error code,
    `dropped` or `malformed`; `injected[(operation, kind)]` counts only what the
    fault plan caused (`rate_limit`, an error code, `dropped`, `malformed`), so
    natural errors such as a not-found ARN can be told apart.
    `access_keys[(access key id, operation)]` counts requests by the key that signed
    them (the SigV4 Credential's), refused ones included: which credentials a client
    used for what.
    """

    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[tuple[str, str]] = field(default_factory=Counter)
    injected: Counter[tuple[str, str]] = field(default_factory=Counter)
    access_keys: Counter[tuple[str, str]] = field(default_factory=Counter)

    def signed_with(self, access_key: str, operation: str | None = None) -> int:
        """Requests (to `operation`, or to any) signed with `access_key`."""
        return sum(
            n
            for (key, op), n in self.access_keys.items()
            if key == access_key and operation in (None, op)
        )

    def keys_used(self, operation: str | None = None) -> set[str]:
        """Every access key id that signed a request (to `operation`, or to any)."""
        return {key for (key, op), n in self.access_keys.items() if n and operation in (None, op)}

    def outcome(self, outcome: str, operation: str | None = None) -> int:
        return sum(
            n
            for (op, out), n in self.responses.items()
            if out == outcome and operation in (None, op)
        )

    def injected_total(self, kind: str | None = None) -> int:
        return sum(n for (_, k), n in self.injected.items() if kind in (None, k))


class FaultPlan:
    def __init__(self, faults: Faults, seed: int, clock: Clock) -> None:
        self._faults = faults
        self._random = random.Random(seed)
        self._buckets = {op: TokenBucket(limit, clock) for op, limit in faults.rate_limits.items()}
        # Cumulative chances, in a fixed order so a seed means the same thing every run.
        self._table: list[tuple[float, FaultKind, str | None]] = []
        edge = 0.0
        for kind, code, chance in (
            ("dropped", None, faults.dropped_connections),
            ("malformed", None, faults.malformed_bodies),
            *(("error", c, p) for c, p in sorted(faults.errors.items())),
        ):
            if chance > 0:
                edge += chance
                self._table.append((edge, kind, code))  # type: ignore[arg-type]

    def decide(self, operation: str, at: float = 0.0) -> Decision:
        """What the request to `operation` at scenario time `at` gets."""
        # Always four draws, whatever the outcome, to keep the sequence aligned.
        request_id = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        roll, jitter, style = self._random.random(), self._random.random(), self._random.random()
        latency = self._faults.latency.fixed + jitter * self._faults.latency.random
        # Before the rate limit: a refused request takes no token.
        outage = self.outage(operation, at)
        if outage is not None:
            status = COMMON_AUTH_ERRORS.get(outage.code)
            return Decision(request_id, "error", latency, outage.code, status=status)
        bucket = self._buckets.get(operation)
        if bucket is not None and not bucket.take():
            return Decision(request_id, "error", latency, THROTTLED, throttled=True)
        for edge, kind, code in self._table:
            if roll < edge:
                return Decision(request_id, kind, latency, code, truncate=style < 0.5)
        return Decision(request_id, "none", latency)

    def outage(self, operation: str, at: float) -> Outage | None:
        """The outage that answers every request to `operation` at scenario time `at`,
        if one does. Draws nothing from the generator: CloudWatch Logs' GetLogEvents
        asks this alone (`logs_service`), so reading logs leaves every Image Builder
        answer of a seed as it was."""
        for outage in self._faults.outages:
            if outage.start <= at < outage.end and operation in outage.operations:
                return outage
        return None
