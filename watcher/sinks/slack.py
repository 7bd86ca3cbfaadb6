"""Slack incoming-webhook messages: a `text` fallback plus Block Kit `blocks`.

The blocks carry the message (header, facts, reason, AMIs, ARN); `text` is what
notifications and block-less clients show, or a template's output when one is
configured (the same output also opens the message, under the header). The outcome
shows as the header's emoji rather than a legacy `attachments` colour bar, which
Slack says may be shown less prominently in future.

Limits (docs.slack.dev, Block Kit reference): header text ≤ 150 characters,
section text ≤ 3000, section fields ≤ 10 of ≤ 2000 each, context elements ≤ 10,
≤ 50 blocks. Message text is truncated beyond 40,000 characters, and Slack asked
for 4,000 bytes before that (changelog "Truncating really long messages"), so the
fallback stays under 3,000 characters. Slack also rejects messages whose blocks
hold too much text in all (`msg_blocks_too_long`, undocumented; reported from about
11,000 characters in slackapi/bolt-js#2509 and #2867), so blocks stay under 8,000.
Everything too long is cut with "…", never refused. Never logs or raises the URL.

On FAILED with diagnostics (`failure_details`) three sections follow the failure:
the failed step with its own message in a code block, "View logs" and "Open in
console" as `<url|label>` links, and the end of the build log in a code block under
"Build log". Each is one section, so each stays within the 3000 characters of a
section's text ("Maximum length for the text in this field is 3000 characters"),
and fences go around whole lines, so no block is left open. Inside ``` mrkdwn is not
applied, but `&`, `<` and `>` are still escaped (no `<!channel>` from a log line) and
backtick runs are split so the log cannot end the block.
"""

from __future__ import annotations

from typing import Any

from watcher.model import Transition
from watcher.sinks.chat import (
    Budget,
    ChatMessage,
    ChatSink,
    Fact,
    clip,
    clip_escaped,
    fit,
    join_within,
)
from watcher.sinks.failure_details import (
    FailureDetails,
    code_safe,
    head_within,
    log_heading,
    more_lines,
    tail_within,
)
from watcher.templates import render_template

TEXT_ADVISED = 3000
"""Slack truncates `text` beyond 40,000 characters and used to ask for 4,000 bytes."""
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FIELDS_PER_SECTION = 10
BLOCKS_LIMIT = 50
BLOCKS_TEXT_BUDGET = 8000


def escape(text: str) -> str:
    """Slack's three control characters in mrkdwn and plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(event: Transition, template: str | None = None) -> dict[str, Any]:
    """The webhook payload for `event`; `template` (validated) replaces `text`."""
    message = ChatMessage.from_event(event)
    override = render_template(template, event, escape=escape) if template is not None else None

    def build(budget: Budget) -> dict[str, Any]:
        return _payload(message.limited(budget), override, budget)

    return fit(build, lambda payload: blocks_text_size(payload["blocks"]) <= BLOCKS_TEXT_BUDGET)


def blocks_text_size(blocks: list[dict[str, Any]]) -> int:
    """Characters of text in `blocks`, the measure of `msg_blocks_too_long`."""
    size = 0
    for block in blocks:
        texts = [block.get("text"), *block.get("fields", ()), *block.get("elements", ())]
        size += sum(len(t["text"]) for t in texts if isinstance(t, dict))
    return size


class SlackSink(ChatSink):
    """Posts each transition to a Slack incoming webhook."""

    def payload(self, event: Transition) -> dict[str, Any]:
        return render(event, self._template)


def _payload(message: ChatMessage, override: str | None, budget: Budget) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(message.headline, HEADER_LIMIT),
                "emoji": True,
            },
        }
    ]
    if override is not None:
        blocks.append(_section(clip(override, min(budget.text, SECTION_LIMIT))))
    facts = [Fact("Status", message.status_line), *message.facts]
    blocks.append(
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*{escape(f.label)}*\n" + clip_escaped(f.value, FIELD_LIMIT // 2, escape))
                for f in facts[:FIELDS_PER_SECTION]
            ],
        }
    )
    if message.note:
        blocks.append(
            {"type": "context", "elements": [_mrkdwn(clip_escaped(message.note, 3000, escape))]}
        )
    if message.reason:
        blocks.append(
            _section("*Reason*\n" + clip_escaped(message.reason, SECTION_LIMIT - 12, escape))
        )
    if message.failure:
        lines = [_failure_line(f) for f in message.failure]
        blocks.append(
            _section(
                join_within(lines, SECTION_LIMIT, omitted=message.omitted_failure, noun="detail")
            )
        )
    if message.details is not None:
        blocks.extend(_details(message.details, budget))
    if message.amis:
        lines = [f"`{escape(f.label)}`  `{escape(f.value)}`" for f in message.amis]
        heading = "*AMIs*\n"
        body = join_within(lines, SECTION_LIMIT - len(heading), omitted=message.omitted_amis)
        blocks.append(_section(heading + body))
    if message.containers:
        lines = [f"`{escape(f.label)}`  `{escape(f.value)}`" for f in message.containers]
        heading = "*Container images*\n"
        body = join_within(lines, SECTION_LIMIT - len(heading), omitted=message.omitted_containers)
        blocks.append(_section(heading + body))
    blocks.append(
        {"type": "context", "elements": [_mrkdwn(clip_escaped(message.arn, 3000, escape))]}
    )
    if override is not None:
        text = clip(override, TEXT_ADVISED)
    else:
        lines = [clip_escaped(line, 500, escape) for line in message.text.splitlines()]
        text = join_within(lines, TEXT_ADVISED, noun="line")
    return {"text": text, "blocks": blocks[:BLOCKS_LIMIT]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(clip(text, SECTION_LIMIT))}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _failure_line(fact: Fact) -> str:
    if fact.label in ("Error", "Distribution error"):
        code = "\n".join(_code(line) for line in fact.value.split("\n"))
        return f"*{escape(fact.label)}*\n```{code}```"
    return f"*{escape(fact.label)}:* {escape(fact.value)}"


def _details(details: FailureDetails, budget: Budget) -> list[dict[str, Any]]:
    """The failed step and its message, the links, and the log tail in a code block,
    each a section within 3000 characters: fences are added around whole lines, so a
    block is never left open."""
    blocks: list[dict[str, Any]] = []
    if details.step is not None or details.step_message:
        # mrkdwn has no escape for `*` or `_`, but a backtick run must not open a block.
        step = clip_escaped(details.step or "?", _STEP_LINE, _code)
        text = f"*Failed step:* {step}"
        if details.step_message:
            room = min(budget.message, SECTION_LIMIT - len(text) - _FENCES - _MORE)
            excerpt = head_within(details.step_message, room, render=_code)
            lines = [*excerpt.lines, *([more_lines(excerpt.omitted)] if excerpt.omitted else [])]
            if excerpt.lines:
                text += "\n```" + "\n".join(lines) + "```"
        blocks.append(_section(text))
    if details.links:
        links = "  ·  ".join(f"<{escape(link.url)}|{link.label}>" for link in details.links)
        blocks.append(_section(links))
    if details.log_tail:
        room = min(budget.log, SECTION_LIMIT - _HEADING - _FENCES)
        excerpt = tail_within(details.log_tail, room, render=_code)
        if excerpt.lines:
            title, note = log_heading(excerpt)
            blocks.append(_section(f"*{title}* _({note})_\n```" + excerpt.text + "```"))
    return blocks


def _code(line: str) -> str:
    """A line inside a ``` block: mrkdwn is not applied there, but `&`, `<` and `>`
    still must be escaped, and a backtick run would end the block."""
    return escape(code_safe(line))


_STEP_LINE = 500
_FENCES = 7
"""Characters of the two fences and the newline before them."""
_MORE = 20
"""Room for "… 12345 more lines" under a cut message."""
_HEADING = 100
"""Room for the log's heading: "*Build log* _(last 40 lines, 12 earlier lines cut to fit)_"."""
