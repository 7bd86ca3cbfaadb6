"""`Simulator`: the embeddable Image Builder endpoint.

`async with Simulator(scenario) as endpoint_url:` serves the scenario on
127.0.0.1 at a free port until the block ends. Everything a test or benchmark
needs to compare what a client saw with what the server did is readable here.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from types import TracebackType

from aiohttp import web

from watcher.clock import Clock, SystemClock
from watcher.simulator.app import World, create_app
from watcher.simulator.catalog import Build, Catalog
from watcher.simulator.faults import Counters, FaultPlan
from watcher.simulator.scenario import Image, Scenario, Step
from watcher.simulator.wire import Renderer


class Simulator:
    """A local EC2 Image Builder endpoint playing out a scenario.

    Scenario time starts when the server starts and runs `time_scale` times
    faster than `clock`. Pass a fake clock to make time, rate limits and latency
    fully deterministic.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.scenario = scenario
        self.clock: Clock = clock or SystemClock()
        self.counters = Counters()
        self.catalog = Catalog(scenario.images)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._world: World | None = None
        self.endpoint_url = ""

    async def __aenter__(self) -> str:
        await self.start()
        return self.endpoint_url

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._world = World(
            catalog=self.catalog,
            renderer=Renderer(self.clock.now(), self.scenario.time_scale),
            plan=FaultPlan(self.scenario.faults, self.scenario.seed, self.clock),
            counters=self.counters,
            clock=self.clock,
            started=self.clock.monotonic(),
            time_scale=self.scenario.time_scale,
        )
        # Binding the socket ourselves is how port 0 tells us which port it got.
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"cannot listen on {self._host}:{self._port}: {exc.strerror}"
            ) from None
        host, port = sock.getsockname()[:2]
        runner = web.AppRunner(create_app(self._world), access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        shown = f"[{host}]" if ":" in host else host
        self.endpoint_url = f"http://{shown}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- time ------------------------------------------------------------

    def scenario_time(self) -> float:
        """Seconds of scenario time since the server started (0 before)."""
        return self._require_world().scenario_time() if self._world else 0.0

    def real_time(self, scenario_seconds: float) -> float:
        """The `clock.monotonic()` value at which scenario time reaches `scenario_seconds`."""
        world = self._require_world()
        return world.started + scenario_seconds / world.time_scale

    def entered_at(self, arn: str, status: str) -> float | None:
        """When (on `clock.monotonic()`) the build first showed `status`; None if it never does."""
        build = self.catalog.get(arn)
        at = build.entered(status) if build else None
        return None if at is None else self.real_time(at)

    def settled_at(self) -> float:
        """When (on `clock.monotonic()`) every build known now reaches its last step."""
        return self.real_time(max((b.settled_by() for b in self.catalog), default=0.0))

    # -- changes during a run --------------------------------------------

    def start_build(self, like: str, timeline: Sequence[Step] | None = None) -> str:
        """Start a new build of the same image version as build ARN `like`, now.

        It gets the next build number, the spec of `like`, and `timeline` (else
        the timeline of `like`). Returns the new build's ARN; the version ARN
        resolves to it from now on.
        """
        template = self.catalog.get(like)
        if template is None:
            raise KeyError(f"no build {like} to start a new build like")
        number = self.catalog.next_build_number(template.version_arn)
        steps = timeline if timeline is not None else template.image.timeline
        # Validated again, so a timeline given here obeys the same rules as a file's.
        image = Image.model_validate(
            {
                **template.image.model_dump(),
                "arn": f"{template.version_arn}/{number}",
                "timeline": [step.model_dump(exclude_none=True) for step in steps],
            }
        )
        build: Build = self.catalog.add(image, self.scenario_time())
        return build.arn

    def _require_world(self) -> World:
        if self._world is None:
            raise RuntimeError("the simulator has not been started")
        return self._world
