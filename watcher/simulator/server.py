"""`Simulator`: the embeddable Image Builder endpoint.

`async with Simulator(scenario) as endpoint_url:` serves the scenario on
127.0.0.1 at a free port until the block ends. Everything a test or benchmark
needs to compare what a client saw with what the server did is readable here,
and the changes a caller can make over the API (start a pipeline, cancel a
build) can be made in-process too, through the same code. With `events_queue`,
it also pushes each status change to that SQS queue (`push`) while it serves.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType

import anyio
from aiohttp import web

from watcher.clock import Clock, SystemClock
from watcher.quiet_disconnects import quiet_client_disconnects
from watcher.simulator.account import Account
from watcher.simulator.app import create_app
from watcher.simulator.catalog import Catalog
from watcher.simulator.documents import Renderer
from watcher.simulator.faults import Counters, FaultPlan
from watcher.simulator.paging import Pager
from watcher.simulator.pipelines import NeverSettles, Pipelines
from watcher.simulator.push import EventStream, PushCounters, Pusher, check_queue_url
from watcher.simulator.scenario import Scenario, Step
from watcher.simulator.workflows import Workflows
from watcher.simulator.world import World

__all__ = ["NeverSettles", "Simulator"]


class Simulator:
    """A local EC2 Image Builder endpoint playing out a scenario.

    Scenario time starts when the server starts and runs `time_scale` times
    faster than `clock`. Pass a fake clock to make time, rate limits and latency
    fully deterministic.

    `events_queue`, an SQS queue URL: while serving, every status change is sent
    there as an EventBridge event, as its moment comes (`watcher.simulator.push`,
    the scenario's `[events]`); `push_counters` says what was sent. Start and stop
    it from one task (`async with` does): the pusher runs in a task group of that task.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        events_queue: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.clock: Clock = clock or SystemClock()
        self.counters = Counters()
        self.push_counters = PushCounters()
        self.account = Account(scenario)
        self.events_queue = None if events_queue is None else check_queue_url(events_queue)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._world: World | None = None
        self._tasks: AsyncExitStack | None = None
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
            account=self.account,
            renderer=Renderer(
                self.clock.now(), self.scenario.time_scale, Workflows(self.scenario.seed)
            ),
            pager=Pager(self.scenario.seed, self.scenario.faults.short_pages),
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
        quiet_client_disconnects()
        runner = web.AppRunner(create_app(self._world), access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        shown = f"[{host}]" if ":" in host else host
        self.endpoint_url = f"http://{shown}:{port}"
        if self.events_queue is not None:
            try:
                await self._start_pusher(self.events_queue, self._world)
            except BaseException:
                await self.stop()
                raise

    async def _start_pusher(self, queue_url: str, world: World) -> None:
        pusher = Pusher(
            queue_url,
            world,
            EventStream(self.scenario.events, self.scenario.seed, self.push_counters),
            self.push_counters,
            wall=world.renderer.wall,
        )
        async with AsyncExitStack() as stack:
            # Closed in reverse: the loop is cancelled, then the pusher sends what is
            # due by then and closes its client.
            await stack.enter_async_context(pusher)
            group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)
            group.start_soon(pusher.run)
            self._tasks = stack.pop_all()

    async def stop(self) -> None:
        if self._tasks is not None:
            tasks, self._tasks = self._tasks, None
            await tasks.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def catalog(self) -> Catalog:
        """Every build that exists or is declared to come; scheduled runs appear here
        as scenario time reaches them."""
        return self.account.catalog

    @property
    def pipelines(self) -> Pipelines:
        return self.account.pipelines

    # -- time ------------------------------------------------------------

    def scenario_time(self) -> float:
        """Seconds of scenario time since the server started (0 before); scheduled
        runs due by then have started."""
        return self._now()

    def real_time(self, scenario_seconds: float) -> float:
        """The `clock.monotonic()` value at which scenario time reaches `scenario_seconds`."""
        world = self._require_world()
        return world.started + scenario_seconds / world.time_scale

    def entered_at(self, arn: str, status: str) -> float | None:
        """When (on `clock.monotonic()`) the build first showed `status`; None if it never
        does (or, for a scheduled run, has not started yet)."""
        build = self.catalog.get(arn)
        at = build.entered(status) if build else None
        return None if at is None else self.real_time(at)

    def settled_at(self) -> float:
        """When (on `clock.monotonic()`) every build reaches its last step: the builds
        known now and the runs their pipelines' schedules will still start (a schedule
        with `until` ends; auto-disable can end one earlier), assuming nobody starts
        or cancels a build from now on.

        Raises NeverSettles (a RuntimeError naming the pipeline) when a schedule
        without `until` keeps starting runs forever: a moment that never comes has
        no clock reading, and a caller waiting for it must be told, not hang.
        """
        self._now()
        return self.real_time(self.account.settles_by())

    # -- changes during a run --------------------------------------------

    def start_build(self, like: str, timeline: Sequence[Step] | None = None) -> str:
        """Start a new build of the same image version as build ARN `like`, now.

        It gets the next build number, the spec of `like`, and `timeline` (else
        the timeline of `like`). Returns the new build's ARN; once AVAILABLE, the
        version ARN resolves to it (if it is the newest AVAILABLE build).
        """
        return self.account.start_like(like, timeline, self._now()).arn

    def start_pipeline(self, pipeline_arn: str, client_token: str | None = None) -> str:
        """Start a run of the pipeline now, as StartImagePipelineExecution does (a
        USER_INITIATED build, enabled or disabled pipeline alike, idempotent on
        `client_token`). Returns the new build's ARN. Raises ApiError
        (`watcher.simulator.wire`) with the code the endpoint would answer with.
        """
        return self.account.start_pipeline(pipeline_arn, self._now(), client_token)

    def cancel_build(self, build_arn: str, *, takes: float = 0.0) -> None:
        """Cancel a build that is still being created, as CancelImageCreation does,
        but landing `takes` scenario seconds from now (default: at once, so a test
        places the moment itself; over the API it is the scenario's `cancel_takes`).
        Raises ApiError for an unknown build (ResourceNotFoundException) or one whose
        creation is over (ResourceInUseException)."""
        self.account.cancel(build_arn, self._now(), None, takes=takes)

    def _now(self) -> float:
        if self._world is None:
            self.account.advance(0.0)
            return 0.0
        return self._world.now()

    def _require_world(self) -> World:
        if self._world is None:
            raise RuntimeError("the simulator has not been started")
        return self._world
