"""Handlers of the operations on image pipelines: GetImagePipeline,
ListImagePipelines, ListImagePipelineImages and StartImagePipelineExecution.

Like `handlers_images`: validated input in, the world at the current scenario
time, a document of the model's output shape out, ApiError for an error answer.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from watcher.simulator.faults import Decision
from watcher.simulator.handlers_images import in_region, listed, listed_builds
from watcher.simulator.inputs import read_input
from watcher.simulator.paging import select
from watcher.simulator.pipelines import PipelineRuns
from watcher.simulator.signature import signed_region
from watcher.simulator.wire import json_response
from watcher.simulator.world import Handler, World

# ListImagePipelineImages' model doc lists `name` and `version` (X.Y.Z, our reading).
_RUN_FILTERS = {"name": lambda b: b.name, "version": lambda b: b.version}


async def _get_image_pipeline(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    params = await read_input(request, "GetImagePipeline")
    t = world.now()
    # GetImagePipeline's model lists no ResourceNotFoundException; an unknown
    # pipeline is answered with it all the same (our reading, see Account.pipeline).
    runs = world.account.pipeline(params["imagePipelineArn"], t)
    return json_response(
        {"requestId": decision.request_id, "imagePipeline": world.renderer.pipeline(runs, t)},
        decision.request_id,
    )


async def _list_image_pipelines(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    operation = "ListImagePipelines"
    params = await read_input(request, operation)
    t = world.now()
    region = signed_region(request)
    rendered = [
        (p, world.renderer.pipeline(p, t))
        for p in world.account.pipelines.visible(t)
        if in_region(p.spec.image_parts, region)
    ]

    # Every filter the model's doc lists matches the served member of that name.
    def member(name: str) -> Callable[[tuple[PipelineRuns, dict[str, object]]], str | None]:
        return lambda item: _text(item[1].get(name))

    fields = {
        name: member(name)
        for name in (
            "description",
            "distributionConfigurationArn",
            "imageRecipeArn",
            "infrastructureConfigurationArn",
            "name",
            "status",
        )
    }
    chosen = select(operation, params.get("filters"), fields, rendered)
    return listed(
        world,
        decision,
        operation,
        params,
        [((p.spec.created, p.arn), document) for p, document in chosen],
        "imagePipelineList",
        lambda document: document,
    )


async def _list_image_pipeline_images(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    operation = "ListImagePipelineImages"
    params = await read_input(request, operation)
    t = world.now()
    runs = world.account.pipeline(params["imagePipelineArn"], t)
    builds = select(operation, params.get("filters"), _RUN_FILTERS, runs.visible_runs(t))
    return listed_builds(world, decision, operation, params, builds, t)


async def _start_image_pipeline_execution(
    request: web.Request, world: World, decision: Decision
) -> web.Response:
    params = await read_input(request, "StartImagePipelineExecution")
    token: str = params["clientToken"]
    t = world.now()
    arn = world.account.start_pipeline(params["imagePipelineArn"], t, token, params.get("tags"))
    return json_response(
        {"requestId": decision.request_id, "clientToken": token, "imageBuildVersionArn": arn},
        decision.request_id,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


HANDLERS: dict[str, Handler] = {
    "GetImagePipeline": _get_image_pipeline,
    "ListImagePipelines": _list_image_pipelines,
    "ListImagePipelineImages": _list_image_pipeline_images,
    "StartImagePipelineExecution": _start_image_pipeline_execution,
}
