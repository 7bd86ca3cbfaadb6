"""From validated configuration to running parts: each `[[sinks]]` entry becomes its
sink, wrapped in what its platform needs (a pace it can bear) and paired with the
filter of events it wants.

This is the one place that knows both `watcher.config` and `watcher.sinks`: the
configuration stays free of implementations, and a new sink type is its config
model (`watcher/config/sinks.py`) plus one entry in `_BUILDERS` here.

`load_config` is how the commands read a config file: the file's validation, then
every sink built once, so that what `check-config` approves, `run` and a reload
can start (a constructor's refusal becomes a config problem naming the sink).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from watcher.clock import Clock, SystemClock
from watcher.config import (
    Config,
    ConfigError,
    DiscordSinkConfig,
    GChatSinkConfig,
    LogSinkConfig,
    SinkConfig,
    SlackSinkConfig,
    TeamsSinkConfig,
    WebhookSinkConfig,
    load,
)
from watcher.delivery import RateLimitedSink, Route
from watcher.sinks.base import Sink
from watcher.sinks.discord import DiscordSink
from watcher.sinks.gchat import GChatSink
from watcher.sinks.http import HttpPoster
from watcher.sinks.log import LogSink
from watcher.sinks.slack import SlackSink
from watcher.sinks.teams import TeamsSink
from watcher.sinks.webhook import WebhookSink

# Messages per second each platform takes from one webhook before throttling it:
# Slack about 1/s per webhook; Google Chat 60/min per space; Discord 5 per 2 s per
# webhook; Teams Workflows webhooks are paced conservatively.
DEFAULT_RATE = {"slack": 1.0, "gchat": 1.0, "discord": 2.0, "teams": 1.0}


_Builder = Callable[[SinkConfig, HttpPoster, Clock], Sink]


def _log(config: SinkConfig, poster: HttpPoster, clock: Clock) -> Sink:
    return LogSink()


def _webhook(config: SinkConfig, poster: HttpPoster, clock: Clock) -> Sink:
    assert isinstance(config, WebhookSinkConfig)
    return WebhookSink(
        url=config.url,
        poster=poster,
        clock=clock,
        secret=config.secret,
        headers=config.headers,
        timeout_s=config.timeout,
    )


def _chat(sink_class: type[SlackSink | TeamsSink | DiscordSink | GChatSink]) -> _Builder:
    def build(config: SinkConfig, poster: HttpPoster, clock: Clock) -> Sink:
        assert not isinstance(config, LogSinkConfig | WebhookSinkConfig)
        return sink_class(
            url=config.url, poster=poster, template=config.template, timeout_s=config.timeout
        )

    return build


_BUILDERS: Mapping[type[SinkConfig], _Builder] = {
    LogSinkConfig: _log,
    WebhookSinkConfig: _webhook,
    SlackSinkConfig: _chat(SlackSink),
    TeamsSinkConfig: _chat(TeamsSink),
    DiscordSinkConfig: _chat(DiscordSink),
    GChatSinkConfig: _chat(GChatSink),
}
"""Each sink config model and how to build its sink."""


def build_sink(config: SinkConfig, *, poster: HttpPoster, clock: Clock) -> Sink:
    """The sink itself, without pacing."""
    builder = _BUILDERS.get(type(config))
    if builder is None:
        raise TypeError(f"no sink for config type {type(config).__name__}")
    return builder(config, poster, clock)


def build_routes(configs: Sequence[SinkConfig], *, poster: HttpPoster, clock: Clock) -> list[Route]:
    routes = []
    for config in configs:
        sink = build_sink(config, poster=poster, clock=clock)
        rate = getattr(config, "rate_limit", None) or DEFAULT_RATE.get(config.type)
        if rate is not None:
            sink = RateLimitedSink(sink, rate, clock)
        routes.append(Route(name=config.name, sink=sink, wants=config.matches))
    return routes


def check_sinks(config: Config, source: Path | str) -> None:
    """Build every sink once and drop it: ConfigError, naming each sink that its
    constructor refuses, all at once. Nothing is sent, no session is opened."""
    poster = HttpPoster()  # never entered: constructors only keep a reference
    problems = []
    for index, sink in enumerate(config.sinks):
        try:
            build_routes([sink], poster=poster, clock=SystemClock())
        except (ValueError, TypeError) as exc:
            problems.append(f"sinks[{index}] ({sink.name}): {exc}")
    if problems:
        raise ConfigError(source, problems)


def load_config(path: Path | str) -> Config:
    """`watcher.config.load`, then every sink built once (see the module docstring)."""
    config = load(path)
    check_sinks(config, path)
    return config
