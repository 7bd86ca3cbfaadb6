"""GitLab's reading of a dotenv report, for the tests: what `--dotenv` writes must be
read back by these rules exactly, or GitLab would refuse the whole file.

Transcribed from GitLab's parser, app/services/ci/parse_dotenv_artifact_service.rb
(gitlabhq/gitlabhq), and the key validation of the variables it makes,
app/models/concerns/ci/has_variable.rb; the limits are GitLab's defaults
(doc/ci/variables/dotenv_variables.md: 5 KB, 20 variables on GitLab Self-Managed).
"""

from __future__ import annotations

import re

SIZE_LIMIT = 5120
VARIABLE_LIMIT = 20

_LINE = re.compile(r"^(.*?)=(.*)$")  # `line.scan(/^(.*?)=(.*)$/).last`
_KEY = re.compile(r"[a-zA-Z0-9_]+")  # `/\A[a-zA-Z0-9_]+\z/`, at most 255 characters
_RUBY_WHITESPACE = "\x00\t\n\x0b\x0c\r "  # what Ruby's String#strip removes


class Refused(AssertionError):
    """GitLab would answer the artifact upload with 400 Bad Request."""


def parse(data: bytes) -> dict[str, str]:
    """The variables GitLab makes of `data`, or Refused saying why it would not."""
    if not len(data) < SIZE_LIMIT:  # `artifact.file.size < dotenv_size_limit`
        raise Refused(f"Dotenv Artifact Too Big: {len(data)} bytes")
    text = data.decode("utf-8")  # GitLab re-encodes with replacement; ours must be UTF-8
    variables: dict[str, str] = {}
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # Ruby's each_line: a last "\n" ends the last line, no empty line after
    for line in lines:
        found = _LINE.match(line)
        if found is None:
            raise Refused(f"Invalid Format: {line!r}")
        key, value = (part.strip(_RUBY_WHITESPACE) for part in found.groups())
        if not _KEY.fullmatch(key) or len(key) > 255:
            raise Refused(f"Key can contain only letters, digits and '_': {key!r}")
        variables[key] = value  # the last value of a repeated key wins
    if len(variables) > VARIABLE_LIMIT:
        raise Refused(f"Dotenv files cannot have more than {VARIABLE_LIMIT} variables")
    return variables
