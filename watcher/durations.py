"""Durations as people write them in TOML: `90`, `1.5`, `"90s"`, `"5m"`, `"1h30m"`,
`"250ms"`. Parsing only; never reads the clock.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

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


if TYPE_CHECKING:
    from pydantic import BeforeValidator

    Duration = Annotated[float, BeforeValidator(parse_duration)]
    """A pydantic field type: accepts numbers (seconds) and strings like '5m'."""
else:

    def __getattr__(name: str) -> object:
        # `Duration` is made on first use, by the config and scenario models: the
        # CLI parses its options with `parse_duration` and must not pay for
        # importing pydantic.
        if name != "Duration":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from pydantic import BeforeValidator

        duration = Annotated[float, BeforeValidator(parse_duration)]
        globals()["Duration"] = duration
        return duration
