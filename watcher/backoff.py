"""Full-jitter exponential backoff: the one formula for every wait before a retry,
Image Builder calls (`retry.py`) and sink deliveries (`delivery.py`) alike.

The randomness comes from the caller's `random.Random`, never the global one, so a
seeded rng makes every wait reproducible.
"""

from __future__ import annotations

import random

# 2.0 ** 1024 overflows a float; any ceiling this large is far above every cap.
_MAX_EXPONENT = 1000


def full_jitter(retry: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number `retry` (1 = the first retry): uniform in
    [0, min(cap, base * 2**(retry - 1))], AWS's "full jitter"."""
    if retry < 1:
        raise ValueError(f"retries are counted from 1, got {retry}")
    ceiling = min(cap, base * 2.0 ** min(retry - 1, _MAX_EXPONENT))
    return rng.uniform(0, ceiling)
