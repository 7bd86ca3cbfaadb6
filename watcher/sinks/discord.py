"""Discord webhook messages: `content` plus one embed coloured by outcome.

`content` is the headline ("✅ web-base 1.4.0/7 is AVAILABLE in 3 regions"), or a
template's output when configured; the embed holds the status line, reason, facts,
failure details, AMIs and container URIs, with the ARN as its footer.

Limits (discord.com/developers/docs, Execute Webhook and "Embed Limits"): content
≤ 2000 characters, ≤ 10 embeds; embed title ≤ 256, description ≤ 4096, ≤ 25 fields,
field name ≤ 256, value ≤ 1024, footer ≤ 2048, and title + description + fields +
footer + author ≤ 6000 across all embeds, else 400 Bad Request. Long parts are cut
with "…" rather than refused.

On FAILED with diagnostics (`failure_details`) the description goes on with the
failed step (its name escaped) and its own message in a ``` block, "View logs" and
"Open in console" as masked links, and the end of the build log in a ``` block; each
is added only if it fits whole in what is left of the 4096 characters, so a block is
never cut open, and backtick runs in the text are split so it cannot end a block.

The sink posts with `?wait=true`: without it Discord answers 204 even when it did
not save the message. A 429 says how long to wait in its JSON body (`retry_after`,
seconds) and in `X-RateLimit-Reset-After` (docs, "Rate Limits");
`retry_after_from_body` reads them. Never logs or raises the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from watcher.model import Transition
from watcher.sinks.chat import (
    COLOURS,
    Budget,
    ChatMessage,
    ChatSink,
    clip,
    clip_escaped,
    fit,
    join_within,
    more,
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

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELDS_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
TOTAL_LIMIT = 6000


def render(event: Transition, template: str | None = None) -> dict[str, Any]:
    """The webhook payload for `event`; `template` (validated) replaces `content`."""
    message = ChatMessage.from_event(event)
    override = render_template(template, event) if template is not None else None

    def build(budget: Budget) -> dict[str, Any]:
        return _payload(message.limited(budget), override, budget)

    return fit(build, lambda payload: embeds_size(payload["embeds"]) <= TOTAL_LIMIT)


def embeds_size(embeds: list[dict[str, Any]]) -> int:
    """Characters Discord counts against its 6000 total: titles, descriptions,
    field names and values, footers and author names."""
    size = 0
    for embed in embeds:
        size += len(embed.get("title", "")) + len(embed.get("description", ""))
        size += len(embed.get("footer", {}).get("text", ""))
        size += len(embed.get("author", {}).get("name", ""))
        size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", ()))
    return size


def retry_after_from_body(status: int, headers: Mapping[str, str], body: bytes) -> float | None:
    """Seconds a Discord 429 asks us to wait: the body's `retry_after`, else the
    `X-RateLimit-Reset-After` header (headers arrive lower-cased)."""
    if status != 429:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        value = answer.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    reset_after = headers.get("x-ratelimit-reset-after")
    if reset_after:
        try:
            return max(0.0, float(reset_after))
        except ValueError:
            return None
    return None


def wait_url(url: str) -> str:
    """`url` with `wait=true`, so Discord answers only once the message is saved;
    other query parameters (`thread_id`) are kept."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit(parts._replace(query=urlencode(query)))


class DiscordSink(ChatSink):
    """Posts each transition to a Discord webhook."""

    retry_after_from_body = staticmethod(retry_after_from_body)

    def target(self, url: str) -> str:
        return wait_url(url)

    def payload(self, event: Transition) -> dict[str, Any]:
        return render(event, self._template)


def _payload(message: ChatMessage, override: str | None, budget: Budget) -> dict[str, Any]:
    description = [f"**{message.status_line}**"]
    if message.note:
        description.append(f"*{message.note}*")
    if message.reason:
        description.append(f"**Reason**\n{message.reason}")
    # Short facts sit side by side; a long one (a version ARN) gets a line of its own.
    fields = [_field(f.label, f.value, inline=len(f.value) <= 40) for f in message.facts]
    for fact in message.failure:
        value = fact.value
        if fact.label in ("Error", "Distribution error"):
            value = f"```\n{clip_escaped(value, FIELD_VALUE_LIMIT - 8, _code)}\n```"
        fields.append(_field(fact.label, value, inline=False))
    if message.omitted_failure:
        fields.append(_field("More details", more(message.omitted_failure, "detail")))
    for name, facts, omitted in (
        ("AMIs", message.amis, message.omitted_amis),
        ("Container images", message.containers, message.omitted_containers),
    ):
        if facts:
            lines = [f"{f.label}: `{f.value}`" for f in facts]
            fields.extend(_chunked(name, lines, omitted))
    text = "\n\n".join(description)
    if message.details is not None:
        text = _with_details(clip(text, DESCRIPTION_LIMIT), message.details, budget)
    embed: dict[str, Any] = {
        "title": clip(message.label, TITLE_LIMIT),
        "description": clip(text, DESCRIPTION_LIMIT),
        "color": COLOURS[message.outcome],
        "fields": fields[:FIELDS_LIMIT],
        "footer": {"text": clip(message.arn, FOOTER_LIMIT)},
        "timestamp": message.observed_at.isoformat(),
    }
    payload: dict[str, Any] = {
        "content": clip(override if override is not None else message.headline, CONTENT_LIMIT),
        "embeds": [embed],
    }
    if override is None:
        # Nothing we write ourselves should ping anyone; a user's template may mean to.
        payload["allowed_mentions"] = {"parse": []}
    return payload


def _field(name: str, value: str, *, inline: bool = False) -> dict[str, Any]:
    return {
        "name": clip(name, FIELD_NAME_LIMIT),
        "value": clip(value or "-", FIELD_VALUE_LIMIT),
        "inline": inline,
    }


def _chunked(name: str, lines: list[str], omitted: int) -> list[dict[str, Any]]:
    """`lines` over as few fields as their 1024-character values need (at most 3),
    so 40 regions of AMIs still show; the rest are counted."""
    fields: list[dict[str, Any]] = []
    start = 0
    while start < len(lines) and len(fields) < 3:
        end = start
        size = 0
        while end < len(lines) and size + len(lines[end]) + 1 <= FIELD_VALUE_LIMIT - 40:
            size += len(lines[end]) + 1
            end += 1
        end = max(end, start + 1)
        last = len(fields) == 2 or end >= len(lines)
        rest = len(lines) - end + omitted if last else 0
        value = join_within(lines[start:end], FIELD_VALUE_LIMIT, omitted=rest)
        fields.append(_field(name if not fields else f"{name} (continued)", value))
        start = end
    return fields


def escape_markdown(text: str) -> str:
    """`text` shown as written: a backslash before each character Discord's markdown
    acts on inside a line (emphasis, code, spoilers, masked links, mentions). Line
    starts (`#`, `-`, `>`) need none here: escaped text never starts a line."""
    return _MARKDOWN.sub(r"\\\1", text)


_MARKDOWN = re.compile(r"([\\*_~`|\[\]<>])")
_FENCES = 9
"""Characters of the two fences, the newlines inside them and the one before."""
_MORE = 20
"""Room for "… 12345 more lines" under a cut message."""
_HEADING = 100
"""Room for "**Build log** *(last 40 lines, 12 earlier lines cut to fit)*"."""
_STEP_LINE = 500


def _with_details(text: str, details: FailureDetails, budget: Budget) -> str:
    """`text` (the description so far) followed by the failed step and its message,
    the links and the log tail, each only if it fits whole in what is left of the
    4096 characters: a code block is never cut open."""
    parts = [text]

    def room() -> int:
        return DESCRIPTION_LIMIT - len("\n\n".join(parts)) - 2

    if details.step is not None or details.step_message:
        step = f"**Failed step:** {clip_escaped(details.step or '?', _STEP_LINE, escape_markdown)}"
        if details.step_message:
            limit = min(budget.message, room() - len(step) - _FENCES - _MORE)
            excerpt = head_within(details.step_message, limit, render=_code)
            lines = [*excerpt.lines, *([more_lines(excerpt.omitted)] if excerpt.omitted else [])]
            if excerpt.lines:
                step += "\n```\n" + "\n".join(lines) + "\n```"
        if len(step) <= room():
            parts.append(step)
    if details.links:
        links = " · ".join(f"[{link.label}]({link.url})" for link in details.links)
        if len(links) <= room():
            parts.append(links)
    if details.log_tail:
        limit = min(budget.log, room() - _HEADING - _FENCES)
        excerpt = tail_within(details.log_tail, limit, render=_code)
        if excerpt.lines:
            title, note = log_heading(excerpt)
            block = f"**{title}** *({note})*\n```\n{excerpt.text}\n```"
            if len(block) <= room():
                parts.append(block)
    return "\n\n".join(parts)


def _code(text: str) -> str:
    """Text inside a ``` block: markdown is not applied there, but a backtick run
    would end the block."""
    return "\n".join(code_safe(line) for line in text.split("\n"))
