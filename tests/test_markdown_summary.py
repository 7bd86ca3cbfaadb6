"""`--summary`: the result as Markdown for a CI job's summary page, read back through
cmark-gfm, the renderer GitHub itself uses, with raw HTML let through (as if nothing
sanitized it after): AWS text must never become markup of its own."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm
from cmarkgfm.cmark import Options

from tests.report_factory import WEB, image, report
from watcher.markdown_summary import append_summary, render_summary
from watcher.result_files import no_result

ARN = "arn:aws:imagebuilder:eu-west-1:123456789012:image/windows-agent/3.1.0/12"
HOSTILE = (
    "a | b ``` c `d` <script>alert(1)</script> **bold** [x](javascript:alert(1)) "
    "</details> <img src=x onerror=alert(1)>\nsecond line | e"
)


def failed(**fields: Any) -> dict[str, Any]:
    step = {"workflow": "TEST", "name": "RunImageTests", "action": "ExecuteComponents"}
    defaults = {
        "status": "FAILED",
        "reason": "Image testing failed",
        "failed_in": "TESTING",
        "failed_step": "RunImageTests",
        "failed_workflow_step": {**step, "message": "exit code 1: service did not start"},
        "log_group": "/aws/imagebuilder/windows-agent",
        "log_stream": "3.1.0/12",
        "console_url": "https://eu-west-1.console.aws.amazon.com/imagebuilder/home?region=eu-west-1",
        "log_tail": ["Stdout: starting", "Stderr: did not start"],
    }
    return image(fields.pop("arn", ARN), **{**defaults, **fields})


class Page(HTMLParser):
    """The rendered HTML as tests read it: the tags, the table rows, the code."""

    def __init__(self, markdown: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[str] = []
        self.rows: list[list[str]] = []
        self.code: list[str] = []
        self._cell: list[str] | None = None
        self._code: list[str] | None = None
        self.feed(cmarkgfm.github_flavored_markdown_to_html(markdown, Options.CMARK_OPT_UNSAFE))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "code":
            self._code = []
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "code" and self._code is not None:
            self.code.append("".join(self._code))
            self._code = None

    def handle_data(self, data: str) -> None:
        for part in (self._cell, self._code):
            if part is not None:
                part.append(data)


def test_an_available_build_has_its_amis_and_container_images_per_region() -> None:
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.4.0-7"
    available = image(
        WEB,
        amis=[
            {"region": "us-east-1", "image": "ami-0a1b2c3d4e5f60718"},
            {"region": "eu-west-1", "image": "ami-0b2c3d4e5f6071829"},
        ],
        containers=[{"region": "us-east-1", "image_uris": [uri]}],
    )
    page = Page(render_summary(report(available)))
    assert ["web-base 1.4.0/7", "AVAILABLE"] in page.rows
    assert ["us-east-1", "ami-0a1b2c3d4e5f60718", "web-base 1.4.0/7"] in page.rows
    assert ["eu-west-1", "ami-0b2c3d4e5f6071829", "web-base 1.4.0/7"] in page.rows
    assert ["us-east-1", uri, "web-base 1.4.0/7"] in page.rows
    assert page.links == [
        "https://us-east-1.console.aws.amazon.com/imagebuilder/home?region=us-east-1"
        "#/images/arn%3Aaws%3Aimagebuilder%3Aus-east-1%3A123456789012%3Aimage%2Fweb-base"
        "%2F1.4.0/7/details"
    ]
    assert "h4" not in page.tags, "nothing to explain"


def test_a_failed_build_has_its_step_in_the_table_and_why_below() -> None:
    markdown = render_summary(report(failed(), status="FAILED", code=1))
    page = Page(markdown)
    assert markdown.startswith("### Image Builder: FAILED\n\nibwatch exit code 1: ")
    assert ["windows-agent 3.1.0/12", "FAILED in TESTING", "TEST/RunImageTests"] in page.rows
    assert "Image testing failed\n" in page.code
    assert "exit code 1: service did not start\n" in page.code
    assert "Stdout: starting\nStderr: did not start\n" in page.code
    assert "details" in page.tags
    assert any(
        link.startswith("https://eu-west-1.console.aws.amazon.com/cloudwatch/")
        for link in page.links
    )
    assert "/aws/imagebuilder/windows-agent" in page.code


def test_aws_text_never_becomes_markup() -> None:
    """A reason, a step and its message, a log line, an error: whatever AWS put in them
    shows as text, in code, and no table row gains or loses a cell."""
    hostile = failed(
        reason=HOSTILE,
        failed_in=HOSTILE,
        failed_workflow_step={
            "workflow": HOSTILE,
            "name": HOSTILE,
            "action": HOSTILE,
            "message": HOSTILE,
        },
        log_tail=HOSTILE.splitlines(),
        status="FAILED | x",
    )
    errored = image(WEB, status=None, error={"type": "x", "code": "x", "message": HOSTILE})
    page = Page(render_summary(report(hostile, errored, status="ERROR", code=4)))
    assert not {"script", "img", "strong", "em"} & set(page.tags)
    assert not [link for link in page.links if not link.startswith("https://")]
    assert {len(row) for row in page.rows[:3]} == {3}, page.rows
    assert any("<script>alert(1)</script>" in code for code in page.code)
    assert any(HOSTILE in code for code in page.code), "a block keeps every character"


def test_reasons_and_step_messages_are_redacted_as_log_lines_are() -> None:
    step = {"workflow": None, "name": "Run", "action": None, "message": "db password=hunter2-x"}
    markdown = render_summary(
        report(
            failed(
                reason="token ghp_abcdefghijklmnopqrstuvwxyz0123456789", failed_workflow_step=step
            )
        )
    )
    assert "hunter2" not in markdown
    assert "ghp_abcdef" not in markdown
    assert "password=[REDACTED]" in markdown


def test_a_huge_result_stays_within_the_budget_and_says_what_it_left_out() -> None:
    """--log-lines allows 1000 lines of 2000 characters per build; GitHub refuses a
    step summary over 1 MiB."""
    tail = [f"line {n} " + "x" * 1990 for n in range(1000)]
    builds = [
        failed(arn=f"{ARN[:-2]}{n}", build_arn=f"{ARN[:-2]}{n}", log_tail=tail) for n in range(8)
    ]
    markdown = render_summary(report(*builds, status="FAILED", code=1), budget=6_000)
    assert len(markdown.encode()) <= 6_000
    assert "The build logs' last lines are left out" in markdown
    assert "and the details of" in markdown
    assert len(Page(markdown).rows) == 9, "the table still names every build"


def test_a_summary_is_appended_after_what_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("# Earlier step\n")
    assert append_summary(path, report(image(WEB))) == []
    assert path.read_text().startswith("# Earlier step\n\n### Image Builder: AVAILABLE\n")


def test_a_summary_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    (warning,) = append_summary(tmp_path / "missing" / "summary.md", report(image(WEB)))
    assert warning.startswith(f"--summary {tmp_path / 'missing' / 'summary.md'}: ")


def test_a_run_without_a_result_says_its_exit_code_and_what_that_means() -> None:
    """A pipeline that could not be started, an internal error, a signal before the
    wait: the meaning comes from the CLI's own table (watcher.exit_codes)."""
    assert render_summary(no_result(70)) == (
        "### Image Builder: no result\n\nibwatch exit code 70: an internal error in ibwatch "
        "(a bug). It stopped before it had a result; the job log says why.\n"
    )
    assert "ibwatch exit code 130: interrupted by SIGINT." in render_summary(no_result(130))
