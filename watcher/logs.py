"""Logging set-up: structlog lines, JSON when the stream is not a terminal (a
container, a CI log), readable coloured console lines when it is, and plain
"ibwatch: warning: ..." lines for the one-shot commands, whose stderr a person reads
between progress lines. Never logs a secret: it renders only what callers pass.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console", "human"]

# Shown first, in this order, and not repeated in the parenthesis of other fields.
_LEADING = ("arn", "message")
_NOT_SHOWN = frozenset({"event", "level", "timestamp", *_LEADING})


def configure(stream: TextIO, *, log_format: LogFormat = "auto", level: str = "info") -> None:
    """Send every structlog line to `stream` in the chosen format."""
    console = log_format == "console" or (log_format == "auto" and stream.isatty())
    renderer: structlog.types.Processor
    if log_format == "human":
        renderer = human_line
    elif console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), sort_keys=False, pad_event_to=0
        )
    else:
        renderer = structlog.processors.JSONRenderer()
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


def human_line(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """`ibwatch: warning: image poll failed: web-base/1.4.0/7: <message> (code=..., ...)`.

    The one-shot commands' stderr is read by a person in a CI log, between the
    progress lines: a JSON document there is noise. No
    timestamp either: the progress lines carry the elapsed time."""
    level = event_dict.get("level", "info")
    text = str(event_dict.get("event", "")).replace(".", " ").replace("_", " ")
    line = f"ibwatch: {level}: {text}"
    arn = event_dict.get("arn")
    if arn:
        line += f": {str(arn).split(':image/', 1)[-1]}"
    message = event_dict.get("message")
    if message:
        line += f": {message}"
    rest = [f"{key}={value}" for key, value in event_dict.items() if key not in _NOT_SHOWN]
    if rest:
        line += f" ({', '.join(rest)})"
    return line
