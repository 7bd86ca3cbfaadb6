"""The log sink: one structlog line per transition, with the event's fields as keys."""

from __future__ import annotations

from typing import Any

import structlog

from watcher.build_progress import progress_text
from watcher.model import Transition
from watcher.summary import headline


class LogSink:
    def __init__(self, logger: Any = None) -> None:
        self._log = logger or structlog.get_logger("ibwatch")

    async def send(self, event: Transition) -> None:
        self._log.info("image.state_changed", **event_fields(event))


def event_fields(event: Transition) -> dict[str, Any]:
    """The keys a log line carries for a transition: flat, greppable, no raw JSON."""
    fields: dict[str, Any] = {
        "summary": headline(event),
        "id": event.id,
        "arn": event.image.arn,
        "image": event.image.name,
        "version": f"{event.image.version}/{event.image.build}",
        "previous": event.previous.status.value if event.previous else None,
        "status": event.current.status.value,
        "terminal": event.terminal,
    }
    if event.watched != event.image.arn:
        fields["watched"] = event.watched
    if event.current.reason:
        fields["reason"] = event.current.reason
    failed_step = (event.current.failure_context or {}).get("failedStep")
    if failed_step:
        fields["failed_step"] = failed_step
    if event.skipped:
        fields["skipped"] = [s.value for s in event.skipped]
    if event.progress is not None and event.progress.step is not None:
        fields["step"] = progress_text(event.progress)
    diagnostics = event.diagnostics
    if diagnostics is not None:
        step = diagnostics.failed_step
        if step is not None:
            fields["failed_workflow_step"] = (
                f"{step.workflow}/{step.name}" if step.workflow else step.name
            )
            if step.message:
                fields["step_message"] = step.message
        fields["log"] = f"{diagnostics.log_group} {diagnostics.log_stream}"
    if event.durations.in_previous_status_seconds is not None:
        fields["in_previous_status_s"] = round(event.durations.in_previous_status_seconds, 1)
    if event.durations.total_seconds is not None:
        fields["total_s"] = round(event.durations.total_seconds, 1)
    if event.outputs is not None:
        if event.outputs.amis:
            fields["amis"] = {a.region: a.image for a in event.outputs.amis}
        if event.outputs.containers:
            fields["containers"] = [u for c in event.outputs.containers for u in c.image_uris]
    return fields
