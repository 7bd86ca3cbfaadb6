"""The watcher's configuration: one TOML file, overridable per key from `IBWATCH_*`
environment variables, validated whole when loaded.

A mistake is reported at start with the file, the field path as written in TOML
(`watch.intervals.BUILDNG`), where the value came from and what was expected, all
problems at once. This package never reads a secret from the file, never logs,
never does I/O beyond reading that file and the secrets it names, and imports
nothing from `watcher.sinks`: turning a validated sink entry into a sink is
`watcher.wiring`'s job.

One module per concern: `aws`, `watch`, `state`, `sinks`, `service` (delivery,
server, shutdown), `diagnostics`, `events`, `ha` are the sections; `document` is the
whole; `environment` the `IBWATCH_*` overrides; `loading` reads and validates a file.
"""

from watcher.config._base import ENV_PREFIX, STATUSES, ConfigError
from watcher.config.aws import AwsConfig
from watcher.config.diagnostics import DiagnosticsConfig
from watcher.config.document import Config
from watcher.config.environment import ENV_OVERRIDES
from watcher.config.events import EventsConfig
from watcher.config.ha import HaConfig
from watcher.config.loading import from_mapping, load
from watcher.config.service import DeliveryConfig, ServerConfig, ShutdownConfig
from watcher.config.sinks import (
    DiscordSinkConfig,
    GChatSinkConfig,
    LogSinkConfig,
    SinkConfig,
    SlackSinkConfig,
    TeamsSinkConfig,
    WebhookSinkConfig,
)
from watcher.config.state import StateConfig
from watcher.config.watch import DEFAULT_INTERVALS, RetryConfig, WatchConfig

__all__ = [
    "DEFAULT_INTERVALS",
    "ENV_OVERRIDES",
    "ENV_PREFIX",
    "STATUSES",
    "AwsConfig",
    "Config",
    "ConfigError",
    "DeliveryConfig",
    "DiagnosticsConfig",
    "DiscordSinkConfig",
    "EventsConfig",
    "GChatSinkConfig",
    "HaConfig",
    "LogSinkConfig",
    "RetryConfig",
    "ServerConfig",
    "ShutdownConfig",
    "SinkConfig",
    "SlackSinkConfig",
    "StateConfig",
    "TeamsSinkConfig",
    "WatchConfig",
    "WebhookSinkConfig",
    "from_mapping",
    "load",
]
