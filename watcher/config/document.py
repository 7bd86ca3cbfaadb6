"""The whole configuration: every section, validated together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from watcher.config._base import Strict, problems_error
from watcher.config.aws import AwsConfig
from watcher.config.diagnostics import DiagnosticsConfig
from watcher.config.events import EventsConfig
from watcher.config.ha import HaConfig
from watcher.config.service import DeliveryConfig, ServerConfig, ShutdownConfig
from watcher.config.sinks import AnySink, LogSinkConfig, SinkConfig
from watcher.config.state import MIN_KEEP_EVENTS, StateConfig
from watcher.config.watch import WatchConfig


class Config(Strict):
    """The validated configuration: `load()` builds it; nothing changes it afterwards."""

    aws: AwsConfig = Field(default_factory=AwsConfig)
    watch: WatchConfig
    state: StateConfig = Field(default_factory=StateConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    ha: HaConfig = Field(default_factory=HaConfig)
    """Used only with a PostgreSQL `[state]`, whose replicas elect a leader."""
    sinks: tuple[SinkConfig, ...] = (LogSinkConfig(),)

    @model_validator(mode="before")
    @classmethod
    def _sections_exist(cls, data: Any) -> Any:
        # An absent section is validated as an empty one, so that a missing required
        # key is named (`watch.arns`) and relative paths meet the validation context.
        if isinstance(data, Mapping):
            return {"aws": {}, "watch": {}, "state": {}, **data}
        return data

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, sinks: tuple[AnySink, ...]) -> tuple[AnySink, ...]:
        first: dict[str, int] = {}
        repeated = []
        for index, sink in enumerate(sinks):
            if sink.name in first:
                repeated.append(
                    (
                        (index, "name"),
                        f"{sink.name!r} is already the name of sinks[{first[sink.name]}]; "
                        "give each sink its own name",
                        sink.name,
                    )
                )
            first.setdefault(sink.name, index)
        if repeated:
            raise problems_error("Config", repeated)
        return sinks

    @model_validator(mode="after")
    def _history_outlasts_what_is_still_followed(self) -> Config:
        # Pruned history is gone for good: a FAILED build still being re-checked, or
        # a build discovery can still meet (one that ended while the daemon was
        # down), must not be older than what the state file keeps.
        floor = max(MIN_KEEP_EVENTS, self.watch.failed_recheck_window)
        if self.state.keep_events < floor:
            raise problems_error(
                "Config",
                [
                    (
                        ("state", "keep_events"),
                        f"must be at least {floor:g}s (1 day, and no less than "
                        f"watch.failed_recheck_window), got {self.state.keep_events:g}s",
                        self.state.keep_events,
                    )
                ],
            )
        return self

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain JSON data, safe to log or print: URLs
        show their host at most, signing secrets are masked."""
        data = self.model_dump(mode="json")
        data["sinks"] = [sink.redacted() for sink in self.sinks]
        return data
