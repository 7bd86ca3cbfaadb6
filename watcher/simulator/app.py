"""The aiohttp application that speaks Image Builder's wire protocol.

Routes: `GET /GetImage` and `POST /ListImageBuildVersions`, both behind a SigV4
presence check and the fault plan. Answers come from the catalog at the current
scenario time. Knows nothing of any client; it is an Image Builder endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from watcher.clock import Clock
from watcher.simulator import model
from watcher.simulator.catalog import Catalog
from watcher.simulator.faults import Counters, Decision, FaultPlan
from watcher.simulator.wire import Renderer, error_response, json_response

_GET_IMAGE_PARAM = "imageBuildVersionArn"
_LIST_FILTERS = {"name", "osVersion", "platform", "type"}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")


@dataclass
class World:
    """Everything a request handler reads: builds, time, faults, counters."""

    catalog: Catalog
    renderer: Renderer
    plan: FaultPlan
    counters: Counters
    clock: Clock
    started: float
    time_scale: float

    def scenario_time(self) -> float:
        return (self.clock.monotonic() - self.started) * self.time_scale


Handler = Callable[[web.Request, World, Decision], Awaitable[web.Response]]


def create_app(world: World) -> web.Application:
    app = web.Application()
    app.router.add_get("/GetImage", _operation("GetImage", world, _get_image))
    app.router.add_post(
        "/ListImageBuildVersions", _operation("ListImageBuildVersions", world, _list_build_versions)
    )
    app.router.add_route("*", "/{tail:.*}", _unknown_operation)
    return app


def _operation(
    name: str, world: World, handler: Handler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        world.counters.requests[name] += 1
        decision = world.plan.decide(name)
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
            return error_response(decision.error_code, message, decision.request_id)
        response = await handler(request, world, decision)
        if decision.kind == "malformed":
            world.counters.injected[name, "malformed"] += 1
            world.counters.responses[name, "malformed"] += 1
            return _malform(response, decision)
        outcome = response.headers.get("x-amzn-ErrorType", "ok")
        world.counters.responses[name, outcome] += 1
        return response

    return serve


async def _get_image(request: web.Request, world: World, decision: Decision) -> web.Response:
    arn = request.query.get(_GET_IMAGE_PARAM)
    if not arn:
        return _invalid(f"The {_GET_IMAGE_PARAM} parameter is required.", decision)
    problem = _constraint(arn, _GET_IMAGE_PARAM, "ImageVersionArnOrBuildVersionArn")
    if problem:
        return _invalid(problem, decision)
    t = world.scenario_time()
    build = world.catalog.resolve(arn, t)
    if build is None:
        return error_response(
            "ResourceNotFoundException", f"The resource {arn} cannot be found.", decision.request_id
        )
    return json_response(
        {"requestId": decision.request_id, "image": world.renderer.image(build, t)},
        decision.request_id,
    )


async def _list_build_versions(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return error_response(
            "ClientException", "The request body is not valid JSON.", decision.request_id
        )
    if not isinstance(body, dict):
        return error_response(
            "ClientException", "The request body must be a JSON object.", decision.request_id
        )
    arn = body.get("imageVersionArn")
    if not isinstance(arn, str) or not arn:
        return _invalid("The imageVersionArn parameter is required.", decision)
    problem = _constraint(arn, "imageVersionArn", "ImageVersionArn")
    if problem:
        return _invalid(problem, decision)
    limit = body.get("maxResults", 25)
    if not isinstance(limit, int) or not 1 <= limit <= 25:
        return _invalid(
            f"1 validation error detected: Value '{limit}' at 'maxResults' failed to satisfy "
            "constraint: Member must have value between 1 and 25",
            decision,
        )
    filters = body.get("filters", [])
    wanted: dict[str, set[str]] = {}
    for item in filters if isinstance(filters, list) else [None]:
        if not isinstance(item, dict) or item.get("name") not in _LIST_FILTERS:
            return _invalid(
                f"Filters must name one of: {', '.join(sorted(_LIST_FILTERS))}.", decision
            )
        wanted[item["name"]] = set(item.get("values", []))
    offset = _read_token(body.get("nextToken"), arn)
    if offset is None:
        return error_response(
            "InvalidPaginationTokenException",
            "The nextToken is not valid for this request.",
            decision.request_id,
        )
    t = world.scenario_time()
    prefix, version = arn.rsplit("/", 1)
    summaries = [
        world.renderer.summary(b, t) for b in world.catalog.builds_matching(prefix, version, t)
    ]
    summaries = [s for s in summaries if all(s.get(k) in v for k, v in wanted.items())]
    page = summaries[offset : offset + limit]
    result: dict[str, Any] = {"requestId": decision.request_id, "imageSummaryList": page}
    if offset + limit < len(summaries):
        result["nextToken"] = _write_token(offset + limit, arn)
    return json_response(result, decision.request_id)


async def _unknown_operation(request: web.Request) -> web.Response:
    return error_response(
        "UnknownOperationException",
        "The simulator serves GetImage and ListImageBuildVersions only.",
        "00000000-0000-4000-8000-000000000000",
        status=404,
    )


def _signature_problem(request: web.Request, request_id: str) -> web.Response | None:
    """Refuse unsigned requests as AWS does. The signature itself cannot be checked
    without the caller's secret, so its presence and scope are what is checked."""
    header = request.headers.get("Authorization")
    if header is None:
        return error_response(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
            request_id,
            status=403,
        )
    credential = _CREDENTIAL.search(header)
    if (
        not header.startswith("AWS4-HMAC-SHA256 ")
        or credential is None
        or "SignedHeaders=" not in header
        or "Signature=" not in header
    ):
        return error_response(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            "parameters of an AWS4-HMAC-SHA256 signature.",
            request_id,
            status=403,
        )
    if credential.group(4) != model.SERVICE:
        return error_response(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{model.SERVICE}'.",
            request_id,
            status=403,
        )
    if "X-Amz-Date" not in request.headers and "Date" not in request.headers:
        return error_response(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            request_id,
            status=403,
        )
    return None


def _constraint(value: str, parameter: str, shape_name: str) -> str | None:
    pattern = model.shape(shape_name).metadata["pattern"]
    if re.search(pattern, value):
        return None
    return (
        f"1 validation error detected: Value '{value}' at '{parameter}' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {pattern}"
    )


def _invalid(message: str, decision: Decision) -> web.Response:
    return error_response("InvalidRequestException", message, decision.request_id)


def _read_token(token: object, arn: str) -> int | None:
    if token is None:
        return 0
    if not isinstance(token, str):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        return None
    if (
        not isinstance(data, dict)
        or data.get("arn") != arn
        or not isinstance(data.get("offset"), int)
    ):
        return None
    offset: int = data["offset"]
    return offset if offset >= 0 else None


def _write_token(offset: int, arn: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"arn": arn, "offset": offset}).encode()).decode()


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
