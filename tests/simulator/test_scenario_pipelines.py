"""`[[pipelines]]` in a scenario file: refused at load with field path and fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watcher.simulator import ScenarioError, load_scenario
from watcher.simulator.scenario import Schedule

PIPELINE = """
[[pipelines]]
arn = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly"
image = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0"
schedule = { every = "30m", first = "5m", until = "2h" }
timeline = [{ status = "BUILDING", duration = "10m" }, { status = "AVAILABLE" }]
"""
IMAGE = """
[[images]]
arn = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
pipeline = "web-base-nightly"
timeline = [{ status = "AVAILABLE" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return str(caught.value)


def test_a_good_pipeline_loads_named_after_the_last_segment_of_its_arn(tmp_path: Path) -> None:
    (pipeline,) = load_scenario(write(tmp_path, PIPELINE)).pipelines
    assert pipeline.pipeline_name == "web-base-nightly"
    assert (pipeline.status, pipeline.created, pipeline.first_run) == ("ENABLED", 0.0, 300.0)


def test_a_misspelled_pipeline_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE.replace("schedule =", "shedule =")))
    assert "pipelines[0].shedule: unknown key (did you mean 'schedule'?)" in message


def test_a_misspelled_schedule_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE.replace("until =", "untill =")))
    assert "pipelines[0].schedule.untill: unknown key (did you mean 'until'?)" in message


def test_an_image_arn_is_not_a_pipeline_arn(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE.replace("image-pipeline/", "image/")))
    assert "pipelines[0].arn: expected an image pipeline ARN like" in message


def test_the_image_must_be_a_version_arn_without_build_number(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE.replace('1.4.0"', '1.4.0/7"')))
    assert "pipelines[0].image: expected the image version ARN its runs build" in message


def test_the_image_must_live_where_the_pipeline_lives(tmp_path: Path) -> None:
    text = PIPELINE.replace("us-east-1:123456789012:image/", "eu-west-1:123456789012:image/")
    message = problems_of(write(tmp_path, text))
    assert "is not in the pipeline's partition, region and account" in message


def test_a_schedule_needs_a_positive_interval(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE.replace('every = "30m"', "every = 0")))
    assert "pipelines[0].schedule.every: a schedule needs a positive interval" in message


def test_a_schedule_cannot_start_before_its_pipeline_exists(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE + 'created = "10m"\n'))
    assert "schedule.first (300s) is before the pipeline is created (600s)" in message


def test_a_schedule_ending_before_its_first_run_is_refused(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE.replace('until = "2h"', 'until = "1m"')))
    assert "the schedule would never run" in message


def test_auto_disable_needs_a_schedule(tmp_path: Path) -> None:
    text = PIPELINE.replace('schedule = { every = "30m", first = "5m", until = "2h" }\n', "")
    message = problems_of(write(tmp_path, text + "auto_disable_after = 3\n"))
    assert "auto_disable_after needs a schedule" in message


def test_auto_disable_is_bounded_as_the_model_bounds_it(tmp_path: Path) -> None:
    """AutoDisableFailureCount: 1 to 10."""
    message = problems_of(write(tmp_path, PIPELINE + "auto_disable_after = 11\n"))
    assert "pipelines[0].auto_disable_after: Input should be less than or equal to 10" in message


def test_status_is_enabled_or_disabled(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE + 'status = "ENABLE"\n'))
    assert "pipelines[0].status: Input should be 'ENABLED' or 'DISABLED'" in message


def test_a_short_arn_segment_needs_an_explicit_name(tmp_path: Path) -> None:
    """ResourceName needs at least 3 characters."""
    message = problems_of(write(tmp_path, PIPELINE.replace("/web-base-nightly", "/wb")))
    assert "the ARN's last segment 'wb' is not a valid pipeline name" in message


def test_two_pipelines_of_one_name_are_refused(tmp_path: Path) -> None:
    second = PIPELINE.replace("image-pipeline/web-base-nightly", "image-pipeline/other")
    message = problems_of(write(tmp_path, PIPELINE + second + 'name = "web-base-nightly"\n'))
    assert "pipelines[1].name 'web-base-nightly' appears twice" in message


def test_an_image_of_a_pipeline_in_another_region_is_refused(tmp_path: Path) -> None:
    image = IMAGE.replace("us-east-1", "eu-west-1")
    message = problems_of(write(tmp_path, image + PIPELINE))
    assert "images[0] names pipeline 'web-base-nightly', which lives in another" in message


def test_an_image_cannot_run_before_its_pipeline_exists(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, IMAGE + PIPELINE + 'created = "1m"\n'))
    assert "images[0] starts at 0s, before its pipeline 'web-base-nightly' is created at 60s" in (
        message
    )


def test_the_run_template_is_checked_like_an_image(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, PIPELINE.replace('"BUILDING"', '"BUILDNG"')))
    assert "pipelines[0].timeline[0].status: 'BUILDNG' is not an Image Builder status" in message


def test_a_misspelled_rate_limited_operation_suggests_the_right_one(tmp_path: Path) -> None:
    message = problems_of(
        write(tmp_path, "[faults.rate_limits]\nGetImagePipelines = { rate = 1 }\n")
    )
    assert (
        "'GetImagePipelines' is not a simulated operation (did you mean 'GetImagePipeline'?)"
        in (message)
    )


@pytest.mark.parametrize(
    ("every", "expression"),
    [
        (60, "rate(1 minute)"),
        (1800, "rate(30 minutes)"),
        (7200, "rate(2 hours)"),
        (86400, "rate(1 day)"),
        (100, "rate(100 seconds)"),
        (90 * 60, "rate(90 minutes)"),
    ],
)
def test_a_schedule_is_served_as_a_rate_expression(every: float, expression: str) -> None:
    """Schedule.scheduleExpression: "a cron expression, or a rate expression such as
    rate(1 day)". Seconds are the simulator's own, for intervals AWS would not take."""
    assert Schedule(every=every).expression() == expression
