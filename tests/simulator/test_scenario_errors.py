"""A scenario with a mistake is refused at load with file, field path and what was expected."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from watcher.simulator import ScenarioError, load_scenario

GOOD_IMAGE = """
[[images]]
arn = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
timeline = [
  { status = "PENDING", duration = "1m" },
  { status = "BUILDING", duration = "10m" },
  { status = "AVAILABLE" },
]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), "the message names the file first"
    return message


def test_the_good_scenario_loads(tmp_path: Path) -> None:
    assert [s.status for s in load_scenario(write(tmp_path, GOOD_IMAGE)).images[0].timeline] == [
        "PENDING",
        "BUILDING",
        "AVAILABLE",
    ]


def test_misspelled_status_names_the_step_and_suggests_the_status(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, GOOD_IMAGE.replace('"BUILDING"', '"BUILDNG"')))
    assert (
        "images[0].timeline[1].status: 'BUILDNG' is not an Image Builder status "
        "(did you mean 'BUILDING'?); expected one of PENDING, CREATING" in message
    )


def test_negative_duration_is_refused(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, GOOD_IMAGE.replace('"10m"', '"-10m"')))
    assert "images[0].timeline[1].duration: a duration cannot be negative, got '-10m'" in message


def test_unreadable_duration_says_what_a_duration_looks_like(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, GOOD_IMAGE.replace('"10m"', '"ten minutes"')))
    assert "images[0].timeline[1].duration: expected a duration such as 30, '90s', '5m'" in message


def test_invalid_arn_is_refused_with_an_example(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, GOOD_IMAGE.replace("/1.4.0/7", "/1.4")))
    assert (
        "images[0].arn: expected an image build-version ARN like "
        "'arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7', got" in message
    )


def test_unknown_key_is_named(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, GOOD_IMAGE + 'colour = "blue"\n'))
    assert "images[0].colour: unknown key" in message


def test_unknown_top_level_key_is_named_with_the_key_it_resembles(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "time_scael = 60\n" + GOOD_IMAGE))
    assert "time_scael: unknown key (did you mean 'time_scale'?)" in message


def test_a_key_like_no_other_lists_the_keys_its_table_takes(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "[faults.latency]\nmean = 1\n"))
    assert "faults.latency.mean: unknown key; expected one of fixed, random" in message


def test_misspelled_image_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, GOOD_IMAGE + 'piepline = "x"\n'))
    assert "images[0].piepline: unknown key (did you mean 'pipeline'?)" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD_IMAGE.replace('"BUILDING"', '"BUILDNG"').replace('"1m"', '"-1m"')
    message = problems_of(write(tmp_path, text))
    assert "2 problem(s)" in message
    assert "timeline[0].duration" in message
    assert "timeline[1].status" in message


def test_last_step_with_a_duration_is_refused(tmp_path: Path) -> None:
    message = problems_of(
        write(tmp_path, GOOD_IMAGE.replace('"AVAILABLE" }', '"AVAILABLE", duration = 5 }'))
    )
    assert "images[0]: timeline[2] (AVAILABLE) is the last step and lasts forever" in message


def test_step_before_the_last_without_a_duration_is_refused(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, GOOD_IMAGE.replace(', duration = "10m"', "")))
    assert "images[0]: timeline[1] (BUILDING) needs a duration" in message


def test_short_pages_is_a_probability(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "[faults]\nshort_pages = 2\n"))
    assert "faults.short_pages: Input should be less than or equal to 1" in message


def test_misspelled_error_code_is_refused(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "[faults.errors]\nServiceUnavailable = 0.1\n"))
    assert (
        "faults.errors: 'ServiceUnavailable' is not an Image Builder error code "
        "(did you mean 'ServiceUnavailableException'?)" in message
    )


def test_probability_above_one_is_refused(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "[faults]\ndropped_connections = 1.5\n"))
    assert "faults.dropped_connections: Input should be less than or equal to 1" in message


def test_chances_adding_up_past_one_are_refused(tmp_path: Path) -> None:
    message = problems_of(
        write(tmp_path, "[faults]\ndropped_connections = 0.6\nmalformed_bodies = 0.6\n")
    )
    assert "add up to 1.2" in message


def test_failure_context_is_checked_against_the_model(tmp_path: Path) -> None:
    text = GOOD_IMAGE.replace(
        '{ status = "AVAILABLE" }', '{ status = "FAILED", failure_context = { failedStp = "x" } }'
    )
    message = problems_of(write(tmp_path, text))
    assert "failure_context.failedStp: not a member of ImageFailureContext" in message


def test_failure_context_on_a_cancelled_step_is_refused_citing_the_model(tmp_path: Path) -> None:
    """ImageState.failureContext: "Image Builder only sets this property when the
    image status is FAILED"."""
    text = GOOD_IMAGE.replace(
        '{ status = "AVAILABLE" }',
        '{ status = "CANCELLED", failure_context = { failedStep = "Build" } }',
    )
    message = problems_of(write(tmp_path, text))
    assert "failure_context is only served with FAILED, not CANCELLED" in message
    assert "'Image Builder only sets this property when the image status is FAILED'" in message


def test_outputs_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    text = GOOD_IMAGE + 'containers = [{ region = "us-east-1", image_uris = ["x"] }]\n'
    message = problems_of(write(tmp_path, text))
    assert "an AMI image has no container outputs" in message


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "seed = \n"))
    assert "not valid TOML: " in message
    assert "line 1" in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    message = problems_of(tmp_path / "nowhere.toml")
    assert message.endswith("file not found")


def test_ibwatch_simulate_reports_a_bad_scenario_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_IMAGE.replace('"BUILDING"', '"BUILDNG"'))
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "simulate", "--scenario", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"ibwatch: {path}: 1 problem(s):")
    assert "images[0].timeline[1].status: 'BUILDNG'" in done.stderr
    assert done.stdout == ""
