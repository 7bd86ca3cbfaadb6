"""Full jitter: one formula, one injected rng, for Image Builder retries and deliveries."""

from __future__ import annotations

import random

import pytest

from watcher.backoff import full_jitter
from watcher.delivery import DeliveryPolicy
from watcher.sinks.base import DeliveryError


def test_each_wait_is_within_the_doubling_ceiling_and_the_cap() -> None:
    rng = random.Random(3)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        waits = [full_jitter(retry, base=0.5, cap=3.0, rng=rng) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling / 2  # spread over the range, not stuck near zero


def test_a_retry_counted_in_thousands_does_not_overflow() -> None:
    """A delivery retried for weeks counts thousands of attempts; 2**n must not
    become a float overflow."""
    assert 0 <= full_jitter(5000, base=1.0, cap=300.0, rng=random.Random(1)) <= 300.0


def test_retries_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="counted from 1"):
        full_jitter(0, base=1.0, cap=3.0, rng=random.Random(1))


def test_delivery_backoff_draws_from_the_injected_rng() -> None:
    policy = DeliveryPolicy(base=2.0, cap=60.0)
    error = DeliveryError("503", retryable=True)

    waits = [policy.retry_in(n, error, random.Random(11)) for n in (1, 2, 3, 10)]

    assert waits == [
        full_jitter(n, base=2.0, cap=60.0, rng=random.Random(11)) for n in (1, 2, 3, 10)
    ]


def test_delivery_backoff_survives_thousands_of_attempts() -> None:
    error = DeliveryError("503", retryable=True)
    assert 0 <= DeliveryPolicy(cap=300.0).retry_in(5000, error, random.Random(1)) <= 300.0


def test_a_retry_after_overrides_the_jitter_up_to_its_cap() -> None:
    policy = DeliveryPolicy(retry_after_cap=100.0)
    assert (
        policy.retry_in(1, DeliveryError("429", retryable=True, retry_after=30.0), random.Random())
        == 30.0
    )
    assert (
        policy.retry_in(1, DeliveryError("429", retryable=True, retry_after=900.0), random.Random())
        == 100.0
    )
