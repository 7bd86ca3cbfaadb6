"""Sinks built from their validated config, each wrapped in what its platform needs
(a pace it can bear) and paired with the filter of events it wants."""

from __future__ import annotations

from collections.abc import Sequence

from watcher.clock import Clock
from watcher.config import (
    DiscordSinkConfig,
    GChatSinkConfig,
    LogSinkConfig,
    SinkConfig,
    SlackSinkConfig,
    TeamsSinkConfig,
    WebhookSinkConfig,
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


def build_sink(config: SinkConfig, *, poster: HttpPoster, clock: Clock) -> Sink:
    """The sink itself, without pacing."""
    if isinstance(config, LogSinkConfig):
        return LogSink()
    if isinstance(config, WebhookSinkConfig):
        return WebhookSink(
            url=config.url,
            poster=poster,
            clock=clock,
            secret=config.secret,
            headers=config.headers,
            timeout_s=config.timeout,
        )
    chat = {
        SlackSinkConfig: SlackSink,
        TeamsSinkConfig: TeamsSink,
        DiscordSinkConfig: DiscordSink,
        GChatSinkConfig: GChatSink,
    }
    for kind, sink_class in chat.items():
        if isinstance(config, kind):
            return sink_class(
                url=config.url, poster=poster, template=config.template, timeout_s=config.timeout
            )
    raise TypeError(f"no sink for config type {type(config).__name__}")


def build_routes(configs: Sequence[SinkConfig], *, poster: HttpPoster, clock: Clock) -> list[Route]:
    routes = []
    for config in configs:
        sink = build_sink(config, poster=poster, clock=clock)
        rate = getattr(config, "rate_limit", None) or DEFAULT_RATE.get(config.type)
        if rate is not None:
            sink = RateLimitedSink(sink, rate, clock)
        routes.append(Route(name=config.name, sink=sink, wants=config.matches))
    return routes
