"""Why a build failed, in chat: the failing step and its own message, links to the
build's log stream and console page, and the end of its build log in a code block;
cut to each platform's limits with the end of the log kept, code blocks closed and
markup escaped. Every other event renders exactly as before.

The golden payloads of `testing_to_failed_diagnosed` and
`testing_to_failed_partly_diagnosed` are in `test_chat_payloads.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sinks.test_chat_payloads import (
    ARN,
    CHECKS,
    EVENTS,
    FULL_DIAGNOSTICS,
    LOG_TAIL,
    PARTIAL_DIAGNOSTICS,
    PLATFORMS,
    STEP_MESSAGE,
    T0,
    all_text,
    huge_failure,
    with_diagnostics,
)
from watcher.build_progress import BuildProgress
from watcher.diagnostics import Diagnostics, FailedStep
from watcher.model import ImageStatus, Transition
from watcher.sinks import discord, gchat, slack, teams
from watcher.sinks.chat import ChatMessage
from watcher.sinks.failure_details import (
    ELLIPSIS,
    ZWSP,
    FailureDetails,
    code_safe,
    display_lines,
    head_within,
    link_url,
    logs_console_url,
    tail_within,
)

LOGS_URL = (
    "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
    "#logsV2:log-groups/log-group/$252Faws$252Fimagebuilder$252Fweb-base"
    "/log-events/1.4.0$252F7"
)


def diagnosed(
    *, message: str | None = STEP_MESSAGE, tail: tuple[str, ...] | None = LOG_TAIL, **step: Any
) -> Transition:
    """The FAILED event with full diagnostics, its step message, log tail and step
    fields replaced."""
    assert FULL_DIAGNOSTICS.failed_step is not None
    failed_step = FULL_DIAGNOSTICS.failed_step.model_copy(update={"message": message, **step})
    diagnostics = FULL_DIAGNOSTICS.model_copy(update={"failed_step": failed_step, "log_tail": tail})
    return with_diagnostics(EVENTS["testing_to_failed"](), diagnostics)


# The CloudWatch Logs console link.


def test_logs_link_opens_the_builds_stream_in_its_region() -> None:
    """`/` in the group and stream is written `$252F`, as the console writes it."""
    assert logs_console_url(ARN, "/aws/imagebuilder/web-base", "1.4.0/7") == LOGS_URL


def test_logs_link_double_escapes_every_special_character_as_the_console_does() -> None:
    """A Lambda stream's `[$LATEST]` is `$255B$2524LATEST$255D` in console links; a
    space is `$2520` (not `+`, which the console would not read back)."""
    url = logs_console_url(ARN, "/team logs/#1", "2020/10/27/[$LATEST]abc")
    assert url is not None
    group, stream = url.split("#logsV2:log-groups/log-group/")[1].split("/log-events/")
    assert group == "$252Fteam$2520logs$252F$25231"
    assert stream == "2020$252F10$252F27$252F$255B$2524LATEST$255Dabc"


@pytest.mark.parametrize(
    ("arn", "start"),
    [
        (
            "arn:aws-us-gov:imagebuilder:us-gov-west-1:123456789012:image/x/1.0.0/1",
            "https://us-gov-west-1.console.amazonaws-us-gov.com/cloudwatch/home"
            "?region=us-gov-west-1#",
        ),
        (
            "arn:aws-cn:imagebuilder:cn-north-1:123456789012:image/x/1.0.0/1",
            "https://cn-north-1.console.amazonaws.cn/cloudwatch/home?region=cn-north-1#",
        ),
    ],
)
def test_logs_link_uses_the_partitions_console(arn: str, start: str) -> None:
    url = logs_console_url(arn, "/aws/imagebuilder/x", "1.0.0/1")
    assert url is not None
    assert url.startswith(start)


def test_no_logs_link_without_a_known_console_or_a_valid_arn() -> None:
    iso = "arn:aws-iso:imagebuilder:us-iso-east-1:123456789012:image/x/1.0.0/1"
    assert logs_console_url(iso, "/aws/imagebuilder/x", "1.0.0/1") is None
    assert logs_console_url("not-an-arn", "/aws/imagebuilder/x", "1.0.0/1") is None


def test_links_are_https_only_and_cannot_break_out_of_link_markup() -> None:
    assert link_url("javascript:alert(1)") is None
    assert link_url("http://example.com/") is None
    assert link_url("https://example.com/" + "a" * 3000) is None
    assert link_url("https://x.test/a b(c)|d<e>f%20g") == (
        "https://x.test/a%20b%28c%29%7Cd%3Ce%3Ef%20g"
    )
    assert link_url(LOGS_URL) == LOGS_URL


# Which events say more: a transition into FAILED that carries diagnostics, only.


def test_only_a_failed_event_with_diagnostics_has_failure_details() -> None:
    with_details = {
        case for case, make in EVENTS.items() if FailureDetails.from_event(make()) is not None
    }
    assert with_details == {"testing_to_failed_diagnosed", "testing_to_failed_partly_diagnosed"}


PROGRESS = BuildProgress(
    workflow="BUILD",
    workflow_name="build-image",
    workflow_execution_id="wf-0123456789abcdef0",
    step=2,
    steps=4,
    step_name="BuildImage",
    action="ExecuteComponents",
    step_started_at=T0,
    observed_at=T0 + timedelta(minutes=5),
)


@pytest.mark.parametrize(
    "case", sorted(c for c in EVENTS if not c.startswith("testing_to_failed_"))
)
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_other_events_render_exactly_as_before(platform: str, case: str) -> None:
    """Chat stays quiet: build progress is never shown, and diagnostics are shown on
    a transition into FAILED only (were another event to carry them)."""
    event = EVENTS[case]()
    render = PLATFORMS[platform].render
    before = render(event)
    assert render(event.model_copy(update={"progress": PROGRESS})) == before
    if event.current.status is not ImageStatus.FAILED:
        assert render(with_diagnostics(event, FULL_DIAGNOSTICS)) == before


def test_the_workflow_step_replaces_failure_contexts_bare_step_name() -> None:
    full = ChatMessage.from_event(EVENTS["testing_to_failed_diagnosed"]())
    partial = ChatMessage.from_event(EVENTS["testing_to_failed_partly_diagnosed"]())
    assert "Failed step" not in [f.label for f in full.failure]
    assert ("Failed step", "RunImageTests") in [(f.label, f.value) for f in partial.failure]


def test_the_details_say_step_message_links_and_log() -> None:
    details = FailureDetails.from_event(EVENTS["testing_to_failed_diagnosed"]())
    assert details is not None
    assert details.step == "RunTests (ExecuteComponents) in the TEST workflow test-image"
    assert details.step_message == tuple(STEP_MESSAGE.split("\n"))
    assert [(link.label, link.url) for link in details.links] == [
        ("View logs", LOGS_URL),
        ("Open in console", FULL_DIAGNOSTICS.console_url),
    ]
    assert details.log_tail == LOG_TAIL


@pytest.mark.parametrize(
    ("step", "summary"),
    [
        ({"action": None}, "RunTests in the TEST workflow test-image"),
        ({"workflow_name": None}, "RunTests (ExecuteComponents) in the TEST workflow"),
        ({"workflow": None}, "RunTests (ExecuteComponents) in the workflow test-image"),
        ({"workflow": None, "workflow_name": None, "action": None}, "RunTests"),
    ],
)
def test_the_step_summary_leaves_out_what_is_unknown(step: dict[str, Any], summary: str) -> None:
    details = FailureDetails.from_event(diagnosed(**step))
    assert details is not None
    assert details.step == summary


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_platform_shows_step_message_links_and_the_end_of_the_log(platform: str) -> None:
    text = all_text(PLATFORMS[platform].render(EVENTS["testing_to_failed_diagnosed"]()))
    assert "RunTests (ExecuteComponents) in the TEST workflow test-image" in text
    assert STEP_MESSAGE.split("\n")[0] in text
    assert LOGS_URL in text
    assert str(FULL_DIAGNOSTICS.console_url) in text
    assert "View logs" in text
    assert "Open in console" in text
    assert LOG_TAIL[-1] in text
    assert "earlier lines cut to fit" in text


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_partial_diagnostics_add_the_links_and_nothing_else(platform: str) -> None:
    render = PLATFORMS[platform].render
    partial = all_text(render(EVENTS["testing_to_failed_partly_diagnosed"]()))
    assert LOGS_URL in partial
    assert "Open in console" in partial
    assert "Build log" not in partial
    assert "RunImageTests" in partial  # failureContext's step name stays


def test_without_a_console_url_only_the_logs_link_is_given() -> None:
    event = with_diagnostics(
        EVENTS["testing_to_failed"](), PARTIAL_DIAGNOSTICS.model_copy(update={"console_url": None})
    )
    details = FailureDetails.from_event(event)
    assert details is not None
    assert [link.label for link in details.links] == ["View logs"]


def test_an_empty_or_blank_log_adds_no_log_block() -> None:
    for tail in [(), ("", "   ", "\x1b[0m")]:
        event = diagnosed(tail=tail)
        for platform in PLATFORMS.values():
            assert "Build log" not in all_text(platform.render(event)), platform.__name__


# Markup: what a build wrote is shown as written, never as formatting or a ping.


def test_slack_escapes_its_control_characters_in_log_and_message() -> None:
    event = diagnosed(message="exit <1> & <!channel>", tail=("ping <!here> & <@U123>",))
    text = all_text(slack.render(event))
    assert "<!channel>" not in text
    assert "<!here>" not in text
    assert "exit &lt;1&gt; &amp; &lt;!channel&gt;" in text
    assert "ping &lt;!here&gt; &amp; &lt;@U123&gt;" in text


def test_discord_escapes_markdown_in_the_step_name() -> None:
    payload = discord.render(diagnosed(name="Run_Tests*[x](y)"))
    assert r"Run\_Tests\*\[x\](y)" in payload["embeds"][0]["description"]


def test_gchat_log_cannot_mention_everyone() -> None:
    payload = gchat.render(diagnosed(tail=("<users/all> please look", "<USERS/123>")))
    assert "<users/all>" not in payload["text"]
    assert f"<{ZWSP}users/all> please look" in payload["text"]
    assert f"<{ZWSP}USERS/123>" in payload["text"]


def test_gchat_step_message_is_escaped_card_html_with_line_breaks() -> None:
    payload = gchat.render(diagnosed(message="<b>a</b> & b\nsecond"))
    widgets = [w for s in payload["cardsV2"][0]["card"]["sections"] for w in s["widgets"]]
    paragraphs = [w["textParagraph"]["text"] for w in widgets if "textParagraph" in w]
    assert "&lt;b&gt;a&lt;/b&gt; &amp; b<br>second" in paragraphs


def test_teams_shows_log_and_message_in_text_runs_never_read_as_markdown() -> None:
    event = diagnosed(message="**not bold**\n- not a list", tail=("1. not a list", "_x_"))
    card = teams.render(event)["attachments"][0]["content"]
    blocks = [b for b in card["body"] if b["type"] == "TextBlock"]
    assert not any("not" in b["text"] for b in blocks)
    [container] = [b for b in card["body"] if b["type"] == "Container"]
    assert [b["inlines"][0]["text"] for b in container["items"]] == ["1. not a list", "_x_"]
    assert {b["inlines"][0]["fontType"] for b in container["items"]} == {"Monospace"}


def test_a_fence_in_the_log_cannot_close_the_code_block() -> None:
    event = diagnosed(tail=("```", "before ``` after", "`", "````x````"))
    for name, platform in PLATFORMS.items():
        if name != "teams":  # no fences: one TextRun per line
            block = log_block(name, platform.render(event))
            assert block is not None
            assert "```" not in block
            assert block.replace(ZWSP, "") == "```\nbefore ``` after\n`\n````x````"


# Cutting.


def test_the_tail_keeps_the_last_lines_that_fit() -> None:
    lines = [f"line {n}" for n in range(100)]
    excerpt = tail_within(lines, 31)  # 4 lines of 7 and 3 newlines
    assert excerpt.lines == ("line 96", "line 97", "line 98", "line 99")
    assert excerpt.omitted == 96


def test_a_huge_last_line_keeps_its_end() -> None:
    excerpt = tail_within(["short", "x" * 10_000 + " the error"], 40)
    [line] = excerpt.lines
    assert line.startswith(ELLIPSIS)
    assert line.endswith("x the error")
    assert len(line) <= 40
    assert excerpt.omitted == 1


def test_a_message_keeps_its_first_lines_and_start() -> None:
    assert head_within(["first", "second", "third"], 12).lines == ("first", "second")
    [line] = head_within(["why it failed: " + "y" * 1000], 20).lines
    assert line == "why it failed: yyyy" + ELLIPSIS


def test_cutting_never_leaves_a_combining_mark_without_its_base() -> None:
    text = "e\u0301" * 100  # é as e + combining acute
    for limit in range(2, 30):
        for excerpt in (tail_within([text], limit), head_within([text], limit)):
            [line] = excerpt.lines
            body = line.replace(ELLIPSIS, "")
            assert body == "" or body.startswith("e"), (limit, line)
            assert body == "" or body.endswith("\u0301"), (limit, line)
            assert len(line) <= limit


def test_cutting_by_bytes_keeps_whole_characters_within_the_limit() -> None:
    for limit in range(3, 60):
        [line] = tail_within(["😀" * 100], limit, size=lambda s: len(s.encode())).lines
        assert len(line.encode()) <= limit
        assert set(line) <= {ELLIPSIS, "😀"}


def test_nothing_is_shown_when_not_even_an_ellipsis_fits() -> None:
    assert tail_within(["abc"], 0).lines == ()
    assert head_within(["abc"], -5).lines == ()


def test_code_safe_splits_every_backtick_run() -> None:
    for text in ["```", "a``b", "`x`", "````````", "` `` ```"]:
        safe = code_safe(text)
        assert "``" not in safe
        assert not safe.startswith("`")
        assert not safe.endswith("`")
        assert safe.replace(ZWSP, "") == text


def test_display_lines_drop_colours_controls_and_blank_ends() -> None:
    assert display_lines(["\n\x1b[31mred\x1b[0m\r\nnext\x00 \n", "", "\ud800x\x07", "\n"]) == (
        "red",
        "next",
        "",
        "?x",
    )


# Every platform's limits hold, whatever the step and the log say.

_MARKUP = [
    "```",
    "`",
    "``",
    "*",
    "_",
    "~",
    "|",
    "[",
    "](",
    ")",
    "<",
    ">",
    "&",
    "&amp;",
    "<!here>",
    "<!channel>",
    "<users/all>",
    "@everyone",
    "<@123>",
    "\\",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x1b[31m",
    "\x00",
    "é",
    "e\u0301",
    "😀",
    "👩\u200d💻",
    "\u200b",
    "\ufe0f",
    "#",
    "- ",
    "1. ",
    "> ",
    '"',
    "\u2028",
]
_PIECE = st.one_of(st.text(max_size=40), st.sampled_from(_MARKUP))
_LINE = st.lists(_PIECE, max_size=25).map("".join)
_HUGE = st.builds(
    lambda piece, times: piece * times,
    st.one_of(st.sampled_from(_MARKUP), st.text(min_size=1, max_size=3)),
    st.integers(min_value=500, max_value=6000),
)
MESSAGES = st.one_of(st.none(), _LINE, st.lists(_LINE, max_size=80).map("\n".join), _HUGE)
TAILS = st.one_of(st.none(), st.lists(st.one_of(_LINE, _HUGE), max_size=150).map(tuple))
NAMES = st.one_of(st.sampled_from(["RunTests", ""]), _LINE, _HUGE)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(message=MESSAGES, tail=TAILS, name=NAMES, template=st.sampled_from([None, "$summary"]))
def test_every_payload_fits_its_platform_whatever_the_step_and_log_say(
    message: str | None, tail: tuple[str, ...] | None, name: str, template: str | None
) -> None:
    """Limits hold, every code block is closed and holds no fence, and the log block
    shows the last lines of the log (the first of them perhaps cut to its end)."""
    event = diagnosed(message=message, tail=tail, name=name)
    shown = display_lines(tail) if tail is not None else ()
    for platform_name, platform in PLATFORMS.items():
        payload = platform.render(event, template)
        CHECKS[platform_name](payload)
        json.loads(json.dumps(payload))  # plain JSON, encodable as UTF-8
        assert len(all_text(payload).encode()) > 0
        block = log_block(platform_name, payload)
        if not shown:
            assert block is None
            continue
        assert block is not None, platform_name
        if platform_name != "teams":  # Teams has no fences: one TextRun per line
            assert "```" not in block
        assert_is_the_end_of(shown, unescape(platform_name, block))


def assert_is_the_end_of(lines: tuple[str, ...], block: str) -> None:
    """`block` is the last lines of `lines`, the first perhaps cut to its end after
    "…" (zero-width spaces, which the renderers add to split backtick runs, aside)."""
    want = [line.replace(ZWSP, "") for line in lines]
    got = block.replace(ZWSP, "").split("\n")
    assert got, block
    assert got[1:] == want[len(want) - len(got) + 1 :]
    first, whole = got[0], want[len(want) - len(got)]
    if first != whole:
        assert first.startswith(ELLIPSIS)
        assert whole.endswith(first[len(ELLIPSIS) :])


def unescape(platform: str, text: str) -> str:
    if platform == "slack":
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text


def log_block(platform: str, payload: dict[str, Any]) -> str | None:
    """The build log as the platform shows it: a code block's content (Slack, Discord,
    Google Chat) or the lines of Teams' monospace container; None when absent."""
    if platform == "teams":
        card = payload["attachments"][0]["content"]
        containers = [b for b in card["body"] if b["type"] == "Container"]
        if not containers:
            return None
        [container] = containers
        return "\n".join(
            "" if b["inlines"][0]["text"] == "\u00a0" else b["inlines"][0]["text"]
            for b in container["items"]
        )
    texts: dict[str, Callable[[dict[str, Any]], list[str]]] = {
        "slack": lambda p: [
            b["text"]["text"] for b in p["blocks"] if b.get("text", {}).get("type") == "mrkdwn"
        ],
        "discord": lambda p: [p["embeds"][0]["description"]],
        "gchat": lambda p: [p["text"]],
    }
    headings = {"slack": "*Build log*", "discord": "**Build log**", "gchat": "*Build log*"}
    # Slack's fences hug the text; the others put them on lines of their own.
    pattern = r"[^\n]*\n```(.*)```" if platform == "slack" else r"[^\n]*\n```\n(.*)\n```"
    for text in texts[platform](payload):
        start = text.rfind(headings[platform])
        if start < 0:
            continue
        found = re.fullmatch(pattern, text[start:], re.DOTALL)
        assert found is not None, text[start:]
        return found.group(1)
    return None


def test_log_block_reads_what_the_goldens_show() -> None:
    """The helper the property relies on finds the log in each platform's golden."""
    event = EVENTS["testing_to_failed_diagnosed"]()
    for name, platform in PLATFORMS.items():
        block = log_block(name, platform.render(event))
        assert block is not None
        assert_is_the_end_of(LOG_TAIL, unescape(name, block))


def test_a_huge_message_and_log_in_every_field_still_fit() -> None:
    """The largest of everything at once: a 100 KB message and reason, 2000 log lines
    of 1 KB, a step name of 10,000 characters."""
    huge = Diagnostics(
        failed_step=FailedStep(
            workflow="TEST" * 100,
            workflow_name="n" * 5_000,
            workflow_arn=None,
            workflow_execution_id=None,
            step_execution_id="s",
            name="`*_<&>" * 2_000,
            action="a" * 5_000,
            message="m```<&>\n" * 12_500,
        ),
        component_failure=None,
        distribution_error="d" * 50_000,
        region_failures=(),
        log_group="/aws/imagebuilder/" + "g" * 400,
        log_stream="1.4.0/7",
        console_url="https://example.com/" + "c" * 1_500,
        log_tail=tuple("l```<&>" * 150 for _ in range(2_000)),
    )
    event = with_diagnostics(huge_failure(), huge)
    for name, platform in PLATFORMS.items():
        for template in (None, "$reason"):
            payload = platform.render(event, template)
            CHECKS[name](payload)
            assert event.image.arn in all_text(payload)
