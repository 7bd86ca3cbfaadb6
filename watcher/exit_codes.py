"""The exit codes of `wait-until-available` and `start`, a contract CI scripts rely on
(README, "exit code"), and what each means in a few words: the one table that the
command's help and the `--summary` of a failed step read their explanations from.

Imports nothing: the CLI reads it before any command runs.
"""

from __future__ import annotations

EXIT_AVAILABLE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_API_ERROR = 4
EXIT_INTERNAL = 70
"""EX_SOFTWARE: a bug, not a build that failed."""
EXIT_SIGINT = 128 + 2
EXIT_SIGTERM = 128 + 15
"""128 + the signal, as a shell reports a process a signal ended."""

MEANINGS = {
    EXIT_AVAILABLE: "every build is AVAILABLE",
    EXIT_FAILED: "a build ended without becoming AVAILABLE "
    "(FAILED, CANCELLED, DELETED, DEPRECATED, DISABLED)",
    EXIT_USAGE: "a usage or configuration error; no Image Builder call was made",
    EXIT_TIMEOUT: "the timeout came before every build had ended",
    EXIT_API_ERROR: "an API error that retrying will not heal "
    "(access denied, not found, bad credentials)",
    EXIT_INTERNAL: "an internal error in ibwatch (a bug)",
    EXIT_SIGINT: "interrupted by SIGINT",
    EXIT_SIGTERM: "interrupted by SIGTERM",
}


def meaning(code: int) -> str:
    """What exit code `code` says; a code outside the contract is named as such."""
    return MEANINGS.get(code, "not an exit code ibwatch documents")
