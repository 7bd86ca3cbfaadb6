"""Microsoft Teams messages for a Workflows webhook ("When a Teams webhook request
is received"): one Adaptive Card in the message envelope Teams documents.

    {"type": "message", "attachments": [{"contentType":
     "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}]}

The card: a title coloured by outcome (Good, Attention, Warning, Default), a
template's output when configured, a FactSet of facts, the reason and failure
details, AMIs and container URIs as FactSets, and the ARN in small monospace.
Adaptive Card 1.4, which Workflows renders. Teams rejects messages over about
28 KB (learn.microsoft.com, "Create Incoming Webhooks" and the Teams connector's
known limits; users report failures from about 21 KB, so this stays under 20,000
bytes of JSON), cutting long parts with "…" rather than failing. Never logs or
raises the URL.

On FAILED with diagnostics (`failure_details`): the failed step and its own message,
"View logs" and "Open in console" buttons (an ActionSet of Action.OpenUrl, 1.2), and
the end of the build log in small monospace in an emphasis Container. What a build
wrote goes in TextRuns of RichTextBlocks (1.2), whose text is never Markdown
(learn.microsoft.com, Adaptive Cards schema explorer, TextRun: "Markdown is not
supported"); TextBlock Markdown has no preformatted text at all ("Format cards in
Teams": headers, tables, images, preformatted text and blockquotes are unsupported).
"""

from __future__ import annotations

import json
from typing import Any

from watcher.model import Transition
from watcher.sinks.chat import (
    Budget,
    ChatMessage,
    ChatSink,
    Fact,
    Outcome,
    clip,
    fit,
    more,
)
from watcher.sinks.failure_details import (
    FailureDetails,
    head_within,
    log_heading,
    more_lines,
    tail_within,
)
from watcher.sinks.http import json_body
from watcher.templates import render_template

SIZE_BUDGET = 20_000
"""Bytes of JSON; Teams documents about 28 KB for the whole message."""

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"

COLOURS: dict[Outcome, str] = {
    "success": "Good",
    "failure": "Attention",
    "warning": "Warning",
    "progress": "Default",
}


def render(event: Transition, template: str | None = None) -> dict[str, Any]:
    """The webhook payload for `event`; `template` (validated) adds its output under
    the title."""
    message = ChatMessage.from_event(event)
    override = render_template(template, event) if template is not None else None

    def build(budget: Budget) -> dict[str, Any]:
        return _payload(message.limited(budget), override, budget)

    return fit(build, lambda payload: len(json_body(payload)) <= SIZE_BUDGET)


class TeamsSink(ChatSink):
    """Posts each transition to a Teams Workflows webhook."""

    def payload(self, event: Transition) -> dict[str, Any]:
        return render(event, self._template)


def _payload(message: ChatMessage, override: str | None, budget: Budget) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": message.headline,
            "size": "Large",
            "weight": "Bolder",
            "color": COLOURS[message.outcome],
            "wrap": True,
        }
    ]
    if override is not None:
        body.append(_text(clip(override, budget.text)))
    body.append(_facts([Fact("Status", message.status_line), *message.facts]))
    if message.note:
        body.append(_text(message.note, isSubtle=True))
    if message.reason:
        body.append(_heading("Reason"))
        body.append(_text(message.reason))
    if message.failure:
        body.append(_facts(message.failure))
        if message.omitted_failure:
            body.append(_text(more(message.omitted_failure, "detail"), isSubtle=True))
    if message.details is not None:
        body.extend(_details(message.details, budget))
    if message.amis:
        body.append(_heading("AMIs"))
        body.append(_facts(message.amis))
        if message.omitted_amis:
            body.append(_text(more(message.omitted_amis), isSubtle=True))
    if message.containers:
        body.append(_heading("Container images"))
        body.append(_facts(message.containers))
        if message.omitted_containers:
            body.append(_text(more(message.omitted_containers), isSubtle=True))
    body.append(_text(message.arn, size="Small", isSubtle=True, fontType="Monospace"))
    card = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _heading(text: str) -> dict[str, Any]:
    return {
        "type": "TextBlock",
        "text": text,
        "weight": "Bolder",
        "wrap": True,
        "spacing": "Medium",
    }


def _facts(facts: list[Fact] | tuple[Fact, ...]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": f.label, "value": f.value} for f in facts]}


def _details(details: FailureDetails, budget: Budget) -> list[dict[str, Any]]:
    """The failed step and its message, the links as buttons, and the log tail in
    monospace. Text a build wrote goes in TextRuns, which Adaptive Cards never read
    as Markdown (a TextBlock would turn `*`, `_`, `- ` and `1. ` into formatting),
    one RichTextBlock per line, since a TextBlock needs a blank line for a break
    (learn.microsoft.com, "Format cards in Teams": "If you require newlines elsewhere
    in the TextBlock, use \\n\\n")."""
    elements: list[dict[str, Any]] = []
    if details.step is not None or details.step_message:
        elements.append(_heading("Failed step"))
        if details.step is not None:
            elements.append(_run(clip(details.step, _STEP_LINE)))
        excerpt = head_within(details.step_message, _LINE_SHARE * budget.message, size=_line_size)
        if excerpt.lines:
            elements.extend(_run(line) for line in excerpt.lines)
        if excerpt.omitted:
            elements.append(_text(more_lines(excerpt.omitted), isSubtle=True, spacing="None"))
    if details.links:
        elements.append(
            {
                "type": "ActionSet",
                "actions": [
                    {"type": "Action.OpenUrl", "title": link.label, "url": link.url}
                    for link in details.links
                ],
            }
        )
    if details.log_tail:
        excerpt = tail_within(details.log_tail, _LINE_SHARE * budget.log, size=_line_size)
        if excerpt.lines:
            title, note = log_heading(excerpt)
            elements.append(_heading(title))
            elements.append(_text(note, isSubtle=True, size="Small", spacing="None"))
            elements.append(
                {
                    "type": "Container",
                    "style": "emphasis",
                    "items": [_run(line, monospace=True) for line in excerpt.lines],
                }
            )
    return elements


def _run(line: str, *, monospace: bool = False) -> dict[str, Any]:
    """One line of text shown as written: a RichTextBlock of one TextRun."""
    run: dict[str, Any] = {"type": "TextRun", "text": line or NBSP}
    if monospace:
        run.update(fontType="Monospace", size="Small")
    return {"type": "RichTextBlock", "inlines": [run], "spacing": "None"}


_STEP_LINE = 500
NBSP = "\u00a0"
"""An empty line's text: a TextRun must say something to take up a line."""
_LINE_MARKUP = 110
"""Bytes of JSON around each line (its RichTextBlock and TextRun)."""
_LINE_SHARE = 4
"""Teams' budget is bytes of the whole card, and each line costs its markup too: a
line is measured with it, against four times the characters other platforms give
(2800 characters become 11,200 bytes: about 60 log lines of 80 characters)."""


def _line_size(line: str) -> int:
    return len(json.dumps(line, ensure_ascii=False).encode()) + _LINE_MARKUP
