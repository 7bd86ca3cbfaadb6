"""The suite-wide guard (tests/secret_guard.py): a secret in captured output fails
the test it came from."""

from __future__ import annotations

import pytest


def test_a_test_that_logs_a_secret_fails_and_the_secret_is_not_shown(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import structlog

        def test_leaky():
            structlog.get_logger().info("posting", url="https://hooks.example/SECRET-LEAKED-TOKEN")

        def test_careful():
            structlog.get_logger().info("posting", url="https://hooks.example/…")
        """
    )
    # --show-capture=no: the inner run must not print the leak into our own output.
    result = pytester.runpytest_inprocess("-p", "tests.secret_guard", "--show-capture=no")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*a configured secret appeared in 'Captured stdout call'*"])
    result.stdout.no_fnmatch_line("*LEAKED-TOKEN*")
