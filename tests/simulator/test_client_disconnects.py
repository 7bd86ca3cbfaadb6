"""A client that hangs up mid-request is not a server error: aiohttp's "Error
handling request" record for it is dropped (the demo interrupted with Ctrl-C
printed its traceback now and then), while every other server error still shows.
The simulator and the health server install the filter when they start."""

from __future__ import annotations

import logging

import pytest

from tests.support import scenario
from watcher.quiet_disconnects import quiet_client_disconnects
from watcher.simulator import Simulator
from watcher.testing import FakeClock


def log_error_handling_request(error: Exception) -> None:
    """What aiohttp's request handler does with an exception that escapes a handler."""
    try:
        raise error
    except Exception:
        logging.getLogger("aiohttp.server").exception("Error handling request")


async def test_a_client_hanging_up_is_not_logged_and_other_errors_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Simulator(scenario(), clock=FakeClock()):
        pass  # starting it installs the filter
    assert len(logging.getLogger("aiohttp.server").filters) == 1
    quiet_client_disconnects()  # as the health server does: installed once only
    assert len(logging.getLogger("aiohttp.server").filters) == 1

    log_error_handling_request(ConnectionResetError("Connection lost"))
    log_error_handling_request(KeyError("a real bug"))

    [kept] = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert kept.exc_info is not None
    assert isinstance(kept.exc_info[1], KeyError)
