"""A real HTTP receiver on loopback whose answers a test scripts, recording what
arrived and when (on the test's clock)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web

from watcher.clock import Clock

HANG = "hang"


@dataclass
class Arrival:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    clock: Clock
    script: list[tuple[int, dict[str, str]] | str] = field(default_factory=list)
    """Answers in order: (status, headers), or HANG; then 200 forever."""
    arrivals: list[Arrival] = field(default_factory=list)
    url: str = ""
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _release: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(
            Arrival(self.clock.monotonic(), dict(request.headers), await request.read())
        )
        self._changed.set()
        self._changed = anyio.Event()
        answer = self.script.pop(0) if self.script else (200, {})
        if answer == HANG:
            await self._release.wait()
            return web.Response(status=200)
        status, headers = answer
        return web.Response(status=status, headers=headers, text="" if status < 300 else "nope")

    async def until(self, arrivals: int) -> None:
        with anyio.fail_after(30):
            while len(self.arrivals) < arrivals:
                await self._changed.wait()

    def release(self) -> None:
        self._release.set()


@asynccontextmanager
async def receiving(
    clock: Clock,
    *script: tuple[int, dict[str, str]] | str,
    path: str = "/hooks/SECRET-PATH-TOKEN",
    port: int = 0,
) -> AsyncIterator[Receiver]:
    receiver = Receiver(clock, list(script))
    app = web.Application()
    app.router.add_post(path, receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    try:
        yield receiver
    finally:
        receiver.release()
        await runner.cleanup()
