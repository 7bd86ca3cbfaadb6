"""CloudWatch Logs' GetLogEvents on the simulator's endpoint: each build's log
stream (`build_logs`), as the unmodified aiobotocore `logs` client and
`aws logs get-log-events` read it.

Facts from botocore's model (logs/2014-03-28/service-2.json): protocol `json`,
jsonVersion 1.1, targetPrefix `Logs_20140328`, signing name `logs`; GetLogEvents is
POST / with `X-Amz-Target: Logs_20140328.GetLogEvents`. Its input: logStreamName
(required), logGroupName or logGroupIdentifier ("You must include either ... but not
both"; the identifier is a name or an ARN), startTime (included) and endTime
(excluded) in epoch milliseconds, nextToken, limit (EventsLimit 1..10000; default "as
many log events as can fit in a response size of 1 MB (up to 10,000 log events)"),
startFromHead ("If the value is false, the latest log events are returned first. The
default value is false"; with a previous nextForwardToken "you must specify true").
Its output: events [{timestamp, message, ingestionTime}], nextForwardToken and
nextBackwardToken, never null: "If you have reached the end of the stream, it
returns the same token you passed in." Errors: InvalidParameterException,
ResourceNotFoundException, ServiceUnavailableException. botocore's json parser reads
an error's code from the body's `__type` and its message from `message`.

Our reading where AWS documents nothing: errors are 400 (the model gives these shapes
no status); the messages ("The specified log group does not exist."); the tokens'
form (`f/<index>/<stream digest>`, `b/...`: positions in the stream's events within
the request's time range); a forward token with startFromHead not true is refused as
InvalidParameterException; the 1 MB page counts each event as its UTF-8 message
plus 26 bytes (PutLogEvents' accounting); ingestionTime equals timestamp; a log
group exists in the region of the request's credential scope once a build of that
image there has started, a stream once its build has.

The scenario's random faults do not apply here: its rate limits are per Image
Builder operation and its error codes are Image Builder's, and leaving GetLogEvents
out keeps the plan's seeded draws, and so every Image Builder answer, the same whether
or not a client reads logs. Outages do apply, to an outage that names GetLogEvents
among its `operations` (a policy without logs:GetLogEvents: AccessDeniedException, or
a credential refused): asking for one draws nothing. The signature check and the
counters apply too. An outage's status is 403 for the common credential errors, else
400 like every error here (our reading, as above).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import botocore.session
from aiohttp import web
from botocore.model import ServiceModel

from watcher.simulator import build_logs
from watcher.simulator.catalog import Build
from watcher.simulator.inputs import violations
from watcher.simulator.scenario import COMMON_AUTH_ERRORS, LOGS_OPERATIONS
from watcher.simulator.signature import access_key_id, signature_problem, signed_region
from watcher.simulator.wire import ApiError
from watcher.simulator.world import World

SERVICE = "logs"
OPERATIONS = LOGS_OPERATIONS
TARGET_HEADER = "X-Amz-Target"
CONTENT_TYPE = "application/x-amz-json-1.1"
NOT_FOUND = "ResourceNotFoundException"
INVALID = "InvalidParameterException"
_PAGE_BYTES = 1_048_576
_EVENT_OVERHEAD = 26


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE)


def handler(world: World) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Serves a POST / that names its operation in X-Amz-Target."""
    prefix = service_model().metadata["targetPrefix"] + "."

    async def serve(request: web.Request) -> web.Response:
        target = request.headers.get(TARGET_HEADER, "")
        operation = target.removeprefix(prefix) if target.startswith(prefix) else ""
        if operation not in OPERATIONS:
            return error_response(
                "UnknownOperationException",
                f"The simulator serves CloudWatch Logs {', '.join(OPERATIONS)} only, "
                f"not {target or 'an empty X-Amz-Target'}.",
                "00000000-0000-4000-8000-000000000000",
            )
        world.counters.requests[operation] += 1
        key = access_key_id(request)
        if key is not None:
            world.counters.access_keys[key, operation] += 1
        request_id = _request_id(operation, world.counters.requests[operation])
        problem = signature_problem(request, SERVICE)
        try:
            if problem is not None:
                raise problem
            outage = world.plan.outage(operation, world.scenario_time())
            if outage is not None:
                world.counters.injected[operation, outage.code] += 1
                raise ApiError(
                    outage.code,
                    "Injected by the simulator's fault plan",
                    COMMON_AUTH_ERRORS.get(outage.code),
                )
            response = await _get_log_events(request, world, request_id)
        except ApiError as exc:
            world.counters.responses[operation, exc.code] += 1
            return error_response(exc.code, exc.message, request_id, exc.status)
        world.counters.responses[operation, "ok"] += 1
        return response

    return serve


def error_response(
    code: str, message: str, request_id: str, status: int | None = None
) -> web.Response:
    """An error as json-1.1 services send it: the code in the body's `__type`."""
    return web.Response(
        status=status if status is not None else 400,
        body=json.dumps({"__type": code, "message": message}).encode(),
        content_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


def _request_id(operation: str, count: int) -> str:
    # Deterministic without drawing from the fault plan's generator (see above).
    digest = hashlib.sha256(f"{operation}:{count}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


async def _get_log_events(request: web.Request, world: World, request_id: str) -> web.Response:
    params = await _read_input(request, "GetLogEvents")
    t = world.now()
    build = _stream(world, t, _group(params), params["logStreamName"], signed_region(request))
    events = [
        {"timestamp": ms, "message": line.message, "ingestionTime": ms}
        for line in build_logs.lines(build, world.renderer)
        if line.at <= t
        and params.get("startTime", 0) <= (ms := _millis(world, line.at))
        and ("endTime" not in params or ms < params["endTime"])
    ]
    page, forward, backward = _page(
        events,
        params.get("nextToken"),
        bool(params.get("startFromHead", False)),
        params.get("limit", 10_000),
        _digest(build),
    )
    body = {"events": page, "nextForwardToken": forward, "nextBackwardToken": backward}
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


async def _read_input(request: web.Request, operation: str) -> dict[str, Any]:
    shape = service_model().operation_model(operation).input_shape
    assert shape is not None
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # What json services answer for a body they cannot read (our reading).
        raise ApiError("SerializationException", "The request body is not a JSON object.")
    params = {name: body[name] for name in shape.members if body.get(name) is not None}
    problems = violations(params, shape)
    if problems:
        count = len(problems)
        raise ApiError(
            INVALID,
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems),
        )
    return params


def _group(params: dict[str, Any]) -> tuple[str, str | None]:
    """The log group's name, and the region its ARN names if it was given as one."""
    name, identifier = params.get("logGroupName"), params.get("logGroupIdentifier")
    if (name is None) == (identifier is None):
        raise ApiError(
            INVALID, "You must include either logGroupIdentifier or logGroupName, but not both."
        )
    if name is not None:
        return name, None
    assert isinstance(identifier, str)
    if not identifier.startswith("arn:"):
        return identifier, None
    # arn:<partition>:logs:<region>:<account>:log-group:<name>[:*]
    parts = identifier.split(":")
    if len(parts) < 7 or parts[2] != SERVICE or parts[5] != "log-group":
        raise ApiError(INVALID, f"{identifier} is not a log group ARN.")
    return parts[6], parts[3]


def _stream(
    world: World, t: float, group: tuple[str, str | None], stream: str, region: str | None
) -> Build:
    """The build whose stream this is, if its group and stream exist at t."""
    name, arn_region = group
    builds = [
        b
        for b in world.account.catalog.visible(t)
        if b.image.parts["region"] == region
        and arn_region in (None, region)
        and build_logs.group_name(b) == name
    ]
    if not builds:
        raise ApiError(NOT_FOUND, "The specified log group does not exist.")
    for build in builds:
        if build_logs.stream_name(build) == stream:
            return build
    raise ApiError(NOT_FOUND, "The specified log stream does not exist.")


def _millis(world: World, at: float) -> int:
    return round(world.renderer.wall(at).timestamp() * 1000)


def _digest(build: Build) -> str:
    return hashlib.sha256(build.arn.encode()).hexdigest()[:16]


def _page(
    events: list[dict[str, Any]], token: str | None, from_head: bool, limit: int, digest: str
) -> tuple[list[dict[str, Any]], str, str]:
    """The page and the next forward and backward tokens. A forward token `f/k` reads
    from position k on; a backward one `b/k` reads what lies before k."""
    if token is None:
        forward, at = from_head, 0 if from_head else len(events)
    else:
        forward, at = _position(token, digest, len(events))
        if forward and not from_head:
            raise ApiError(
                INVALID,
                "startFromHead must be true to use a nextForwardToken as the nextToken.",
            )
    if forward:
        page = _fill(events[at:], limit)
        return page, f"f/{at + len(page)}/{digest}", f"b/{at}/{digest}"
    page = _fill(events[:at][::-1], limit)[::-1]
    return page, f"f/{at}/{digest}", f"b/{at - len(page)}/{digest}"


def _fill(candidates: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """As many of `candidates` as `limit` and a 1 MB response allow, in their order."""
    taken: list[dict[str, Any]] = []
    size = 0
    for event in candidates[:limit]:
        size += len(event["message"].encode()) + _EVENT_OVERHEAD
        if size > _PAGE_BYTES and taken:
            break
        taken.append(event)
    return taken


def _position(token: str, digest: str, size: int) -> tuple[bool, int]:
    direction, _, rest = token.partition("/")
    index, _, owner = rest.partition("/")
    if direction not in ("f", "b") or owner != digest or not index.isdigit():
        raise ApiError(INVALID, "The specified nextToken is invalid.")
    return direction == "f", min(int(index), size)
