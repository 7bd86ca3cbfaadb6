"""`[diagnostics]`: what the watcher looks up besides a build's status: the running
workflow step of a build in progress, and the end of a failed build's log."""

from __future__ import annotations

from pydantic import Field

from watcher.config._base import Strict

MAX_LOG_LINES = 1000
"""The most log lines a FAILED event may carry: an event is a message, not a log
archive (CloudWatch Logs' GetLogEvents would give up to 10,000)."""


class DiagnosticsConfig(Strict):
    """Look-ups that say what a build is doing and why it failed."""

    progress_share: float = Field(default=0.2, ge=0.0, le=0.5, allow_inf_nan=False)
    """The share of `watch.max_tps` that workflow step look-ups (a running build's
    progress) may use: when the limiter is saturated, status polls get the rest;
    past it, progress is looked up less often. At most 0.5, so status polls always
    get half; 0 turns progress off. Needs imagebuilder:ListWorkflowExecutions and
    ListWorkflowStepExecutions."""
    log_lines: int = Field(default=0, ge=0, le=MAX_LOG_LINES)
    """On FAILED, read this many last lines of the build's log (CloudWatch Logs) into
    the event's diagnostics, secrets-looking strings redacted. 0 reads none. Needs
    logs:GetLogEvents on the build's log group."""
