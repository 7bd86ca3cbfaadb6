"""What of a URL may be shown, and the AWS console's hosts. Sink URLs carry their
token (Slack, Discord, Teams, Google Chat all put it in the path or query), so logs,
errors and `check-config` show the scheme and host only. Standard library only:
configuration and sinks both use it."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """What of a URL may be shown: scheme and host, e.g. `https://hooks.slack.com/…`."""
    try:
        parsed = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    return f"{parsed.scheme or '?'}://{parsed.hostname or '?'}/…"


CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-us-gov": "console.amazonaws-us-gov.com",
    "aws-cn": "console.amazonaws.cn",
}
"""The AWS console's host in each partition, for links to a build's Image Builder page
and its CloudWatch logs. Observed, not documented by AWS; a partition not listed gets
no link."""
