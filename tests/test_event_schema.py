"""The event's JSON Schema: the shipped file is what the model generates, and real
envelopes validate against it while broken ones do not.

The schema is generated from `Transition` here, not written by hand. When the
model changes, `test_the_shipped_schema_is_what_the_model_generates` fails; run

    IBWATCH_UPDATE_SCHEMA=1 .venv/bin/pytest tests/test_event_schema.py

to rewrite `watcher/schema/event-v1.schema.json`, and review the diff: a field
removed or changed (rather than added) needs a new event version.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

import watcher.schema
from watcher.build_progress import BuildProgress
from watcher.model import (
    EVENT_TYPE,
    EVENT_VERSION,
    Ami,
    Container,
    ImageSnapshot,
    ImageStatus,
    Outputs,
    Transition,
)
from watcher.schema import EVENT_SCHEMA_FILE, event_schema
from watcher.tracker import observe

SCHEMA_PATH = Path(watcher.schema.__file__).with_name(EVENT_SCHEMA_FILE)
SCHEMA_ID = "urn:ibwatch:schema:event-v1"

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
VERSION_ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class _EventJsonSchema(GenerateJsonSchema):
    """Pydantic's serialization schema, adjusted to what receivers may rely on."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        # model_dump writes every field, defaulted or not: each key is always there.
        if self.mode == "serialization":
            return field.get("serialization_exclude_if") is None
        return super().field_is_required(field, total)

    def enum_schema(self, schema: core_schema.EnumSchema) -> JsonSchemaValue:
        if schema["cls"] is not ImageStatus:
            return super().enum_schema(schema)
        # AWS adds statuses over time and the watcher passes them on as they
        # come, so the known ones are examples, not a closed enum.
        return {
            "title": "ImageStatus",
            "description": (
                "Image Builder's image.state.status, as AWS reported it. AWS adds values "
                "over time; a status not listed in `examples` is passed on unchanged."
            ),
            "type": "string",
            "minLength": 1,
            "examples": [status.value for status in ImageStatus],
        }


def _open(node: Any) -> Any:
    """Drop `additionalProperties: false` everywhere: within version 1 fields may be
    added, so a receiver validating with this schema must not reject new ones."""
    if isinstance(node, dict):
        return {
            key: _open(value)
            for key, value in node.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(node, list):
        return [_open(item) for item in node]
    return node


def generate() -> dict[str, Any]:
    data = _open(
        Transition.model_json_schema(mode="serialization", schema_generator=_EventJsonSchema)
    )
    defs = data.pop("$defs")
    data["properties"]["version"] = {
        "description": "The event format's version; a receiver should check it.",
        "const": EVENT_VERSION,
    }
    data["required"].append("version")
    # Added within v1 and written only on a transition into FAILED (Transition.envelope
    # leaves it out, rather than null, elsewhere): the one key a receiver cannot rely on.
    data["required"].remove("diagnostics")
    data["properties"]["diagnostics"]["description"] = (
        "Why the build failed: its failing workflow step, component and region failures, "
        "build log and console link. Only on a transition into FAILED."
    )
    # Added within v1 too, and likewise left out when unset.
    data["required"].remove("progress")
    data["properties"]["progress"]["description"] = (
        "The workflow step the build was running when the event was seen (BUILDING, "
        "TESTING, DISTRIBUTING), when ibwatch looked it up. Absent otherwise."
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ibwatch image.state_changed event, version 1",
        "description": (
            "One status change of one EC2 Image Builder build, as ibwatch sends it: a "
            "Standard Webhooks envelope {type, timestamp, data}. data.id is the same on "
            "every delivery of the same transition (it is also the webhook-id header); "
            "data.previous is null on first sighting; data.outputs is set on AVAILABLE. "
            "Within version 1 fields may be added, never removed or changed."
        ),
        "type": "object",
        "properties": {
            "type": {"const": EVENT_TYPE},
            "timestamp": {
                "description": "When the watcher saw the change (the same as data.observed_at).",
                "type": "string",
                "format": "date-time",
            },
            "data": data,
        },
        "required": ["type", "timestamp", "data"],
        "$defs": defs,
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def test_the_shipped_schema_is_what_the_model_generates() -> None:
    """Set IBWATCH_UPDATE_SCHEMA=1 to rewrite the file instead (see the module docstring)."""
    expected = render(generate())
    if os.environ.get("IBWATCH_UPDATE_SCHEMA") == "1":
        SCHEMA_PATH.write_text(expected, encoding="utf-8")
    assert SCHEMA_PATH.read_text(encoding="utf-8") == expected, (
        "the event schema drifted from the model: run "
        "IBWATCH_UPDATE_SCHEMA=1 pytest tests/test_event_schema.py and review the diff"
    )


def test_the_loader_returns_the_shipped_file() -> None:
    assert event_schema() == json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(event_schema())
    assert event_schema()["$id"] == SCHEMA_ID


# Realistic events, made the way the watcher makes them: snapshots through the tracker.


def snapshot(status: str, minutes: float, **extra: Any) -> ImageSnapshot:
    fields: dict[str, Any] = {
        "arn": ARN,
        "status": ImageStatus(status),
        "name": "web-base",
        "version": "1.4.0",
        "build": 7,
        "type": "AMI",
        "platform": "Linux",
        "pipeline": "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly",
        "created": T0,
        "observed_at": T0 + timedelta(minutes=minutes),
        **extra,
    }
    return ImageSnapshot(**fields)


def first_sighting() -> Transition:
    _, [event] = observe(VERSION_ARN, None, snapshot("BUILDING", 3))
    return event


def available_with_amis_and_containers() -> Transition:
    tracked, _ = observe(ARN, None, snapshot("BUILDING", 3))
    outputs = Outputs(
        amis=(
            Ami(
                region="us-east-1",
                image="ami-0a1b2c3d4e5f60718",
                name="web-base 2026-01-01T00-31-00Z",
                account_id="123456789012",
            ),
            Ami(region="eu-west-1", image="ami-0b2c3d4e5f6071829"),
        ),
        containers=(
            Container(
                region="us-east-1",
                image_uris=("123456789012.dkr.ecr.us-east-1.amazonaws.com/web-base:1.4.0-7",),
            ),
        ),
    )
    _, [event] = observe(ARN, tracked, snapshot("AVAILABLE", 31, outputs=outputs))
    return event


def failed_with_context() -> Transition:
    tracked, _ = observe(ARN, None, snapshot("TESTING", 12))
    context = {
        "imageStatus": "TESTING",
        "workflowExecutionId": "wf-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "workflowArn": "arn:aws:imagebuilder:us-east-1:aws:workflow/test/test-image/1.0.0/1",
        "failedStep": "RunImageTests",
        "componentFailure": {
            "componentArn": "arn:aws:imagebuilder:us-east-1:123456789012:component/smoke/1.0.0/1",
            "phaseName": "test",
            "stepName": "CheckNginx",
            "action": "ExecuteBash",
            "errorMessage": "exit status 1",
        },
    }
    _, [event] = observe(
        ARN,
        tracked,
        snapshot("FAILED", 19, reason="Image tests failed", failure_context=context),
    )
    return event


def in_testing_with_progress() -> Transition:
    tracked, _ = observe(ARN, None, snapshot("BUILDING", 3))
    _, [event] = observe(ARN, tracked, snapshot("TESTING", 12))
    progress = BuildProgress(
        workflow="TEST",
        workflow_name="test-image",
        workflow_execution_id="wf-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        step=2,
        steps=3,
        step_name="ApplyTestComponents",
        action="ExecuteComponents",
        step_started_at=T0 + timedelta(minutes=11),
        observed_at=T0 + timedelta(minutes=12),
    )
    return event.model_copy(update={"progress": progress})


def unknown_status() -> Transition:
    tracked, _ = observe(ARN, None, snapshot("BUILDING", 3))
    _, [event] = observe(ARN, tracked, snapshot("QUEUED_FOR_SCAN", 9))
    return event


EVENTS: dict[str, Callable[[], Transition]] = {
    "first sighting": first_sighting,
    "AVAILABLE with AMIs and containers": available_with_amis_and_containers,
    "FAILED with a failure context": failed_with_context,
    "TESTING with its running step": in_testing_with_progress,
    "unknown status": unknown_status,
}


def errors_of(envelope: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(event_schema())
    return [error.message for error in validator.iter_errors(envelope)]


@pytest.mark.parametrize("make", EVENTS.values(), ids=EVENTS.keys())
def test_a_real_envelope_validates(make: Callable[[], Transition]) -> None:
    assert errors_of(make().envelope()) == []


def test_the_events_cover_what_they_claim() -> None:
    """Guards the fixtures above: each really is the case its name says."""
    first = first_sighting().envelope()["data"]
    assert first["previous"] is None
    available = available_with_amis_and_containers().envelope()["data"]
    assert available["outputs"]["amis"]
    assert available["outputs"]["containers"]
    failed = failed_with_context().envelope()["data"]
    assert failed["current"]["failureContext"]["failedStep"] == "RunImageTests"
    assert unknown_status().envelope()["data"]["current"]["status"] == "QUEUED_FOR_SCAN"
    assert in_testing_with_progress().envelope()["data"]["progress"]["step"] == 2
    assert "progress" not in first


def test_a_progress_with_a_step_number_as_text_does_not_validate() -> None:
    envelope = copy.deepcopy(in_testing_with_progress().envelope())
    envelope["data"]["progress"]["step"] = "2"
    assert errors_of(envelope) != []


def _without_id(envelope: dict[str, Any]) -> None:
    del envelope["data"]["id"]


def _terminal_as_text(envelope: dict[str, Any]) -> None:
    envelope["data"]["terminal"] = "yes"


def _sequence_as_text(envelope: dict[str, Any]) -> None:
    envelope["data"]["sequence"] = "2"


def _other_type(envelope: dict[str, Any]) -> None:
    envelope["type"] = "image.created"


def _other_version(envelope: dict[str, Any]) -> None:
    envelope["data"]["version"] = "2"


def _empty_status(envelope: dict[str, Any]) -> None:
    envelope["data"]["current"]["status"] = ""


def _ami_without_image(envelope: dict[str, Any]) -> None:
    del envelope["data"]["outputs"]["amis"][0]["image"]


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "missing data.id": _without_id,
    "data.terminal not a boolean": _terminal_as_text,
    "data.sequence not an integer": _sequence_as_text,
    "another event type": _other_type,
    "another version": _other_version,
    "empty status": _empty_status,
    "an AMI without its id": _ami_without_image,
}


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_a_broken_envelope_does_not_validate(
    breakage: Callable[[dict[str, Any]], None],
) -> None:
    envelope = copy.deepcopy(available_with_amis_and_containers().envelope())
    breakage(envelope)
    assert errors_of(envelope) != []


def test_a_field_added_later_in_version_1_still_validates() -> None:
    """Receivers validating with this schema keep working when v1 gains a field."""
    envelope = first_sighting().envelope()
    envelope["data"]["image"]["owner_team"] = "platform"
    envelope["data"]["attempt_hint"] = 1
    assert errors_of(envelope) == []


def test_every_key_the_event_carries_is_required() -> None:
    """model_dump writes defaulted fields too, so a receiver may rely on each key."""
    data = event_schema()["properties"]["data"]
    assert set(data["required"]) == set(data["properties"]) - {"diagnostics", "progress"}
    assert set(data["properties"]) - {"diagnostics", "progress"} == set(
        first_sighting().envelope()["data"]
    )
