"""Durations as people write them in TOML."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1m 30s", 90.0),
        ("0s", 0.0),
    ],
)
def test_parses_the_documented_forms(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5 minutes", "5x", "1h-30m", True, None, [5]])
def test_refuses_anything_else_saying_what_a_duration_looks_like(text: object) -> None:
    with pytest.raises(ValueError, match=r"expected a duration such as 30, '90s', '5m'"):
        parse_duration(text)


@pytest.mark.parametrize("text", [-1, "-5m", -0.5])
def test_refuses_negative_durations(text: object) -> None:
    with pytest.raises(ValueError, match="a duration cannot be negative"):
        parse_duration(text)


@given(st.integers(0, 100), st.integers(0, 59), st.integers(0, 59))
def test_units_add_up(hours: int, minutes: int, seconds: int) -> None:
    assert parse_duration(f"{hours}h{minutes}m{seconds}s") == hours * 3600 + minutes * 60 + seconds


@pytest.mark.parametrize(("text", "seconds"), [("30", 30.0), ("1.5", 1.5), (" 0 ", 0.0)])
def test_a_bare_number_in_a_string_is_seconds(text: str, seconds: float) -> None:
    """As a bare number in TOML is, and as the error message itself suggests ("30")."""
    assert parse_duration(text) == seconds
