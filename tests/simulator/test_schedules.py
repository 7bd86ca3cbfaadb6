"""Scheduled pipeline runs: when they start, what they are, and auto-disable."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.helpers import (
    AVAILABLE_NOW,
    FAILING,
    NIGHTLY,
    QUICK,
    build_arn,
    images_of,
    nightly,
    world,
)
from tests.support import imagebuilder
from watcher.simulator import Scenario, Simulator
from watcher.testing import FakeClock

EVERY_10M = {"every": "10m", "first": "10m"}


def scheduled(*, images: list[dict[str, Any]] | None = None, **pipeline: Any) -> Scenario:
    """web-base 1.4.0/7 (a finished run) and the nightly pipeline with `pipeline`."""
    builds = images if images is not None else images_of(7, timeline=AVAILABLE_NOW)
    return world(builds, [nightly(**pipeline)])


def run_arns(simulator: Simulator) -> list[str]:
    return [b.arn for b in simulator.catalog if b.build_type == "SCHEDULED"]


async def test_runs_start_at_first_then_every_interval_until_the_end(clock: FakeClock) -> None:
    plan = scheduled(schedule={"every": "10m", "first": "5m", "until": "25m"})
    simulator = Simulator(plan, clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(3600)
        page = await client.list_image_pipeline_images(imagePipelineArn=NIGHTLY)
    scheduled_runs = [s for s in page["imageSummaryList"] if s["buildType"] == "SCHEDULED"]
    assert sorted(b.started for b in simulator.catalog if b.build_type == "SCHEDULED") == [
        300,
        900,
        1500,
    ]
    assert len(scheduled_runs) == 3


async def test_a_scheduled_run_is_a_scheduled_build_of_the_pipeline(clock: FakeClock) -> None:
    """Image.buildType SCHEDULED: "A pipeline build initiated by a cron expression";
    sourcePipelineArn: "only present for images that a pipeline execution created"."""
    plan = scheduled(schedule=EVERY_10M, tags={"team": "platform"})
    async with Simulator(plan, clock=clock) as url, imagebuilder(url) as client:
        clock.advance(600)
        image = (await client.get_image(imageBuildVersionArn=build_arn(8)))["image"]
    assert image["buildType"] == "SCHEDULED"
    assert (image["sourcePipelineArn"], image["sourcePipelineName"]) == (
        NIGHTLY,
        "web-base-nightly",
    )
    assert image["state"] == {"status": "PENDING"}
    assert image["tags"] == {"team": "platform"}  # imageTags apply to scheduled runs


async def test_runs_take_the_next_free_build_numbers_of_the_image_version(
    clock: FakeClock,
) -> None:
    simulator = Simulator(scheduled(schedule=EVERY_10M), clock=clock)
    async with simulator:
        clock.advance(1800)
        simulator.scenario_time()
    assert run_arns(simulator) == [build_arn(8), build_arn(9), build_arn(10)]


async def test_a_run_started_between_ticks_takes_the_number_in_between(clock: FakeClock) -> None:
    simulator = Simulator(scheduled(schedule=EVERY_10M), clock=clock)
    async with simulator:
        clock.advance(900)
        started = simulator.start_pipeline(NIGHTLY)
        clock.advance(300)
        simulator.scenario_time()
    assert started == build_arn(9)
    assert run_arns(simulator) == [build_arn(8), build_arn(10)]


async def test_a_schedule_without_end_starts_runs_only_up_to_the_time_asked_about(
    clock: FakeClock,
) -> None:
    """Runs of an endless schedule are made as scenario time reaches them."""
    simulator = Simulator(scheduled(schedule={"every": "1m", "first": "1m"}), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(100 * 60)
        page = await client.list_image_build_versions(maxResults=3)
    assert len(run_arns(simulator)) == 100
    assert [s["arn"] for s in page["imageSummaryList"]] == [build_arn(n) for n in (107, 106, 105)]


async def test_a_disabled_pipeline_does_not_run_on_its_schedule(clock: FakeClock) -> None:
    simulator = Simulator(scheduled(schedule=EVERY_10M, status="DISABLED"), clock=clock)
    async with simulator:
        clock.advance(3600)
        simulator.scenario_time()
    assert run_arns(simulator) == []


async def test_consecutive_failed_runs_disable_the_pipeline_when_the_last_one_fails(
    clock: FakeClock,
) -> None:
    """consecutiveFailures: "If the failure count reaches the limit defined in the
    AutoDisablePolicy, Image Builder disables the pipeline" — our reading: at the
    moment the run that reaches it shows FAILED. Runs fail 120s after they start."""
    plan = scheduled(schedule=EVERY_10M, timeline=FAILING, auto_disable_after=2)
    simulator = Simulator(plan, clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(1200 + 119)  # the second run (at 20m) fails at 22m
        just_before = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
        clock.advance(1)
        disabled = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
        clock.advance(3600)
        later = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert (just_before["status"], just_before["consecutiveFailures"]) == ("ENABLED", 1)
    assert (disabled["status"], disabled["consecutiveFailures"]) == ("DISABLED", 2)
    assert disabled["dateUpdated"] == "2026-01-01T00:22:00.000Z"
    assert "dateNextRun" not in disabled
    assert later["dateLastRun"] == "2026-01-01T00:20:00.000Z"
    assert run_arns(simulator) == [build_arn(8), build_arn(9)]


async def test_without_auto_disable_after_the_model_default_of_five_applies(
    clock: FakeClock,
) -> None:
    """AutoDisablePolicy: "By default, if the schedule doesn't include an auto-disable
    policy, Image Builder disables the pipeline after 5 consecutive failed scheduled
    builds." """
    simulator = Simulator(scheduled(schedule=EVERY_10M, timeline=FAILING), clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(6 * 3600)
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert (pipeline["status"], pipeline["consecutiveFailures"]) == ("DISABLED", 5)
    assert len(run_arns(simulator)) == 5


async def test_a_run_that_succeeds_resets_the_count(clock: FakeClock) -> None:
    """ "The consecutive failure count is also reset to zero ... The pipeline runs
    manually and succeeds." """
    plan = scheduled(schedule=EVERY_10M, timeline=FAILING, auto_disable_after=2)
    simulator = Simulator(plan, clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(600 + 150)  # the first run failed at 12m
        simulator.start_build(build_arn(7))  # AVAILABLE at once, like build 7
        clock.advance(600)  # the second run failed at 22m
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert (pipeline["status"], pipeline["consecutiveFailures"]) == ("ENABLED", 1)


async def test_a_failed_manual_run_leaves_the_count_as_it_was(clock: FakeClock) -> None:
    """ "If the pipeline runs manually and fails, the count remains the same." """
    plan = scheduled(schedule=EVERY_10M, timeline=FAILING, auto_disable_after=2)
    simulator = Simulator(plan, clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(600 + 150)  # the first scheduled run failed at 12m
        simulator.start_pipeline(NIGHTLY)  # fails 120s later
        clock.advance(300)
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert (pipeline["status"], pipeline["consecutiveFailures"]) == ("ENABLED", 1)
    assert pipeline["lastRunStatus"] == "FAILED"


@pytest.mark.parametrize("timeline", [QUICK, FAILING])
async def test_a_cancelled_scheduled_run_neither_fails_nor_succeeds(
    timeline: list[dict[str, Any]], clock: FakeClock
) -> None:
    """Our reading: the model counts failed and successful executions only."""
    plan = scheduled(schedule=EVERY_10M, timeline=timeline, auto_disable_after=1)
    simulator = Simulator(plan, clock=clock)
    async with simulator as url, imagebuilder(url) as client:
        clock.advance(600 + 30)
        simulator.cancel_build(build_arn(8))
        clock.advance(300)
        pipeline = (await client.get_image_pipeline(imagePipelineArn=NIGHTLY))["imagePipeline"]
    assert (pipeline["status"], pipeline["consecutiveFailures"]) == ("ENABLED", 0)
