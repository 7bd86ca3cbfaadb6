"""Short pages: the model's nextToken only promises "When this field isn't empty,
there are additional elements that the service hasn't included in this request",
never a full page. `faults.short_pages` makes pages short, deterministically."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.helpers import (
    NIGHTLY,
    QUICK,
    REGION_PREFIX,
    api_runtime,
    images_of,
    nightly,
    world,
)
from tests.support import WEB_BASE_VERSION, imagebuilder
from watcher.simulator import Scenario, Simulator
from watcher.testing import FakeClock

BUILDS = images_of(*range(1, 41))


def short(chance: float, seed: int = 0, **fields: Any) -> Scenario:
    return world(BUILDS, faults={"short_pages": chance}, seed=seed, **fields)


async def _page_sizes(plan: Scenario, operation: str, **params: Any) -> list[tuple[int, bool]]:
    """(items, has nextToken) of every page a paginator walks, 5 per page asked."""
    async with Simulator(plan, clock=FakeClock()) as url, imagebuilder(url) as client:
        paginator = client.get_paginator(operation)
        key = "imagePipelineList" if operation == "list_image_pipelines" else "imageSummaryList"
        return [
            (len(page[key]), "nextToken" in page)
            async for page in paginator.paginate(**params, PaginationConfig={"PageSize": 5})
        ]


async def test_a_short_page_holds_fewer_items_than_asked_yet_carries_a_next_token() -> None:
    sizes = await _page_sizes(
        short(1.0), "list_image_build_versions", imageVersionArn=WEB_BASE_VERSION
    )
    assert sizes[0][0] < 5
    assert sizes[0][1]


async def test_a_short_page_is_followed_by_a_full_one() -> None:
    """So a client makes progress even when every page may be short."""
    sizes = await _page_sizes(
        short(1.0), "list_image_build_versions", imageVersionArn=WEB_BASE_VERSION
    )
    assert all(sizes[i + 1][0] == 5 for i in range(0, len(sizes) - 2, 2))


async def test_the_paginator_collects_every_build_once_through_short_pages() -> None:
    async with (
        Simulator(short(0.5, seed=3), clock=FakeClock()) as url,
        imagebuilder(url) as client,
    ):
        paginator = client.get_paginator("list_image_build_versions")
        pages = [
            page
            async for page in paginator.paginate(
                imageVersionArn=WEB_BASE_VERSION, PaginationConfig={"PageSize": 5}
            )
        ]
    arns = [s["arn"] for page in pages for s in page["imageSummaryList"]]
    assert sorted(arns) == sorted(b["arn"] for b in BUILDS)
    assert len(arns) == len(set(arns))
    assert any(len(page["imageSummaryList"]) < 5 and "nextToken" in page for page in pages)


async def test_the_same_seed_gives_the_same_pages() -> None:
    first = await _page_sizes(short(0.5, seed=7), "list_image_build_versions")
    second = await _page_sizes(short(0.5, seed=7), "list_image_build_versions")
    assert first == second


async def test_another_seed_gives_other_pages() -> None:
    sizes = {
        tuple(await _page_sizes(short(0.5, seed=seed), "list_image_build_versions"))
        for seed in range(4)
    }
    assert len(sizes) > 1


async def test_without_short_pages_every_page_but_the_last_is_full() -> None:
    sizes = await _page_sizes(short(0.0), "list_image_build_versions")
    assert sizes == [(5, True)] * 7 + [(5, False)]


async def test_short_pages_apply_to_list_image_pipelines() -> None:
    pipelines = [
        api_runtime(arn=f"{NIGHTLY}-{n}", image=f"{REGION_PREFIX}:image/p{n}/1.0.0")
        for n in range(12)
    ]
    plan = Scenario.model_validate(
        {"pipelines": pipelines, "faults": {"short_pages": 1.0}, "seed": 1}
    )
    sizes = await _page_sizes(plan, "list_image_pipelines")
    assert sum(n for n, _ in sizes) == 12
    assert any(n < 5 and more for n, more in sizes)


@pytest.mark.parametrize("chance", [0.0, 1.0])
async def test_short_pages_apply_to_list_image_pipeline_images(chance: float) -> None:
    plan = world(
        [],
        [nightly(schedule={"every": "1m", "first": 0}, timeline=QUICK)],
        faults={"short_pages": chance},
    )
    clock = FakeClock()
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        clock.advance(11 * 60)  # twelve scheduled runs, at 0m .. 11m
        pages = [
            page
            async for page in client.get_paginator("list_image_pipeline_images").paginate(
                imagePipelineArn=NIGHTLY, PaginationConfig={"PageSize": 5}
            )
        ]
    sizes = [(len(p["imageSummaryList"]), "nextToken" in p) for p in pages]
    assert sum(n for n, _ in sizes) == 12
    assert any(n < 5 and more for n, more in sizes) == (chance == 1.0)
