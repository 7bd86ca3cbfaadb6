"""`[state]`: where the watcher keeps what it has seen and what it still has to deliver."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from watcher.config._base import PositiveDuration, Strict

MIN_KEEP_EVENTS = 86400.0
"""The shortest `keep_events`, a day: discovery takes a build that ended and was
created longer ago than `keep_events` as history, so a shorter one would silence
builds that merely ran long and ended while the daemon was down."""


class StateConfig(Strict):
    """Where the watcher keeps what it has seen and what it still has to deliver."""

    path: Path = Field(default=Path("ibwatch-state.db"), validate_default=True)
    """The sqlite database; relative to the config file's directory, made absolute."""
    keep_events: PositiveDuration = 30 * 86400.0
    """How long events and ended builds are remembered; older ones are pruned from
    the state file (an undelivered event, a dead letter's included, is kept whatever
    its age). At least a day and at least `watch.failed_recheck_window`."""

    @field_validator("path", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a file path such as 'ibwatch-state.db', got ''")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path, info: ValidationInfo) -> Path:
        value = value.expanduser()
        if value.is_absolute():
            return value
        context = info.context if isinstance(info.context, Mapping) else {}
        base = context.get("base_dir")
        return Path(base if base is not None else Path.cwd()) / value
