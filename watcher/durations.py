"""Durations as people write them in TOML: `90`, `1.5`, `"90s"`, `"5m"`, `"1h30m"`,
`"250ms"`. Parsing only; never reads the clock.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_BARE = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> float:
    """Seconds in `value`; raises ValueError saying what a duration looks like."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30, '90s', '5m' or '1h30m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.startswith("-"):
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        if _BARE.fullmatch(text):
            return float(text)  # seconds, as a bare number in TOML means
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"expected a duration such as 30, '90s', '5m', '1h30m' or '250ms', got {value!r}"
            )
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError(f"expected a duration such as 30, '90s', '5m' or '1h30m', got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts numbers (seconds) and strings like '5m'."""
