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
"""

from __future__ import annotations

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
