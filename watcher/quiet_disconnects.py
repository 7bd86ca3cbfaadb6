"""A client that hangs up mid-request is not a server error. aiohttp logs one as
"Error handling request" with a traceback on stderr; for our servers (the
simulator, the health and metrics endpoint) it happens whenever a client is
stopped mid-call, e.g. the demo interrupted with Ctrl-C, and a traceback there
reads as a crash. This filter drops exactly those records; every other server
error is still logged."""

from __future__ import annotations

import logging

_SERVER_LOGGER = "aiohttp.server"


class _ClientWentAway(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ConnectionError)


_FILTER = _ClientWentAway()


def quiet_client_disconnects() -> None:
    """Install the filter on aiohttp's server logger (once, however often called)."""
    logger = logging.getLogger(_SERVER_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
