"""One-line human summaries of a transition, shared by log lines, CLI progress and
(later) chat messages: "web-base 1.4.0/7 BUILDING → TESTING after 18m"."""

from __future__ import annotations

from watcher.model import ImageStatus, Transition


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def label(event: Transition) -> str:
    return f"{event.image.name} {event.image.version}/{event.image.build}"


def headline(event: Transition) -> str:
    status = event.current.status
    if event.previous is None:
        text = f"{label(event)} is {status}"
    else:
        text = (
            f"{label(event)} {event.previous.status} → {status} after "
            f"{duration_text(event.durations.in_previous_status_seconds)}"
        )
    if event.skipped:
        text += f" (passed {', '.join(s.value for s in event.skipped)})"
    if status is ImageStatus.AVAILABLE and event.outputs is not None:
        regions = len(
            {a.region for a in event.outputs.amis} | {c.region for c in event.outputs.containers}
        )
        if regions:
            text += f" in {regions} region{'s' if regions != 1 else ''}"
    elif status in (ImageStatus.FAILED, ImageStatus.CANCELLED) and event.current.reason:
        where = (event.current.failure_context or {}).get("imageStatus")
        if where and (event.previous is None or event.previous.status != where):
            text += f" in {where}"
        text += f": {event.current.reason}"
    return text
