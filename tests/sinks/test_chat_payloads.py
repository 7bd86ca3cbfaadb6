"""Chat messages for Slack, Teams, Discord and Google Chat: golden payloads for a
fixed set of realistic events, each platform's documented structure and limits,
message templates, and delivery to a real HTTP receiver on loopback.

Regenerate the golden files with `IBWATCH_UPDATE_GOLDEN=1 pytest tests/sinks`, then
read the diff: they are what people will see in their channels.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from watcher.diagnostics import ComponentFailure, Diagnostics, FailedStep
from watcher.model import Ami, Arn, Container, ImageSnapshot, ImageStatus, Outputs, Transition
from watcher.sinks import discord, gchat, slack, teams
from watcher.sinks.base import DeliveryError
from watcher.sinks.chat import ChatMessage, ChatSink
from watcher.sinks.http import HttpPoster, json_body
from watcher.templates import (
    FIELDS,
    render_template,
    template_fields,
    validate_template,
)
from watcher.tracker import Tracked, observe

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("IBWATCH_UPDATE_GOLDEN") == "1"

ACCOUNT = "123456789012"
ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/7"
DOCKER_ARN = f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image/api-service/2.0.1/3"
DOCKER_VERSION_ARN = f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image/api-service/2.0.1"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

THREE_AMIS = Outputs(
    amis=(
        Ami(region="us-east-1", image="ami-0a1b2c3d4e5f60718", account_id=ACCOUNT),
        Ami(region="eu-west-1", image="ami-0b2c3d4e5f6071829", account_id=ACCOUNT),
        Ami(region="ap-southeast-2", image="ami-0c3d4e5f607182930", account_id=ACCOUNT),
    )
)
CONTAINERS = Outputs(
    containers=(
        Container(
            region="eu-west-1",
            image_uris=(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/api-service:2.0.1-3",),
        ),
        Container(
            region="us-east-1",
            image_uris=(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api-service:2.0.1-3",),
        ),
    )
)
TEST_FAILURE = {
    "imageStatus": "TESTING",
    "failedStep": "RunImageTests",
    "workflowExecutionId": "wf-0123456789abcdef0",
    "componentFailure": {
        "componentArn": (
            f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:component/nginx-smoke-test/1.0.2/1"
        ),
        "phaseName": "test",
        "stepName": "CurlHealthz",
        "action": "ExecuteBash",
        "errorMessage": "curl: (7) Failed to connect to localhost port 80: Connection refused",
    },
}


STEP_MESSAGE = (
    "Workflow step RunTests failed: component nginx-smoke-test/1.0.2/1 failed in "
    "phase 'test', step 'CurlHealthz' (ExecuteBash), exit code 7.\n"
    "Command: curl --fail --silent --show-error --max-time 5 http://localhost/healthz\n"
    "stderr: curl: (7) Failed to connect to localhost port 80 after 0 ms: Couldn't "
    "connect to server\n"
    "Hint: nginx is installed but not enabled; `systemctl enable --now nginx` in the "
    "build phase would start it.\n"
    + "".join(
        f"Retry {n}/10: GET http://localhost/healthz -> connection refused "
        f"(waited {n * 3}s; the service unit nginx.service is inactive (dead))\n"
        for n in range(1, 11)
    )
    + "Giving up after 10 attempts (30s). The instance is left for inspection until "
    "the workflow's cleanup step terminates it."
)
"""A step's own runtime message: multi-line, longer than the largest budget."""

LOG_TAIL = (
    "2026-01-01T09:27:41.118Z Document arn:aws:imagebuilder:us-east-1:123456789012:"
    "component/nginx-smoke-test/1.0.2/1",
    "2026-01-01T09:27:41.120Z Phase test: 2 steps",
    *(
        f"2026-01-01T09:27:{42 + n // 4:02d}.{n * 37 % 1000:03d}Z Stdout: "
        f"[{n:02d}] systemd: nginx.service - A high performance web server & reverse proxy"
        for n in range(48)
    ),
    "2026-01-01T09:27:54.301Z Stdout: <html><body>503 Service Unavailable</body></html>",
    "2026-01-01T09:27:54.302Z Stdout: ```not a fence``` *not bold* _not italic_ <!here>",
    "2026-01-01T09:27:54.310Z Stdout: api_key=[REDACTED] user=builder",
    "2026-01-01T09:27:55.002Z Stderr: curl: (7) Failed to connect to localhost port 80 "
    "after 0 ms: Couldn't connect to server",
    "2026-01-01T09:27:55.003Z Step CurlHealthz failed with exit code 7",
    "2026-01-01T09:27:55.004Z Phase test failed: 1 of 2 steps failed",
    "2026-01-01T09:27:55.010Z Document nginx-smoke-test/1.0.2/1 failed!",
)
"""The end of a build log as the diagnostics carry it: already redacted, with the
characters each platform's markup reads."""

FULL_DIAGNOSTICS = Diagnostics(
    failed_step=FailedStep(
        workflow="TEST",
        workflow_name="test-image",
        workflow_arn=(f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:workflow/test/test-image/1.0.0/1"),
        workflow_execution_id="wf-0123456789abcdef0",
        step_execution_id="step-0123456789abcdef0",
        name="RunTests",
        action="ExecuteComponents",
        message=STEP_MESSAGE,
    ),
    component_failure=ComponentFailure(
        component_arn=f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:component/nginx-smoke-test/1.0.2/1",
        phase_name="test",
        step_name="CurlHealthz",
        action="ExecuteBash",
        error_message="curl: (7) Failed to connect to localhost port 80: Connection refused",
    ),
    distribution_error=None,
    region_failures=(),
    log_group="/aws/imagebuilder/web-base",
    log_stream="1.4.0/7",
    console_url=(
        "https://us-east-1.console.aws.amazon.com/imagebuilder/home?region=us-east-1"
        "#/images/arn%3Aaws%3Aimagebuilder%3Aus-east-1%3A123456789012%3Aimage%2Fweb-base"
        "%2F1.4.0/7/details"
    ),
    log_tail=LOG_TAIL,
)
"""Everything the diagnostics can say."""

PARTIAL_DIAGNOSTICS = Diagnostics(
    failed_step=None,
    component_failure=None,
    distribution_error=None,
    region_failures=(),
    log_group="/aws/imagebuilder/web-base",
    log_stream="1.4.0/7",
    console_url=FULL_DIAGNOSTICS.console_url,
    log_tail=None,
)
"""What is left when the workflow look-ups were denied and the log was not read."""


def snapshot(status: str, minutes: float, *, arn: str = ARN, **extra: Any) -> ImageSnapshot:
    parsed = Arn.parse(arn)
    fields: dict[str, Any] = {
        "arn": arn,
        "status": ImageStatus(status),
        "name": parsed.name,
        "version": parsed.version,
        "build": parsed.build,
        "type": "AMI",
        "platform": "Linux",
        "pipeline": "web-base-nightly",
        "created": T0,
        "tests_enabled": True,  # as GetImage says: TESTING is then a stage it passed
        "observed_at": T0 + timedelta(minutes=minutes),
    }
    fields.update(extra)
    return ImageSnapshot(**fields)


def transition(*snapshots: ImageSnapshot, watched: str | None = None) -> Transition:
    """The event the real tracker emits for the last of `snapshots`."""
    tracked: Tracked | None = None
    events: list[Transition] = []
    for snap in snapshots:
        tracked, events = observe(watched or snap.arn, tracked, snap)
    [event] = events
    return event


def with_diagnostics(event: Transition, diagnostics: Diagnostics) -> Transition:
    """`event` as the engine sends it once it has gathered the build's diagnostics."""
    return event.model_copy(update={"diagnostics": diagnostics})


def docker(status: str, minutes: float, **extra: Any) -> ImageSnapshot:
    return snapshot(
        status, minutes, arn=DOCKER_ARN, type="DOCKER", pipeline="api-service-release", **extra
    )


EVENTS: dict[str, Callable[[], Transition]] = {
    "first_sighting_pending": lambda: transition(snapshot("PENDING", 0.5)),
    "building_to_testing": lambda: transition(snapshot("BUILDING", 3), snapshot("TESTING", 21)),
    "building_to_available": lambda: transition(
        snapshot("BUILDING", 3), snapshot("AVAILABLE", 42, outputs=THREE_AMIS)
    ),
    "docker_available": lambda: transition(
        docker("DISTRIBUTING", 12),
        docker("AVAILABLE", 15, outputs=CONTAINERS),
        watched=DOCKER_VERSION_ARN,
    ),
    "testing_to_failed": lambda: transition(
        snapshot("TESTING", 21),
        snapshot(
            "FAILED",
            29,
            reason="Image testing failed: component 'nginx-smoke-test' step 'CurlHealthz' "
            "exited with code 7",
            failure_context=TEST_FAILURE,
        ),
    ),
    "testing_to_failed_diagnosed": lambda: with_diagnostics(
        EVENTS["testing_to_failed"](), FULL_DIAGNOSTICS
    ),
    "testing_to_failed_partly_diagnosed": lambda: with_diagnostics(
        EVENTS["testing_to_failed"](), PARTIAL_DIAGNOSTICS
    ),
    "cancelled": lambda: transition(
        snapshot("BUILDING", 3),
        snapshot("CANCELLED", 9, reason="Cancelled by user: superseded by 1.4.0/8"),
    ),
    "available_to_deprecated": lambda: transition(
        snapshot("AVAILABLE", 42, outputs=THREE_AMIS),
        snapshot("DEPRECATED", 60 * 24 * 90, reason="Deprecated by lifecycle policy keep-last-5"),
    ),
    "unknown_status": lambda: transition(snapshot("BUILDING", 3), snapshot("QUEUED_FOR_SCAN", 20)),
}

PLATFORMS: dict[str, ModuleType] = {
    "slack": slack,
    "teams": teams,
    "discord": discord,
    "gchat": gchat,
}


# Each platform's documented structure and limits, checked independently of the
# renderers' own constants.


def check_slack(payload: dict[str, Any]) -> None:
    """api.slack.com / docs.slack.dev: Block Kit blocks and incoming-webhook text."""
    assert set(payload) == {"text", "blocks"}
    assert isinstance(payload["text"], str)
    assert 0 < len(payload["text"]) <= 4000, "Slack asks for 4,000 at most (40,000 hard)"
    blocks = payload["blocks"]
    assert 1 <= len(blocks) <= 50
    total = 0
    for block in blocks:
        kind = block["type"]
        assert kind in {"header", "section", "context", "divider"}, kind
        if kind == "header":
            assert set(block) == {"type", "text"}
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= 150
            total += len(block["text"]["text"])
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] in {"mrkdwn", "plain_text"}
                assert 0 < len(block["text"]["text"]) <= 3000
                total += len(block["text"]["text"])
            for item in block.get("fields", []):
                assert item["type"] in {"mrkdwn", "plain_text"}
                assert 0 < len(item["text"]) <= 2000
                total += len(item["text"])
            assert len(block.get("fields", [])) <= 10
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            for element in block["elements"]:
                assert element["type"] in {"mrkdwn", "plain_text"}
                assert 0 < len(element["text"]) <= 3000
                total += len(element["text"])
    for block in blocks:
        for item in [block.get("text"), *block.get("fields", ()), *block.get("elements", ())]:
            if isinstance(item, dict):
                assert_fences_balanced(item["text"])
    # Slack answers msg_blocks_too_long from about 11,000 characters of blocks.
    assert total <= 8000


def check_teams(payload: dict[str, Any]) -> None:
    """learn.microsoft.com: the Workflows/incoming-webhook envelope around one
    Adaptive Card, under the documented ~28 KB message limit."""
    assert set(payload) == {"type", "attachments"}
    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert set(attachment) == {"contentType", "contentUrl", "content"}
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"], "a card with a body"
    for element in teams_elements(card["body"]):
        assert element["type"] in TEAMS_ELEMENTS, element["type"]
        if element["type"] == "RichTextBlock":
            assert element["inlines"]
            for run in element["inlines"]:
                assert run["type"] == "TextRun"
                assert isinstance(run["text"], str)
                assert run["text"], "an empty TextRun takes up no line"
        elif element["type"] == "ActionSet":
            for action in element["actions"]:
                assert action["type"] == "Action.OpenUrl"
                assert action["title"]
                assert action["url"].startswith("https://")
        elif element["type"] == "Container":
            assert element["items"]
        elif element["type"] == "TextBlock":
            assert isinstance(element["text"], str)
            assert element["text"]
            assert element.get("color", "Default") in {
                "Default",
                "Dark",
                "Light",
                "Accent",
                "Good",
                "Warning",
                "Attention",
            }
        else:
            assert element["facts"]
            for fact in element["facts"]:
                assert set(fact) == {"title", "value"}
                assert isinstance(fact["title"], str)
                assert isinstance(fact["value"], str)
    assert card["body"][0]["weight"] == "Bolder", "the title leads"
    assert len(json_body(payload)) <= 28_000
    assert len(json_body(payload)) <= teams.SIZE_BUDGET


TEAMS_ELEMENTS = {"TextBlock", "FactSet", "RichTextBlock", "ActionSet", "Container"}
"""Adaptive Card 1.4 elements the renderer uses: TextBlock and FactSet (1.0),
Container (1.0), RichTextBlock with TextRuns and ActionSet (1.2)."""


def teams_elements(elements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`elements` and everything in their Containers, in order."""
    flat: list[dict[str, Any]] = []
    for element in elements:
        flat.append(element)
        if element["type"] == "Container":
            flat.extend(teams_elements(element["items"]))
    return flat


def assert_fences_balanced(text: str) -> None:
    """Every ``` code block in `text` is closed, so nothing after it turns into code."""
    assert text.count("```") % 2 == 0, text


def check_discord(payload: dict[str, Any]) -> None:
    """discord.com/developers/docs: Execute Webhook params and embed limits."""
    assert set(payload) <= {"content", "embeds", "allowed_mentions"}
    assert payload.get("content") or payload.get("embeds")
    assert len(payload.get("content", "")) <= 2000
    embeds = payload.get("embeds", [])
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert set(embed) <= {
            "title",
            "description",
            "color",
            "fields",
            "footer",
            "timestamp",
            "author",
            "url",
        }
        assert len(embed.get("title", "")) <= 256
        assert len(embed.get("description", "")) <= 4096
        assert isinstance(embed["color"], int)
        assert 0 <= embed["color"] <= 0xFFFFFF
        datetime.fromisoformat(embed["timestamp"])
        assert len(embed["footer"]["text"]) <= 2048
        fields = embed.get("fields", [])
        assert len(fields) <= 25
        for item in fields:
            assert 0 < len(item["name"]) <= 256
            assert 0 < len(item["value"]) <= 1024
            assert isinstance(item.get("inline", False), bool)
            assert_fences_balanced(item["value"])
        assert_fences_balanced(embed.get("description", ""))
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        total += len(embed["footer"]["text"]) + sum(
            len(f["name"]) + len(f["value"]) for f in fields
        )
    assert total <= 6000
    if "allowed_mentions" in payload:
        assert payload["allowed_mentions"] == {"parse": []}


def check_gchat(payload: dict[str, Any]) -> None:
    """developers.google.com/workspace/chat: message ≤ 32,000 bytes, cardsV2 with
    header and sections of widgets (≤ 100 per card), a thread key."""
    assert set(payload) == {"text", "cardsV2", "thread"}
    assert isinstance(payload["text"], str)
    assert payload["text"]
    assert len(json_body(payload)) <= 32_000
    [card] = payload["cardsV2"]
    assert isinstance(card["cardId"], str)
    assert card["cardId"]
    assert card["card"]["header"]["title"]
    widgets = 0
    for section in card["card"]["sections"]:
        assert section["widgets"], "no empty sections"
        for widget in section["widgets"]:
            [(kind, content)] = widget.items()
            assert kind in {"decoratedText", "textParagraph", "buttonList"}, kind
            if kind == "buttonList":
                for button in content["buttons"]:
                    assert button["text"]
                    assert button["onClick"]["openLink"]["url"].startswith("https://")
            else:
                assert isinstance(content["text"], str)
                assert content["text"]
            widgets += 1
        if section.get("collapsible"):
            assert 0 < section["uncollapsibleWidgetsCount"] < len(section["widgets"])
    assert widgets <= 100
    assert_fences_balanced(payload["text"])
    key = payload["thread"]["threadKey"]
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,4000}", key), key


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "slack": check_slack,
    "teams": check_teams,
    "discord": check_discord,
    "gchat": check_gchat,
}


def all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


# Golden files: what each platform receives for each event.


@pytest.mark.parametrize("case", sorted(EVENTS))
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_payload_matches_its_golden_file(platform: str, case: str) -> None:
    payload = PLATFORMS[platform].render(EVENTS[case]())
    path = GOLDEN / f"{platform}.{case}.json"
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}; run with IBWATCH_UPDATE_GOLDEN=1"
    assert json.loads(path.read_text(encoding="utf-8")) == payload, (
        f"{path.name} differs; if the change is intended, regenerate with "
        "IBWATCH_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("case", sorted(EVENTS))
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_payload_has_the_platforms_documented_structure(platform: str, case: str) -> None:
    CHECKS[platform](PLATFORMS[platform].render(EVENTS[case]()))


# What the messages say: the same thing everywhere.


@pytest.mark.parametrize(
    ("case", "title", "outcome"),
    [
        ("first_sighting_pending", "web-base 1.4.0/7 is PENDING", "progress"),
        ("building_to_testing", "web-base 1.4.0/7: BUILDING → TESTING", "progress"),
        ("building_to_available", "web-base 1.4.0/7 is AVAILABLE in 3 regions", "success"),
        ("docker_available", "api-service 2.0.1/3 is AVAILABLE in 2 regions", "success"),
        ("testing_to_failed", "web-base 1.4.0/7 FAILED in TESTING", "failure"),
        ("testing_to_failed_diagnosed", "web-base 1.4.0/7 FAILED in TESTING", "failure"),
        ("testing_to_failed_partly_diagnosed", "web-base 1.4.0/7 FAILED in TESTING", "failure"),
        ("cancelled", "web-base 1.4.0/7 was CANCELLED", "warning"),
        ("available_to_deprecated", "web-base 1.4.0/7 is DEPRECATED", "warning"),
        ("unknown_status", "web-base 1.4.0/7: BUILDING → QUEUED_FOR_SCAN", "progress"),
    ],
)
def test_title_and_outcome_say_what_happened(case: str, title: str, outcome: str) -> None:
    message = ChatMessage.from_event(EVENTS[case]())
    assert (message.title, message.outcome) == (title, outcome)


@pytest.mark.parametrize("case", sorted(EVENTS))
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_platform_carries_title_status_arn_and_outputs(platform: str, case: str) -> None:
    event = EVENTS[case]()
    message = ChatMessage.from_event(event)
    text = all_text(PLATFORMS[platform].render(event))
    assert message.title in text
    assert message.status_line in text
    assert event.image.arn in text
    for item in (*message.amis, *message.containers):
        assert item.value in text


def test_a_skip_is_named_in_the_status_line() -> None:
    message = ChatMessage.from_event(EVENTS["building_to_available"]())
    assert message.status_line == "BUILDING → AVAILABLE (passed TESTING, DISTRIBUTING)"


def test_a_failure_names_reason_step_component_and_error() -> None:
    message = ChatMessage.from_event(EVENTS["testing_to_failed"]())
    assert message.reason is not None
    assert message.reason.startswith("Image testing failed")
    assert [(f.label, f.value) for f in message.failure] == [
        ("Failed step", "RunImageTests"),
        ("Component", "nginx-smoke-test 1.0.2/1"),
        ("Component step", "phase test, step CurlHealthz, action ExecuteBash"),
        ("Error", "curl: (7) Failed to connect to localhost port 80: Connection refused"),
    ]


def test_a_failure_is_never_a_json_dump() -> None:
    for platform in PLATFORMS.values():
        text = all_text(platform.render(EVENTS["testing_to_failed"]()))
        assert "workflowExecutionId" not in text
        assert "componentFailure" not in text
        assert "wf-0123456789abcdef0" not in text


def test_distribution_failures_are_listed_per_region() -> None:
    event = transition(
        snapshot("DISTRIBUTING", 30),
        snapshot(
            "FAILED",
            34,
            reason="Distribution failed",
            failure_context={
                "imageStatus": "DISTRIBUTING",
                "failedStep": "Distribute",
                "distributionFailure": {
                    "errorMessage": "1 of 2 Regions failed",
                    "regionFailures": [
                        {
                            "region": "eu-west-1",
                            "status": "FAILED",
                            "errorMessage": "AMI quota exceeded",
                        }
                    ],
                },
            },
        ),
    )
    message = ChatMessage.from_event(event)
    assert message.title == "web-base 1.4.0/7 FAILED in DISTRIBUTING"
    assert ("Failed in eu-west-1", "FAILED: AMI quota exceeded") in [
        (f.label, f.value) for f in message.failure
    ]


def test_an_unknown_status_is_explained_not_hidden() -> None:
    message = ChatMessage.from_event(EVENTS["unknown_status"]())
    assert message.note is not None
    assert "QUEUED_FOR_SCAN" in message.note


def test_a_version_arn_being_watched_is_shown() -> None:
    message = ChatMessage.from_event(EVENTS["docker_available"]())
    assert ("Watching", DOCKER_VERSION_ARN) in [(f.label, f.value) for f in message.facts]


def test_slack_escapes_its_control_characters() -> None:
    event = transition(
        snapshot("BUILDING", 3),
        snapshot("FAILED", 9, reason="exit <1> & <!channel>"),
    )
    text = all_text(slack.render(event))
    assert "<!channel>" not in text
    assert "exit &lt;1&gt; &amp; &lt;!channel&gt;" in text


def test_gchat_escapes_card_html() -> None:
    event = transition(snapshot("BUILDING", 3), snapshot("FAILED", 9, reason="<b>bold</b> & co"))
    payload = gchat.render(event)
    widgets = [w for s in payload["cardsV2"][0]["card"]["sections"] for w in s["widgets"]]
    texts = [w["decoratedText"]["text"] for w in widgets if "decoratedText" in w]
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in texts


def test_discord_pings_nobody_on_its_own() -> None:
    payload = discord.render(EVENTS["testing_to_failed"]())
    assert payload["allowed_mentions"] == {"parse": []}


def test_teams_title_colour_follows_the_outcome() -> None:
    colours = {
        case: teams.render(EVENTS[case]())["attachments"][0]["content"]["body"][0]["color"]
        for case in ("building_to_available", "testing_to_failed", "cancelled", "unknown_status")
    }
    assert colours == {
        "building_to_available": "Good",
        "testing_to_failed": "Attention",
        "cancelled": "Warning",
        "unknown_status": "Default",
    }


# Thread keys and URLs.


def test_gchat_thread_key_is_one_per_build_and_stable() -> None:
    first = gchat.render(EVENTS["building_to_testing"]())["thread"]["threadKey"]
    again = gchat.render(EVENTS["testing_to_failed"]())["thread"]["threadKey"]
    other = gchat.thread_key(ARN.replace("/7", "/8"))
    elsewhere = gchat.thread_key(ARN.replace("us-east-1", "eu-west-1"))
    assert first == again == gchat.thread_key(ARN)
    assert len({first, other, elsewhere}) == 3
    assert first.startswith("ibwatch-web-base-1.4.0-7-")


def test_gchat_url_replies_in_thread_and_keeps_key_and_token() -> None:
    url = gchat.reply_url(
        "https://chat.googleapis.com/v1/spaces/AAA/messages?key=K-1&token=T%3D2&threadKey=old"
    )
    assert url == (
        "https://chat.googleapis.com/v1/spaces/AAA/messages?key=K-1&token=T%3D2"
        "&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
    )


def test_discord_url_waits_for_the_message_to_be_saved() -> None:
    assert (
        discord.wait_url("https://discord.com/api/webhooks/1/tok?thread_id=9&wait=false")
        == "https://discord.com/api/webhooks/1/tok?thread_id=9&wait=true"
    )


# Limits under stress: nothing AWS sends can make a payload invalid.


def forty_regions(**extra: Any) -> Transition:
    """AVAILABLE in 40 regions, each with an AMI and two container URIs."""
    regions = [f"xx-region{i}-1" for i in range(40)]
    outputs = Outputs(
        amis=tuple(Ami(region=r, image=f"ami-{i:017x}") for i, r in enumerate(regions)),
        containers=tuple(
            Container(
                region=r,
                image_uris=(
                    f"{ACCOUNT}.dkr.ecr.{r}.amazonaws.com/web-base:1.4.0-7",
                    f"{ACCOUNT}.dkr.ecr.{r}.amazonaws.com/web-base:latest",
                ),
            )
            for r in regions
        ),
    )
    return transition(snapshot("BUILDING", 3), snapshot("AVAILABLE", 42, outputs=outputs, **extra))


def huge_available() -> Transition:
    return forty_regions(
        reason="lorem ipsum <&> " * 6_400,  # ~100 KB
        failure_context={"componentFailure": {"errorMessage": "e" * 100_000}},
    )


def huge_failure() -> Transition:
    return transition(
        snapshot("TESTING", 21),
        snapshot(
            "FAILED",
            29,
            reason="x" * 100_000,
            failure_context={
                "imageStatus": "TESTING",
                "failedStep": "s" * 10_000,
                "componentFailure": {
                    "componentArn": "c" * 5_000,
                    "stepName": "n" * 5_000,
                    "errorMessage": "boom " * 20_000,
                },
                "distributionFailure": {
                    "errorMessage": "d" * 50_000,
                    "regionFailures": [
                        {"region": f"r{i}", "status": "FAILED", "errorMessage": "m" * 1_000}
                        for i in range(256)
                    ],
                },
            },
        ),
    )


@pytest.mark.parametrize("template", [None, "$reason $amis $containers"])
@pytest.mark.parametrize("make", [huge_available, huge_failure])
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_huge_events_still_fit_every_limit(
    platform: str, make: Callable[[], Transition], template: str | None
) -> None:
    """A 100 KB reason, 100 KB error messages and 40 regions of AMIs and containers
    are cut with "…" to fit; what happened and the ARN always survive."""
    event = make()
    payload = PLATFORMS[platform].render(event, template)
    CHECKS[platform](payload)
    text = all_text(payload)
    message = ChatMessage.from_event(event)
    assert message.label in text
    assert message.status_line in text
    assert event.image.arn in text
    assert "…" in text


def test_forty_regions_of_amis_are_all_shown_where_room_allows() -> None:
    event = forty_regions()
    assert event.outputs is not None
    for platform in PLATFORMS.values():
        payload = platform.render(event)
        text = all_text(payload)
        for ami in event.outputs.amis:
            assert ami.image in text, platform.__name__


# Templates.


def test_template_fields_are_flat_documented_strings() -> None:
    fields = template_fields(EVENTS["building_to_available"]())
    assert set(fields) == set(FIELDS)
    assert fields == {
        "name": "web-base",
        "version": "1.4.0/7",
        "build": "7",
        "arn": ARN,
        "watched": ARN,
        "region": "us-east-1",
        "account": ACCOUNT,
        "pipeline": "web-base-nightly",
        "type": "AMI",
        "platform": "Linux",
        "status": "AVAILABLE",
        "previous": "BUILDING",
        "reason": "",
        "failed_step": "",
        "failed_in": "",
        "skipped": "TESTING, DISTRIBUTING",
        "in_previous_status": "39m00s",
        "total": "42m00s",
        "amis": "us-east-1=ami-0a1b2c3d4e5f60718,eu-west-1=ami-0b2c3d4e5f6071829,"
        "ap-southeast-2=ami-0c3d4e5f607182930",
        "containers": "",
        "summary": "web-base 1.4.0/7 BUILDING → AVAILABLE after 39m00s "
        "(passed TESTING, DISTRIBUTING) in 3 regions",
        "id": fields["id"],
    }


def test_template_fields_of_a_failure_and_a_first_sighting() -> None:
    failed = template_fields(EVENTS["testing_to_failed"]())
    assert (failed["failed_step"], failed["failed_in"], failed["previous"]) == (
        "RunImageTests",
        "TESTING",
        "TESTING",
    )
    first = template_fields(EVENTS["first_sighting_pending"]())
    assert (first["previous"], first["in_previous_status"], first["total"]) == ("", "", "30s")
    docker_fields = template_fields(EVENTS["docker_available"]())
    assert docker_fields["containers"] == (
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/api-service:2.0.1-3,"
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api-service:2.0.1-3"
    )


def test_an_unknown_placeholder_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \$nmae; known: \$name, ") as info:
        validate_template("$nmae is ${status}")
    assert "$summary" in str(info.value)


def test_several_unknown_placeholders_are_all_named() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholders \$bar, \$foo;"):
        validate_template("$foo ${bar} $name")


def test_a_stray_dollar_is_rejected_with_its_position() -> None:
    with pytest.raises(ValueError, match=r"line 2, column 6 .*\$\$ for a literal dollar"):
        validate_template("$name\ncost $5")


def test_a_valid_template_is_returned_unchanged() -> None:
    text = "$$ ${name}-$version: $summary"
    assert validate_template(text) == text


def test_rendering_fills_values_and_leaves_literal_dollars() -> None:
    event = EVENTS["testing_to_failed"]()
    assert render_template("$$ ${name}s $status in $failed_in", event) == (
        "$ web-bases FAILED in TESTING"
    )


def test_rendering_never_raises_even_on_an_unvalidated_template() -> None:
    assert render_template("$nope $ ${", EVENTS["cancelled"]()) == "$nope $ ${"


TEMPLATE = "$name $version is $status after $in_previous_status <!here>"


def test_slack_template_replaces_text_and_opens_the_message() -> None:
    payload = slack.render(EVENTS["building_to_testing"](), TEMPLATE)
    expected = "web-base 1.4.0/7 is TESTING after 18m00s <!here>"
    assert payload["text"] == expected
    assert payload["blocks"][1] == {"type": "section", "text": {"type": "mrkdwn", "text": expected}}


def test_slack_template_values_are_escaped_but_its_own_markup_is_kept() -> None:
    event = transition(snapshot("BUILDING", 3), snapshot("FAILED", 9, reason="a<b"))
    assert slack.render(event, "<!here> $reason")["text"] == "<!here> a&lt;b"


def test_teams_template_shows_under_the_title() -> None:
    body = teams.render(EVENTS["building_to_testing"](), TEMPLATE)["attachments"][0]["content"][
        "body"
    ]
    assert body[1]["text"] == "web-base 1.4.0/7 is TESTING after 18m00s <!here>"


def test_discord_template_replaces_content_and_may_mention() -> None:
    payload = discord.render(EVENTS["building_to_testing"](), "@here $summary")
    assert payload["content"] == "@here web-base 1.4.0/7 BUILDING → TESTING after 18m00s"
    assert "allowed_mentions" not in payload


def test_gchat_template_replaces_text() -> None:
    payload = gchat.render(EVENTS["building_to_testing"](), "<users/all> $name is $status")
    assert payload["text"] == "<users/all> web-base is TESTING"


@pytest.mark.parametrize(
    "sink_class",
    [slack.SlackSink, teams.TeamsSink, discord.DiscordSink, gchat.GChatSink],
)
async def test_a_sink_refuses_an_unknown_placeholder_when_built(
    sink_class: type[ChatSink],
) -> None:
    async with HttpPoster() as poster:
        with pytest.raises(ValueError, match=r"\$colour"):
            sink_class(url="https://example.invalid/hook", poster=poster, template="$colour")


# Delivery to a real receiver on loopback.


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poster trusts proxy variables; none may sit between it and loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass
class Received:
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    answers: list[web.Response] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        state.received.append(
            Received(request.path, dict(request.query), json.loads(await request.read()))
        )
        return state.answers.pop(0) if state.answers else web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        state.url = str(server.make_url(""))
        yield state


@pytest.mark.parametrize(
    ("sink_class", "module", "path"),
    [
        (slack.SlackSink, slack, "/services/T0/B0/s3cret"),
        (teams.TeamsSink, teams, "/workflows/abc/triggers/manual/paths/invoke?sig=s3cret"),
        (discord.DiscordSink, discord, "/api/webhooks/1/s3cret"),
        (gchat.GChatSink, gchat, "/v1/spaces/AAA/messages?key=K&token=s3cret"),
    ],
)
async def test_the_receiver_gets_exactly_the_rendered_payload(
    receiver: Receiver, sink_class: type[ChatSink], module: ModuleType, path: str
) -> None:
    event = EVENTS["testing_to_failed"]()
    async with HttpPoster() as poster:
        sink = sink_class(url=receiver.url + path, poster=poster, template="$summary")
        await sink.send(event)
    [arrival] = receiver.received
    assert arrival.body == module.render(event, "$summary")
    assert "s3cret" not in repr(sink)


async def test_gchat_posts_in_the_builds_thread_keeping_key_and_token(
    receiver: Receiver,
) -> None:
    async with HttpPoster() as poster:
        sink = gchat.GChatSink(
            url=receiver.url + "/v1/spaces/AAA/messages?key=K&token=T", poster=poster
        )
        await sink.send(EVENTS["building_to_testing"]())
        await sink.send(EVENTS["testing_to_failed"]())
    assert [r.path for r in receiver.received] == ["/v1/spaces/AAA/messages"] * 2
    for arrival in receiver.received:
        assert arrival.query == {
            "key": "K",
            "token": "T",
            "messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD",
        }
        assert arrival.body["thread"] == {"threadKey": gchat.thread_key(ARN)}


async def test_discord_posts_with_wait_true(receiver: Receiver) -> None:
    async with HttpPoster() as poster:
        sink = discord.DiscordSink(url=receiver.url + "/api/webhooks/1/tok", poster=poster)
        await sink.send(EVENTS["cancelled"]())
    assert receiver.received[0].query == {"wait": "true"}


async def test_a_discord_429_says_how_long_to_wait_in_its_body(receiver: Receiver) -> None:
    receiver.answers.append(
        web.json_response(
            {"message": "You are being rate limited.", "retry_after": 1.5, "global": False},
            status=429,
        )
    )
    async with HttpPoster() as poster:
        sink = discord.DiscordSink(url=receiver.url + "/api/webhooks/1/tok", poster=poster)
        with pytest.raises(DeliveryError) as info:
            await sink.send(EVENTS["cancelled"]())
    assert (info.value.retryable, info.value.retry_after, info.value.status) == (True, 1.5, 429)


async def test_a_discord_429_without_retry_after_uses_the_reset_header(
    receiver: Receiver,
) -> None:
    receiver.answers.append(
        web.json_response(
            {"message": "You are being rate limited."},
            status=429,
            headers={"X-RateLimit-Reset-After": "2.25"},
        )
    )
    async with HttpPoster() as poster:
        sink = discord.DiscordSink(url=receiver.url + "/api/webhooks/1/tok", poster=poster)
        with pytest.raises(DeliveryError) as info:
            await sink.send(EVENTS["cancelled"]())
    assert (info.value.retryable, info.value.retry_after) == (True, 2.25)


def test_discord_retry_after_ignores_other_statuses_and_bad_bodies() -> None:
    read = discord.retry_after_from_body
    assert read(500, {}, b'{"retry_after": 3}') is None
    assert read(429, {}, b"<html>slow down</html>") is None
    assert read(429, {"x-ratelimit-reset-after": "soon"}, b"{}") is None
    assert read(429, {}, b'{"retry_after": 0.25}') == 0.25
