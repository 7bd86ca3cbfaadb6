"""Why a build failed, as the chat messages say it: the failing workflow step and its
own message, links to the build's log stream and console page, and the end of its
build log. Shared by Slack, Teams, Discord and Google Chat, so the four say the same
thing; each lays it out in its own markup, through the cutting tools here.

Only an event into FAILED that carries diagnostics has any of this: every other event
renders exactly as before. Pure (no I/O), and never raises on odd text: huge, unicode,
control characters, lone surrogates, backticks that would close a code block.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from watcher.model import Arn, ImageStatus, InvalidArn, Transition
from watcher.urls import CONSOLE_HOSTS

if TYPE_CHECKING:
    from watcher.diagnostics import FailedStep

ELLIPSIS = "…"
ZWSP = "\u200b"
"""Zero-width space: splits a run of backticks without changing what people read."""

LOGS_LABEL = "View logs"
CONSOLE_LABEL = "Open in console"
MAX_URL = 2000
"""Longer links are left out: Slack refuses button URLs over 3000 characters and a
2000-character link is no link anyone clicks; ours are a few hundred at most."""

# ANSI escape sequences (colours, cursor moves) that build tools write to their logs,
# then any other C0/C1 control character but the tab: chat shows them as boxes or not
# at all, and some break JSON-unaware receivers.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Everything a URL may hold unescaped in Slack's <url|label>, Discord's [label](url)
# and the cards: RFC 3986 reserved and unreserved characters, and `%` (its escapes are
# kept), but not the parentheses, which end a Discord masked link.
_URL_SAFE = "!#$%&'*+,/:;=?@[]~-._"
_BACKTICK_RUN = re.compile(r"`(?=`)")


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class FailureDetails:
    """What a FAILED event's diagnostics add to a chat message."""

    step: str | None
    """"RunTests (ExecuteStateMachine) in the TEST workflow test-image"; None when the
    workflow look-ups found no failed step."""
    step_message: tuple[str, ...]
    """The step's own runtime message, line by line (often the one line that says
    why); empty when there is none."""
    links: tuple[Link, ...]
    """"View logs" (the build's log stream in the CloudWatch console) and "Open in
    console" (the build's Image Builder page), those that are known."""
    log_tail: tuple[str, ...] | None
    """The last lines of the build log, cleaned for display; None when not read."""

    @classmethod
    def from_event(cls, event: Transition) -> FailureDetails | None:
        """The details of `event`, or None unless it is a transition into FAILED that
        carries diagnostics."""
        diagnostics = event.diagnostics
        if diagnostics is None or event.current.status is not ImageStatus.FAILED:
            return None
        step = diagnostics.failed_step
        logs = logs_console_url(event.image.arn, diagnostics.log_group, diagnostics.log_stream)
        links = [
            Link(label, safe)
            for label, url in ((LOGS_LABEL, logs), (CONSOLE_LABEL, diagnostics.console_url))
            if url is not None and (safe := link_url(url)) is not None
        ]
        message = step.message if step is not None else None
        tail = diagnostics.log_tail
        return cls(
            step=step_summary(step) if step is not None else None,
            step_message=display_lines([message]) if message and message.strip() else (),
            links=tuple(links),
            log_tail=display_lines(tail) if tail is not None else None,
        )


@dataclass(frozen=True)
class Excerpt:
    """Lines cut to fit a size: those shown (rendered), and how many were left out."""

    lines: tuple[str, ...]
    omitted: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def step_summary(step: FailedStep) -> str:
    """ "RunTests (ExecuteStateMachine) in the TEST workflow test-image", with what
    is unknown left out."""
    text = step.name or "?"
    if step.action:
        text += f" ({step.action})"
    where = " ".join(filter(None, [step.workflow, "workflow", step.workflow_name]))
    if step.workflow or step.workflow_name:
        text += f" in the {where}"
    return text


def logs_console_url(build_arn: str, log_group: str, log_stream: str) -> str | None:
    """The CloudWatch Logs console page of `log_stream` of `log_group`, in the build's
    region; None for an ARN that is not one or a partition without a known console.

    The format is as observed, not documented by AWS (it may change at any time):
    `https://<region>.console.aws.amazon.com/cloudwatch/home?region=<region>#logsV2:
    log-groups/log-group/<group>/log-events/<stream>`, where group and stream are
    percent-encoded twice and then every `%` is written `$`, so `/` becomes `$252F`:
    `/aws/imagebuilder/web-base` is `$252Faws$252Fimagebuilder$252Fweb-base`. As
    shown in the Stack Overflow question "Is there a way to generate the AWS Console
    URLs for CloudWatch Log Group filters?" (its answers decode `$252F` and find the
    double encoding), the Qiita post "CloudWatch LogsのURL構造" (yoohya, a Lambda
    stream `2020/10/27/[$LATEST]...` as `2020$252F10$252F27$252F$255B$2524LATEST$255D...`)
    and the aws-cloudwatch-logs-url package on PyPI (sinofseven/cloudwatch-logs-url-
    python, whose tests pin `$252Faws$252Flambda$252F...`). Encoding with `quote`
    rather than that package's `quote_plus` keeps a space `$2520` (%20), not a `+`,
    which the console would not read back as a space.
    """
    try:
        arn = Arn.parse(build_arn)
    except InvalidArn:
        return None
    host = CONSOLE_HOSTS.get(arn.partition)
    if host is None:
        return None
    return (
        f"https://{arn.region}.{host}/cloudwatch/home?region={arn.region}"
        f"#logsV2:log-groups/log-group/{_console_escape(log_group)}"
        f"/log-events/{_console_escape(log_stream)}"
    )


def link_url(url: str) -> str | None:
    """`url` as safe to put in any platform's link markup, or None if it should not
    be a link: not https, or too long. Characters that would end the markup early
    (`|`, `>`, `)`, spaces, quotes) are percent-encoded; existing escapes are kept."""
    if not url.lower().startswith("https://"):
        return None
    safe = quote(url, safe=_URL_SAFE)
    return safe if len(safe) <= MAX_URL else None


def display_lines(entries: Iterable[str | None]) -> tuple[str, ...]:
    """`entries` (log events or a message) as lines fit to show: split at line breaks,
    stripped of ANSI colours, control characters and trailing blanks, with lone
    surrogates (which UTF-8 cannot carry) replaced and blank lines at either end
    dropped."""
    lines: list[str] = []
    for entry in entries:
        text = _ANSI.sub("", (entry or "").encode("utf-8", "replace").decode("utf-8"))
        lines.extend(_CONTROL.sub("", line).rstrip() for line in (text.splitlines() or [""]))
    start = next((i for i, line in enumerate(lines) if line), len(lines))
    end = next((i for i in range(len(lines), 0, -1) if lines[i - 1]), 0)
    return tuple(lines[start:end])


def code_safe(line: str) -> str:
    """`line` unable to open or close a code block: a zero-width space splits every
    run of backticks, and guards a backtick at either end (where it would join the
    fence around the block)."""
    if "`" not in line:
        return line
    line = _BACKTICK_RUN.sub("`" + ZWSP, line)
    if line.startswith("`"):
        line = ZWSP + line
    if line.endswith("`"):
        line += ZWSP
    return line


def tail_within(
    lines: Sequence[str],
    limit: int,
    *,
    render: Callable[[str], str] = str,
    size: Callable[[str], int] = len,
) -> Excerpt:
    """The last of `lines` whose rendered, newline-joined size is at most `limit`:
    the end of a log matters most. When not even the last line fits, its end is kept
    after "…". Nothing is shown when not even that fits."""
    return _within(lines, limit, render=render, size=size, from_end=True)


def head_within(
    lines: Sequence[str],
    limit: int,
    *,
    render: Callable[[str], str] = str,
    size: Callable[[str], int] = len,
) -> Excerpt:
    """As `tail_within`, but the first lines: a message says what happened first."""
    return _within(lines, limit, render=render, size=size, from_end=False)


def log_heading(excerpt: Excerpt) -> tuple[str, str]:
    """The title and note over a log excerpt: ("Build log", "last 40 lines, 12 earlier
    lines cut to fit")."""
    shown = len(excerpt.lines)
    note = f"last {shown} line{'s' if shown != 1 else ''}"
    if excerpt.omitted:
        cut = excerpt.omitted
        note += f", {cut} earlier line{'s' if cut != 1 else ''} cut to fit"
    return "Build log", note


def more_lines(count: int) -> str:
    return f"{ELLIPSIS} {count} more line{'s' if count != 1 else ''}"


def _within(
    lines: Sequence[str],
    limit: int,
    *,
    render: Callable[[str], str],
    size: Callable[[str], int],
    from_end: bool,
) -> Excerpt:
    ordered = list(reversed(lines)) if from_end else list(lines)
    kept: list[str] = []
    used = 0
    for line in ordered:
        rendered = render(line)
        cost = size(rendered) + (1 if kept else 0)
        if used + cost > limit:
            break
        kept.append(rendered)
        used += cost
    if not kept and ordered:
        clipped = _clip_line(ordered[0], limit, render=render, size=size, keep_end=from_end)
        if clipped is not None:
            kept.append(clipped)
    omitted = len(ordered) - len(kept)
    return Excerpt(tuple(reversed(kept)) if from_end else tuple(kept), omitted)


def _clip_line(
    line: str,
    limit: int,
    *,
    render: Callable[[str], str],
    size: Callable[[str], int],
    keep_end: bool,
) -> str | None:
    """`line` cut to its end (`keep_end`) or start, marked with "…", rendered within
    `limit`; None when not even "…" fits. Cuts between code points (so never inside
    a multi-byte character) and never leaves a combining mark without its base."""
    keep = min(len(line), limit)
    while keep > 0:
        rendered = render(_cut(line, keep, keep_end=keep_end))
        over = size(rendered) - limit
        if over <= 0:
            return rendered
        # Size may count bytes and `keep` counts characters: step down by the excess
        # while it is small, else halve, so a few tries always get there.
        keep = keep - max(1, over) if over < keep else keep // 2
    rendered = render(ELLIPSIS)
    return rendered if size(rendered) <= limit else None


def _cut(line: str, keep: int, *, keep_end: bool) -> str:
    if keep >= len(line):
        return line
    if keep_end:
        part = line[len(line) - keep :]
        while part and _joins_previous(part[0]):
            part = part[1:]
        return ELLIPSIS + part
    part = line[:keep]
    while part and _joins_previous(line[len(part)]):
        part = part[:-1]  # the next character belongs to the last one kept: drop both
    return part + ELLIPSIS


def _joins_previous(char: str) -> bool:
    """A combining mark, variation selector or zero-width joiner: a character that
    only means something with the one before it."""
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) in ("Mn", "Me")
        or char == "\u200d"
        or "\ufe00" <= char <= "\ufe0f"
    )


def _console_escape(name: str) -> str:
    return quote(quote(name, safe=""), safe="").replace("%", "$")
