"""`[ha]`: its default, its floor, and what it is for."""

from __future__ import annotations

import pytest

from watcher.config import ConfigError, HaConfig, from_mapping

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
SHARED = {"watch": {"arns": [ARN]}, "state": {"url": "postgresql://ibwatch@db.internal/ibwatch"}}


def test_failover_defaults_to_15s_with_a_heartbeat_every_fifth_of_it() -> None:
    ha = from_mapping(SHARED).ha
    assert (ha.failover, ha.heartbeat) == (15.0, 3.0)
    assert from_mapping({**SHARED, "ha": {"failover": "2s"}}).ha.heartbeat == pytest.approx(0.4)


def test_a_failover_under_a_second_or_a_misspelt_key_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as raised:
        from_mapping({**SHARED, "ha": {"failover": "500ms", "heartbeat": "1s"}})
    assert raised.value.problems == [
        "ha.failover: expected at least 1s: a shorter one mistakes a busy leader for a dead "
        "one, got 0.5s",
        "ha.heartbeat: unknown key; expected one of failover",
    ]


def test_ha_is_accepted_and_unused_beside_an_sqlite_file() -> None:
    """One config can serve both: with the SQLite file one daemon runs and leads."""
    config = from_mapping({"watch": {"arns": [ARN]}, "ha": {"failover": "30s"}})
    assert config.state.database_url is None
    assert config.ha == HaConfig(failover=30.0)


def test_an_unknown_ha_variable_is_refused_naming_every_section_that_takes_them() -> None:
    with pytest.raises(ConfigError) as raised:
        from_mapping(SHARED, env={"IBWATCH_HA_HEARTBEAT": "1s"})
    [problem] = raised.value.problems
    assert problem.startswith("IBWATCH_HA_HEARTBEAT (environment): not a setting")
    assert "of [aws], [watch], [state], [diagnostics], [events] and [ha] can come" in problem
