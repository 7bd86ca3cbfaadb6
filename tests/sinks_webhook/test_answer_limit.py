"""A receiver's answer is read 64 KiB at most: a 2xx streaming hundreds of MB must
not grow the daemon by as much (it once raised it from 77 MB to 694 MB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from aiohttp import web

from watcher.sinks.base import DeliveryError
from watcher.sinks.http import MAX_ANSWER_BYTES, HttpPoster

CHUNK = b"x" * 65536
LIMIT = 300 * 1024 * 1024
"""The stream stops here at the latest, so a regression fails instead of running on."""


@asynccontextmanager
async def streaming(status: int) -> AsyncIterator[tuple[str, list[int]]]:
    sent = [0]

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=status)
        await response.prepare(request)
        try:
            while sent[0] < LIMIT:
                await response.write(CHUNK)
                sent[0] += len(CHUNK)
        except (ConnectionResetError, ConnectionError):
            pass  # the client hung up once it had read enough: the point
        return response

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", sent
    finally:
        await runner.cleanup()


async def test_a_2xx_streaming_an_endless_body_is_acknowledged_after_64_kib() -> None:
    async with streaming(200) as (url, sent), HttpPoster() as poster:
        with anyio.fail_after(20):
            assert await poster.post(url, b"{}") == 200
    assert sent[0] < LIMIT, "the poster hung up long before the stream's end"


async def test_an_error_streaming_an_endless_body_is_reported_from_its_first_bytes() -> None:
    async with streaming(500) as (url, _), HttpPoster() as poster:
        with anyio.fail_after(20), pytest.raises(DeliveryError) as caught:
            await poster.post(url, b"{}")
    assert str(caught.value).startswith("HTTP 500: xxx")
    assert caught.value.retryable
    assert MAX_ANSWER_BYTES == 64 * 1024
