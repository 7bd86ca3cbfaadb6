"""`--summary PATH`: a wait's result as Markdown for a CI job's summary page (GitHub's
$GITHUB_STEP_SUMMARY): a table of the builds; for each build that did not end
AVAILABLE, why (its reason, its failed step and that step's message, links to its
console page and log stream, the end of its log); the AMIs and container images per
region. A run that ended before it had a result (`watcher.result_files.no_result`: no
image in it) gets its exit code and what that means, from `watcher.exit_codes`, and
what it had done: the builds it started, the errors it met.

Rendered from the report `--output json` prints (`watcher.wait.build_report`). Text
from AWS (reasons, step and error messages, log lines) is untrusted: it reaches the
page only inside code spans and fenced code blocks, never as Markdown or HTML of its
own, and reasons and messages are redacted as the log lines already are. Pure but for
`append_summary`'s one write, and never raises on odd text.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from watcher.diagnostics import console_url
from watcher.exit_codes import meaning
from watcher.model import Arn, InvalidArn
from watcher.redaction import redact
from watcher.sinks.failure_details import (
    display_lines,
    head_within,
    link_url,
    logs_console_url,
    more_lines,
    tail_within,
)
from watcher.step_outputs import failed_step

BUDGET = 512 * 1024
"""Bytes a summary may take. GitHub refuses a step summary over 1 MiB whole (the
runner's annotation: "$GITHUB_STEP_SUMMARY upload aborted, supports content up to a
size of 1024k"), and the step may write more than ours."""
MAX_CELL = 200
"""Characters of AWS text in a table cell, or in a line of links."""
MAX_MESSAGE = 4000
"""Characters of one reason, step message or error message."""
MAX_TAIL = 16_000
"""Characters of one build's log tail (`--log-lines` allows 1000 lines of 2000)."""

_WORD = re.compile(r"[A-Z][A-Z_]*")
_BACKTICKS = re.compile(r"`+")


def append_summary(path: Path, report: Mapping[str, Any]) -> list[str]:
    """Append the summary of `report` to `path`; return warnings for the log (a file
    that cannot be written costs the summary, never the exit code)."""
    try:
        with path.open("a", encoding="utf-8") as handle:
            if _position(handle) > 0:
                handle.write("\n")  # a block of its own after what the step wrote
            handle.write(render_summary(report))
    except OSError as exc:
        return [f"--summary {path}: {exc.strerror or exc}"]
    return []


def _position(handle: TextIO) -> int:
    """Where appending starts; 0 in a pipe or a terminal (`/dev/stderr`, a FIFO), which
    cannot say and holds nothing of this step's to keep apart from."""
    try:
        return handle.tell()
    except io.UnsupportedOperation:
        return 0


def render_summary(report: Mapping[str, Any], *, budget: int = BUDGET) -> str:
    """The whole summary. Past `budget` bytes the log tails go first, then the
    sections of the last builds (the table above still names every build)."""
    images: list[Mapping[str, Any]] = report["images"]
    if not images:
        return _no_result(report)
    head = _head(report)
    explained = [image for image in images if _needs_section(image)]
    text = _join(head, [_section(image, tail=True) for image in explained])
    if _size(text) <= budget:
        return text
    kept: list[str] = []
    used = _size(_join(head, [])) + 200  # room for the note
    for image in explained:
        section = _section(image, tail=False)
        if used + _size(section) > budget:
            break
        kept.append(section)
        used += _size(section) + 1
    note = "The build logs' last lines are left out to keep this summary short"
    if len(kept) < len(explained):
        left = len(explained) - len(kept)
        note += f", and the details of {left} build{'s' if left != 1 else ''}"
    return _join(head, [*kept, f"_{note}: ibwatch's output in the job log has them._\n"])


def _no_result(report: Mapping[str, Any]) -> str:
    """The exit code and its meaning; then what the run had done before it stopped
    (`watcher.result_files.SoFar`): the builds it started, which nothing now waits
    for, the token that gets them back, and the errors it met."""
    code = int(report["exit_code"])
    lines = [
        "### Image Builder: no result",
        "",
        f"ibwatch exit code {code}: {meaning(code)}. It stopped before it had a result; "
        "the job log says why.",
    ]
    started: Sequence[str] = report.get("started") or ()
    if started:
        lines += ["", "Started before it stopped, and not waited for:", ""]
        lines += [f"- {_build_link(build)}" for build in started]
    token = report.get("client_token")
    if token and started:
        given = len(report.get("pipelines") or ())
        lines += [
            "",
            f"The same command run again with `--client-token` {_code(token)} gets the same "
            f"build{'s' if len(started) > 1 else ''} back instead of starting new ones"
            + (
                f": name the same {given} pipelines (each one's token is derived from it, "
                "so a pipeline named alone would start a new build)."
                if given > 1
                else "."
            ),
        ]
    for error in report.get("errors") or ():
        lines += ["", f"#### {_code(error['arn'])}", "", *_block(_message(error["message"]))]
    return "\n".join(lines) + "\n"


def _build_link(build: str) -> str:
    """A build as a list item: its name, linked to its console page when it has one."""
    label = _code(_label({"build_arn": build, "arn": build}))
    page = _console_url(build)
    url = link_url(page) if page else None
    return f"[{label}]({url})" if url else label


def _head(report: Mapping[str, Any]) -> str:
    images: list[Mapping[str, Any]] = report["images"]
    lines = [f"### Image Builder: {_word(str(report['status']))}", ""]
    code = int(report["exit_code"])
    if code:
        lines += [f"ibwatch exit code {code}: {meaning(code)}.", ""]
    with_step = any(failed_step(image) for image in images)
    lines += ["| build | status |" + (" failed step |" if with_step else "")]
    lines += ["| --- | --- |" + (" --- |" if with_step else "")]
    for image in images:
        row = f"| {_build_cell(image)} | {_status_cell(image, report)} |"
        if with_step:
            row += f" {_cell(failed_step(image))} |"
        lines.append(row)
    amis = [(ami["region"], ami["image"], image) for image in images for ami in image["amis"]]
    if amis:
        lines += ["", "| region | AMI | build |", "| --- | --- | --- |"]
        lines += [f"| {_cell(r)} | {_cell(ami)} | {_cell(_label(i))} |" for r, ami, i in amis]
    uris = [
        (container["region"], uri, image)
        for image in images
        for container in image["containers"]
        for uri in container["image_uris"]
    ]
    if uris:
        lines += ["", "| region | container image | build |", "| --- | --- | --- |"]
        lines += [f"| {_cell(r)} | {_cell(uri)} | {_cell(_label(i))} |" for r, uri, i in uris]
    return "\n".join(lines) + "\n"


def _needs_section(image: Mapping[str, Any]) -> bool:
    """A build that did not end AVAILABLE and about which there is more to say."""
    if image["status"] == "AVAILABLE" and image["error"] is None:
        return False
    return any(
        image.get(key)
        for key in ("error", "last_error", "reason", "failed_step", "failed_workflow_step")
    ) or bool(image.get("log_group"))


def _section(image: Mapping[str, Any], *, tail: bool) -> str:
    lines = [f"#### {_code(_label(image))}", ""]
    if image["error"] is not None:
        lines += ["Error:", "", *_block(_message(image["error"]["message"])), ""]
    if image["reason"]:
        lines += ["Reason:", "", *_block(_message(image["reason"])), ""]
    step = image.get("failed_workflow_step")
    if step is not None:
        where = f" in the {_code(step['workflow'])} workflow" if step["workflow"] else ""
        action = f" ({_code(step['action'])})" if step["action"] else ""
        message = _message(step["message"])
        lines.append(f"Failed step: {_code(step['name'])}{action}{where}{':' if message else ''}")
        lines += ["", *_block(message), ""] if message else [""]
    elif image["failed_step"]:
        lines += [f"Failed step: {_code(image['failed_step'])}", ""]
    if image["error"] is None and image["last_error"] is not None:
        lines += ["Last error before the timeout:", ""]
        lines += [*_block(_message(image["last_error"]["message"])), ""]
    lines += [_links(image), ""]
    log_tail = image.get("log_tail")
    if tail and log_tail:
        excerpt = tail_within(display_lines(_last(log_tail, MAX_TAIL)), MAX_TAIL)
        shown = len(excerpt.lines)
        title = f"Last {shown} line{'s' if shown != 1 else ''} of the build log"
        if excerpt.omitted:
            title += f" ({excerpt.omitted} more cut to fit)"
        lines += [f"<details><summary>{title}</summary>", "", *_block(excerpt.lines), ""]
        lines += ["</details>", ""]
    return "\n".join(lines)


def _links(image: Mapping[str, Any]) -> str:
    """The build's ARN, its console page, and its log stream."""
    build = image["build_arn"] or image["arn"]
    parts = [f"Build {_code(build)}"]
    page = image.get("console_url") or _console_url(image["build_arn"])
    if page and (url := link_url(page)):
        parts.append(f"[Image Builder console]({url})")
    group, stream = image.get("log_group"), image.get("log_stream")
    if group:
        where = _code(group) + (f" {_code(stream)}" if stream else "")
        logs = logs_console_url(build, group, stream) if stream else None
        url = link_url(logs) if logs else None
        parts.append(f"[build log]({url}) {where}" if url else f"build log {where}")
    return " · ".join(parts)


def _build_cell(image: Mapping[str, Any]) -> str:
    label = _cell(_label(image))
    page = image.get("console_url") or _console_url(image["build_arn"])
    url = link_url(page) if page else None
    return f"[{label}]({url})" if url else label


def _status_cell(image: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """What became of the build, as the text result says it, in fewer words."""
    if image["error"] is not None:
        return "ERROR"
    status = image["status"]
    if status is None:
        if image["build_arn"] is None and image.get("waiting"):
            return f"no build yet: {_cell(image['waiting'])}"
        return "no answer before the timeout" if report["timed_out"] else "unknown"
    text = _word(status)
    if image["failed_in"]:
        text += f" in {_word(image['failed_in'])}"
    if image["cancelled_at_timeout"]:
        text += " (cancelled at the timeout)"
    elif image.get("cancel_requested") and not _ended(status):
        text += " (still in progress at the timeout; cancellation requested)"
    elif image.get("cancel_requested") and status != "CANCELLED":
        # Ended on its own first (`watcher.wait.exit_code` counts it as it ended).
        text += " (ended before the cancellation asked for at the timeout took effect)"
    elif report["timed_out"] and not _ended(status):
        text += " (still in progress at the timeout)"
    return text


def _ended(status: str) -> bool:
    return status in {"AVAILABLE", "FAILED", "CANCELLED", "DEPRECATED", "DELETED", "DISABLED"}


def _label(image: Mapping[str, Any]) -> str:
    """`web-base 1.4.0/7`: the build as people name it; the ARN as given when it
    never resolved to a build."""
    text = image["build_arn"] or image["arn"]
    try:
        arn = Arn.parse(text)
    except InvalidArn:
        return str(text)
    return f"{arn.name} {arn.version}" + (f"/{arn.build}" if arn.build is not None else "")


def _console_url(build_arn: str | None) -> str | None:
    if not build_arn:
        return None
    try:
        return console_url(build_arn)
    except InvalidArn:
        return None


def _last(lines: Sequence[str], size: int) -> Sequence[str]:
    """The last of `lines` that together hold at least `size` characters: all that a
    cut to `size` can keep, without cleaning a thousand lines to show a few."""
    held = 0
    for start in range(len(lines) - 1, -1, -1):
        held += len(lines[start]) + 1
        if held > size:
            return lines[start:]
    return lines


def _message(text: str | None) -> tuple[str, ...]:
    """AWS text as lines to show: redacted, cleaned, at most `MAX_MESSAGE` characters."""
    if not text:
        return ()
    excerpt = head_within(display_lines([redact(text)]), MAX_MESSAGE)
    return (*excerpt.lines, more_lines(excerpt.omitted)) if excerpt.omitted else excerpt.lines


def _word(text: str) -> str:
    """A status as it is (`FAILED`); anything unexpected from AWS as code."""
    return text if _WORD.fullmatch(text) else _code(text)


def _cell(text: str | None) -> str:
    """Text in a table cell: one line, as code, its pipes escaped. GFM reads `\\|` as a
    pipe even inside a code span, and splits the row at any other."""
    return _code(text).replace("|", "\\|")


def _code(text: str | None) -> str:
    """`text` as one code span: nothing in it is read as Markdown or HTML (CommonMark:
    a span opened by N backticks ends only at a run of exactly N, so N is one more
    than the longest run inside; a space pads a backtick at either end)."""
    line = " ".join(display_lines([text or ""]))
    if len(line) > MAX_CELL:
        line = line[: MAX_CELL - 1] + "…"
    if not line:
        return ""
    fence = "`" * (1 + max((len(run) for run in _BACKTICKS.findall(line)), default=0))
    if line.startswith("`") or line.endswith("`") or (line[0] == line[-1] == " "):
        line = f" {line} "
    return f"{fence}{line}{fence}"


def _block(lines: Sequence[str]) -> list[str]:
    """`lines` as a fenced code block whose fence no line can close (CommonMark: the
    closing fence is at least as long as the opening one)."""
    longest = max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *lines, fence]


def _join(head: str, sections: Sequence[str]) -> str:
    return "\n".join([head, *sections]).rstrip("\n") + "\n"


def _size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))
