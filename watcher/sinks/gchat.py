"""Google Chat incoming-webhook messages: `text` plus one card (`cardsV2`), all the
messages about one build in one thread.

`text` is the headline ("✅ web-base 1.4.0/7 is AVAILABLE in 3 regions"), or a
template's output when configured; the card holds the status (coloured by
outcome), facts, reason and failure details, AMIs, container URIs and the ARN.

Threads: the body names `thread.threadKey`, derived from the build ARN (stable,
letters, digits and `-._` only), and the URL gets
`messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD` (the webhook's `key` and
`token` are kept), so the first message about a build starts a thread and the rest
reply in it (developers.google.com/workspace/chat, spaces.messages.create).

Limits (same page and the Card reference): a message, text and cards together, is
at most 32,000 bytes; a card shows at most 100 widgets. Long parts are cut with "…"
rather than refused. Card text is HTML, so values are escaped. Never logs or raises
the URL.

On FAILED with diagnostics (`failure_details`): a "Failed step" card section with the
step, its own message (escaped, `<br>` between lines) and "View logs" / "Open in
console" buttons (`buttonList`, `onClick.openLink`); and the end of the build log
after the headline in `text`, in a ``` monospace block. Card text takes only a few
HTML tags and none of them is monospace ("Format messages": bold, italics,
underline, strikethrough, font colour, hyperlinks, newlines), while text messages
document the three-backquote "Monospace block". The log is measured in bytes, as
the 32,000-byte limit is.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from watcher.model import Transition
from watcher.sinks.chat import COLOURS, Budget, ChatMessage, ChatSink, clip, fit, more
from watcher.sinks.failure_details import (
    FailureDetails,
    code_safe,
    head_within,
    log_heading,
    more_lines,
    tail_within,
)
from watcher.sinks.http import json_body
from watcher.templates import render_template

SIZE_LIMIT = 32_000
"""Bytes of the whole message (our JSON body is a little larger, so this is safe)."""
WIDGETS_LIMIT = 100
REPLY_OPTION = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
CARD_ID = "ibwatch"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def render(event: Transition, template: str | None = None) -> dict[str, Any]:
    """The webhook payload for `event`; `template` (validated) replaces `text`."""
    message = ChatMessage.from_event(event)
    override = render_template(template, event) if template is not None else None
    key = thread_key(event.image.arn)

    def build(budget: Budget) -> dict[str, Any]:
        return _payload(message.limited(budget), override, budget, key)

    return fit(
        build,
        lambda payload: (
            len(json_body(payload)) <= SIZE_LIMIT and widget_count(payload) <= WIDGETS_LIMIT
        ),
    )


def thread_key(build_arn: str) -> str:
    """One thread per build: readable, stable, and made of letters, digits and
    `-._` only. The hash keeps builds of the same name in other regions or
    accounts apart."""
    digest = hashlib.sha256(build_arn.encode()).hexdigest()[:12]
    _, _, path = build_arn.partition(":image/")
    readable = _UNSAFE.sub("-", path.replace("/", "-")).strip("-")[:200]
    return f"ibwatch-{readable}-{digest}" if readable else f"ibwatch-{digest}"


def reply_url(url: str) -> str:
    """`url` with `messageReplyOption` set to reply in the thread (or start it);
    every other parameter (`key`, `token`) is kept, but a deprecated `threadKey`
    parameter is dropped since the body names the thread."""
    parts = urlsplit(url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("messageReplyOption", "threadKey")
    ]
    query.append(("messageReplyOption", REPLY_OPTION))
    return urlunsplit(parts._replace(query=urlencode(query)))


def widget_count(payload: dict[str, Any]) -> int:
    return sum(
        len(section["widgets"])
        for card in payload.get("cardsV2", ())
        for section in card["card"]["sections"]
    )


class GChatSink(ChatSink):
    """Posts each transition to a Google Chat incoming webhook, one thread per build."""

    def target(self, url: str) -> str:
        return reply_url(url)

    def payload(self, event: Transition) -> dict[str, Any]:
        return render(event, self._template)


def escape(text: str) -> str:
    """Card text is a small HTML subset: `&`, `<` and `>` must be escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _payload(
    message: ChatMessage, override: str | None, budget: Budget, key: str
) -> dict[str, Any]:
    colour = f"#{COLOURS[message.outcome]:06X}"
    status = f'<font color="{colour}"><b>{escape(message.status_line)}</b></font>'
    summary = [_decorated("Status", status, raw=True)]
    summary.extend(_decorated(f.label, f.value) for f in message.facts)
    if message.note:
        summary.append({"textParagraph": {"text": f"<i>{escape(message.note)}</i>"}})
    sections: list[dict[str, Any]] = [{"widgets": summary}]
    if message.reason or message.failure:
        widgets = [_decorated("Reason", message.reason)] if message.reason else []
        widgets.extend(_decorated(f.label, f.value) for f in message.failure)
        if message.omitted_failure:
            widgets.append(_paragraph(more(message.omitted_failure, "detail")))
        sections.append({"header": "Failure", "widgets": widgets})
    if message.details is not None:
        why = _step_section(message.details, budget)
        if why is not None:
            sections.append(why)
    for header, facts, omitted in (
        ("AMIs", message.amis, message.omitted_amis),
        ("Container images", message.containers, message.omitted_containers),
    ):
        if facts:
            widgets = [_decorated(f.label, f.value) for f in facts]
            if omitted:
                widgets.append(_paragraph(more(omitted)))
            section: dict[str, Any] = {"header": header, "widgets": widgets}
            if len(widgets) > 5:
                section.update(collapsible=True, uncollapsibleWidgetsCount=5)
            sections.append(section)
    sections.append({"widgets": [_decorated("ARN", message.arn)]})
    card = {
        "header": {"title": message.label, "subtitle": "EC2 Image Builder"},
        "sections": sections,
    }
    text = clip(override, budget.text) if override is not None else message.headline
    if message.details is not None and message.details.log_tail:
        text += _log_block(message.details.log_tail, budget)
    return {
        "text": text,
        "cardsV2": [{"cardId": CARD_ID, "card": card}],
        "thread": {"threadKey": key},
    }


def _decorated(label: str, value: str, *, raw: bool = False) -> dict[str, Any]:
    return {
        "decoratedText": {
            "topLabel": escape(label),
            "text": value if raw else escape(value),
            "wrapText": True,
        }
    }


def _paragraph(text: str) -> dict[str, Any]:
    return {"textParagraph": {"text": escape(text)}}


def _step_section(details: FailureDetails, budget: Budget) -> dict[str, Any] | None:
    """The failed step, its message (escaped card HTML, `<br>` between lines) and the
    links as buttons (the Card reference's `buttonList` with `openLink`)."""
    widgets: list[dict[str, Any]] = []
    if details.step is not None:
        widgets.append(_decorated("Step", clip(details.step, _STEP_LINE)))
    excerpt = head_within(details.step_message, budget.message, render=escape, size=_bytes)
    if excerpt.lines:
        more = [escape(more_lines(excerpt.omitted))] if excerpt.omitted else []
        widgets.append({"textParagraph": {"text": "<br>".join([*excerpt.lines, *more])}})
    if details.links:
        buttons = [
            {"text": link.label, "onClick": {"openLink": {"url": link.url}}}
            for link in details.links
        ]
        widgets.append({"buttonList": {"buttons": buttons}})
    if not widgets:
        return None
    # Headed only when it names a step: two buttons need no title.
    return {"header": "Failed step", "widgets": widgets} if details.step else {"widgets": widgets}


def _log_block(lines: tuple[str, ...], budget: Budget) -> str:
    """The log tail after the message text, in the monospace block that Chat's text
    formatting documents (three backquotes; card text has no monospace), or ""."""
    excerpt = tail_within(lines, budget.log, render=_code, size=_bytes)
    if not excerpt.lines:
        return ""
    title, note = log_heading(excerpt)
    return f"\n\n*{title}* _({note})_\n```\n{excerpt.text}\n```"


def _code(line: str) -> str:
    """A line inside a ``` block: a backtick run would end the block, and
    `<users/all>` is how a text message mentions everyone (a zero-width space after
    `<` keeps it text)."""
    return _MENTION.sub("<\u200b", code_safe(line))


def _bytes(text: str) -> int:
    """Chat's limit is 32,000 bytes, so the log is measured in bytes too."""
    return len(text.encode())


_MENTION = re.compile(r"<(?=users/)", re.IGNORECASE)
_STEP_LINE = 500
