"""Handlers of the operations on image builds: GetImage, ListImageBuildVersions
and CancelImageCreation.

Each reads its validated input, asks the world at the current scenario time, and
answers with a document the model's output shape describes; an error answer is
an ApiError, which the app turns into the wire's error form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from watcher.simulator.account import NOT_FOUND
from watcher.simulator.catalog import Build, version_problem
from watcher.simulator.documents import latest_version_references
from watcher.simulator.faults import Decision
from watcher.simulator.inputs import read_input
from watcher.simulator.paging import Key, select
from watcher.simulator.signature import signed_region
from watcher.simulator.wire import ApiError, json_response
from watcher.simulator.world import Handler, World

T = TypeVar("T")

# ListImageBuildVersions' model doc lists exactly these filters; `version` matches
# the X.Y.Z part of a build's version (our reading).
BUILD_FILTERS: dict[str, Callable[[Build], str | None]] = {
    "name": lambda b: b.name,
    "osVersion": lambda b: b.image.os_version,
    "platform": lambda b: b.image.platform,
    "type": lambda b: b.image.type,
    "version": lambda b: b.version,
}


async def _get_image(request: web.Request, world: World, decision: Decision) -> web.Response:
    params = await read_input(request, "GetImage")
    arn: str = params["imageBuildVersionArn"]
    problem = version_problem(arn)
    if problem is not None:
        raise ApiError("InvalidRequestException", problem)
    t = world.now()
    build = world.account.catalog.resolve(arn, t)
    if build is None:
        # GetImage's model lists no ResourceNotFoundException among its errors, yet
        # it is an error shape of the service (botocore raises its class) and the
        # one that fits; our reading. A version ARN with no build AVAILABLE now
        # resolves to nothing, by the doc quoted in Catalog.resolve.
        raise ApiError(NOT_FOUND, f"The resource {arn} cannot be found.")
    return json_response(
        {
            "requestId": decision.request_id,
            "image": world.renderer.image(build, t),
            "latestVersionReferences": latest_version_references(build),
        },
        decision.request_id,
    )


async def _list_build_versions(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    operation = "ListImageBuildVersions"
    params = await read_input(request, operation)
    t = world.now()
    region = signed_region(request)
    builds = [b for b in world.account.catalog.visible(t) if in_region(b.image.parts, region)]
    # imageVersionArn: "This parameter is optional. If you don't specify it, Image
    # Builder returns build versions for all of the images in your account." Its
    # pattern (checked by read_input) refuses wildcards and build numbers.
    version_arn = params.get("imageVersionArn")
    if version_arn is not None:
        builds = [b for b in builds if b.version_arn == version_arn]
    builds = select(operation, params.get("filters"), BUILD_FILTERS, builds)
    return listed_builds(world, decision, operation, params, builds, t)


def in_region(parts: Mapping[str, str], region: str | None) -> bool:
    """Whether a resource lives in the region the request was signed for. Image
    Builder is a regional service: a List operation answers from the endpoint of one
    region, so it lists that region's resources only ("every build in the account"
    is every build of the account in that region). One simulator serves every
    region, so the request's credential scope says which one is asked."""
    return region is None or parts["region"] == region


def listed_builds(
    world: World,
    decision: Decision,
    operation: str,
    params: Mapping[str, Any],
    builds: Sequence[Build],
    t: float,
) -> web.Response:
    """A page of `imageSummaryList`, newest first (our reading: no order is documented)."""
    return listed(
        world,
        decision,
        operation,
        params,
        [(b.sort_key, b) for b in builds],
        "imageSummaryList",
        lambda b: world.renderer.summary(b, t),
    )


async def _cancel_image_creation(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    params = await read_input(request, "CancelImageCreation")
    token: str = params["clientToken"]
    t = world.now()
    # The model lists no ResourceNotFoundException for this operation either; an
    # unknown build is answered with it all the same (our reading).
    arn = world.account.cancel(params["imageBuildVersionArn"], t, token)
    return json_response(
        {"requestId": decision.request_id, "clientToken": token, "imageBuildVersionArn": arn},
        decision.request_id,
    )


def listed(
    world: World,
    decision: Decision,
    operation: str,
    params: Mapping[str, Any],
    items: Sequence[tuple[Key, T]],
    list_name: str,
    render: Callable[[T], dict[str, Any]],
) -> web.Response:
    """One page of `items` (newest first; the order is our reading, the model
    gives none) as a List operation answers it."""
    page, token = world.pager.page(operation, params, items)
    result: dict[str, Any] = {
        "requestId": decision.request_id,
        list_name: [render(i) for i in page],
    }
    if token is not None:
        result["nextToken"] = token
    return json_response(result, decision.request_id)


HANDLERS: dict[str, Handler] = {
    "GetImage": _get_image,
    "ListImageBuildVersions": _list_build_versions,
    "CancelImageCreation": _cancel_image_creation,
}
