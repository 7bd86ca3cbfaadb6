"""Logging set-up: structlog lines, JSON when the stream is not a terminal (a
container, a CI log), readable coloured console lines when it is, and plain
"ibwatch: warning: ..." lines for the one-shot commands, whose stderr a person reads
between progress lines.

Never logs a secret: callers pass none, and every line goes through `redact_values`
before it is rendered, as a second guard for what callers cannot vouch for (an AWS
error message, a build's log line, a URL someone put in a config). It is the same
guard, `watcher.redaction`, as the one on the build log lines that events carry.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

from watcher.redaction import MARK, redact, secret_name

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
            redact_values,
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


def redact_values(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: every string of the line, however deep in its lists
    and dicts, redacted (`watcher.redaction.redact`), and the whole value of a key
    that names a secret (`password=...`) replaced. An exception's text is judged too.
    Values with nothing to hide are passed on as they are, so rendering is unchanged."""
    for key, value in event_dict.items():
        event_dict[key] = _redacted(value, secret_key=isinstance(key, str) and secret_name(key))
    return event_dict


def _redacted(value: Any, *, secret_key: bool = False) -> Any:
    if isinstance(value, str):
        if secret_key and value:
            return MARK
        cleaned = redact(value)
        return value if cleaned == value else cleaned
    if isinstance(value, dict):
        return {
            k: _redacted(v, secret_key=isinstance(k, str) and secret_name(k))
            for k, v in value.items()
        }
    if type(value) in (list, tuple, set, frozenset):  # exactly: a named tuple takes no iterable
        return type(value)(_redacted(v) for v in value)
    if isinstance(value, BaseException):
        text = str(value)
        cleaned = redact(text)
        return value if cleaned == text else f"{type(value).__name__}: {cleaned}"
    return value
