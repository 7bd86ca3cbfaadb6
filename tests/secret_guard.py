"""A pytest plugin: any secret-looking string in a test's captured output (stdout,
stderr, log records) fails that test, whatever the test asserts.

Every secret the suite configures (URL tokens, signing secrets) is written to match
`SECRET_LOOKING`, so this watches the whole suite for a secret that reached a log
line, an error message or printed output.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

SECRET_LOOKING = re.compile(r"whsec_[A-Za-z0-9+/=]{4,}|SECRET-[A-Z0-9-]+")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    for section, content in report.sections:
        if not section.endswith(report.when):
            continue  # earlier phases' output is carried along; judged there
        found = SECRET_LOOKING.search(content)
        if found and report.passed:
            report.outcome = "failed"
            report.longrepr = (
                f"a configured secret appeared in '{section}' "
                f"(starting {found.group()[:4]!r}…): secrets must never be logged or printed"
            )
