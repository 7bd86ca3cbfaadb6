"""Logging set-up: structlog lines, JSON when the stream is not a terminal (a
container, a CI log), readable coloured console lines when it is."""

from __future__ import annotations

import logging
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]


def configure(stream: TextIO, *, log_format: LogFormat = "auto", level: str = "info") -> None:
    """Send every structlog line to `stream` in the chosen format."""
    console = log_format == "console" or (log_format == "auto" and stream.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty(), sort_keys=False, pad_event_to=0)
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
