"""The aiohttp application that speaks Image Builder's wire protocol, and CloudWatch
Logs' for a build's log.

Every simulated Image Builder operation is routed at the method and path the model
gives it, behind a SigV4 presence check and the fault plan; its handler (in
`handlers_images`, `handlers_pipelines` and `handlers_workflows`) answers from the
world at the current scenario time. A POST to / naming its operation in
X-Amz-Target goes to `logs_service` (GetLogEvents). Knows nothing of any client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from watcher.simulator import (
    handlers_images,
    handlers_pipelines,
    handlers_workflows,
    logs_service,
    model,
)
from watcher.simulator.faults import Decision
from watcher.simulator.scenario import OPERATIONS
from watcher.simulator.signature import access_key_id, signature_problem
from watcher.simulator.wire import ApiError, error_response
from watcher.simulator.world import Handler, World

HANDLERS: dict[str, Handler] = (
    handlers_images.HANDLERS | handlers_pipelines.HANDLERS | handlers_workflows.HANDLERS
)
assert set(HANDLERS) == set(OPERATIONS), "every simulated operation has one handler"


def create_app(world: World) -> web.Application:
    app = web.Application()
    for name in OPERATIONS:
        http = model.operation(name).http
        app.router.add_route(http["method"], http["requestUri"], _operation(name, world))
    # CloudWatch Logs (json 1.1) posts every operation to / and names it in
    # X-Amz-Target; no Image Builder operation uses that path.
    serve_logs = logs_service.handler(world)

    async def post_root(request: web.Request) -> web.StreamResponse:
        if logs_service.TARGET_HEADER not in request.headers:
            return await _unknown_operation(request)
        return await serve_logs(request)

    app.router.add_route("POST", "/", post_root)
    app.router.add_route("*", "/{tail:.*}", _unknown_operation)
    return app


def _operation(name: str, world: World) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    handler = HANDLERS[name]

    async def serve(request: web.Request) -> web.StreamResponse:
        world.counters.requests[name] += 1
        key = access_key_id(request)
        if key is not None:
            world.counters.access_keys[key, name] += 1
        decision = world.plan.decide(name, world.scenario_time())
        refused = _signature_problem(request, decision.request_id)
        if refused is not None:
            world.counters.responses[name, refused.headers["x-amzn-ErrorType"]] += 1
            return refused
        if decision.latency > 0:
            await world.clock.sleep(decision.latency)
        if decision.kind == "dropped":
            world.counters.injected[name, "dropped"] += 1
            world.counters.responses[name, "dropped"] += 1
            return _drop(request)
        if decision.kind == "error":
            assert decision.error_code is not None
            world.counters.injected[
                name, "rate_limit" if decision.throttled else decision.error_code
            ] += 1
            world.counters.responses[name, decision.error_code] += 1
            message = (
                "Rate exceeded" if decision.throttled else "Injected by the simulator's fault plan"
            )
            return error_response(
                decision.error_code, message, decision.request_id, status=decision.status
            )
        try:
            response = await handler(request, world, decision)
        except ApiError as exc:
            response = error_response(exc.code, exc.message, decision.request_id, exc.status)
        if decision.kind == "malformed":
            world.counters.injected[name, "malformed"] += 1
            world.counters.responses[name, "malformed"] += 1
            return _malform(response, decision)
        outcome = response.headers.get("x-amzn-ErrorType", "ok")
        world.counters.responses[name, outcome] += 1
        return response

    return serve


async def _unknown_operation(request: web.Request) -> web.Response:
    return error_response(
        "UnknownOperationException",
        f"The simulator serves {', '.join(OPERATIONS)} and CloudWatch Logs "
        f"{', '.join(logs_service.OPERATIONS)} only.",
        "00000000-0000-4000-8000-000000000000",
        status=404,
    )


def _signature_problem(request: web.Request, request_id: str) -> web.Response | None:
    problem = signature_problem(request, model.SERVICE)
    if problem is None:
        return None
    return error_response(problem.code, problem.message, request_id, status=problem.status)


def _drop(request: web.Request) -> web.Response:
    # Abort the TCP connection without a byte of response, as a failing load
    # balancer does; aiohttp then has nowhere to write the empty response below.
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)


def _malform(response: web.Response, decision: Decision) -> web.Response:
    body = bytes(response.body) if isinstance(response.body, bytes) else b""
    if decision.truncate:
        damaged = body[: max(1, len(body) // 2)]
        content_type = "application/json"
    else:
        damaged = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        content_type = "text/html"
    return web.Response(
        status=response.status,
        body=damaged,
        content_type=content_type,
        headers={"x-amzn-RequestId": decision.request_id},
    )
