"""`--dotenv PATH`: a wait's result as a GitLab CI dotenv report
(`artifacts:reports:dotenv`), which GitLab turns into variables of later jobs.

GitLab refuses the whole file when one line breaks its rules, so every line is made
to keep them: a value that would break one is left empty (a region's AMI variable is
left out) and a warning says so. Never a file GitLab cannot read, never half a file
(it is renamed into place), and never anything written but that file. The rules, from
GitLab's parser (app/services/ci/parse_dotenv_artifact_service.rb), the model of the
variables it makes (app/models/concerns/ci/has_variable.rb) and
doc/ci/variables/dotenv_variables.md:

- the file is smaller than 5 KB (`file.size < dotenv_size_limit`, 5120 by default);
- at most 20 variables: the default limit on GitLab Self-Managed (GitLab.com allows
  more; 20 fits everywhere);
- every line is `KEY=value`, split at the first `=`, each side stripped of spaces; no
  empty lines, no comments, no quoting (quotes are kept as they are);
- a key is ASCII letters, digits and `_`, at most 255 characters;
- a value is one line ("Multiline values are not supported. GitLab rejects the file");
- values are stored expandable (`raw: false`), so a `$` in one would be read by later
  jobs as a variable reference: such a value is left empty too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watcher.step_outputs import StepOutputs, step_outputs

MAX_BYTES = 5119
"""GitLab takes a file strictly smaller than its 5120-byte default limit."""
MAX_VARIABLES = 20

STATUS = "IBWATCH_STATUS"
EXIT_CODE = "IBWATCH_EXIT_CODE"
BUILD_ARN = "IBWATCH_BUILD_ARN"
FAILED_STEP = "IBWATCH_FAILED_STEP"
LOG_GROUP = "IBWATCH_LOG_GROUP"
CONSOLE_URL = "IBWATCH_CONSOLE_URL"
AMIS = "IBWATCH_AMIS"
CONTAINER_URIS = "IBWATCH_CONTAINER_URIS"
AMI_PREFIX = "IBWATCH_AMI_"

ALWAYS = (STATUS, EXIT_CODE, BUILD_ARN, FAILED_STEP, LOG_GROUP, CONSOLE_URL, AMIS, CONTAINER_URIS)
"""Written on every run, empty when there is nothing to say, in this order: the order
in which they keep their values when the size limit is near."""

_KEY = re.compile(r"[A-Za-z0-9_]{1,255}")
_REGION = re.compile(r"[a-z0-9-]+")
# Control characters end a line or are not text; `$` would be expanded (see above).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f$]")


def write_dotenv(path: Path, report: Mapping[str, Any]) -> list[str]:
    """Replace `path` with the report's variables; return warnings for the log (a
    file that cannot be written among them: it costs the report, never the exit code)."""
    lines, warnings = dotenv_lines(step_outputs(report))
    try:
        _replace(path, "".join(f"{line}\n" for line in lines))
    except OSError as exc:
        return [*warnings, f"--dotenv {path}: {exc.strerror or exc}"]
    return warnings


def dotenv_lines(outputs: StepOutputs) -> tuple[list[str], list[str]]:
    """The lines of the file, and why any value was left out."""
    warnings: list[str] = []
    values = {
        STATUS: _utf8(outputs.status),
        EXIT_CODE: str(outputs.exit_code),
        BUILD_ARN: _utf8(outputs.build_arn or ""),
        FAILED_STEP: _utf8(outputs.failed_step or ""),
        LOG_GROUP: _utf8(outputs.log_group or ""),
        CONSOLE_URL: _utf8(outputs.console_url or ""),
        AMIS: _compact(dict(outputs.amis)),
        CONTAINER_URIS: _compact(list(outputs.container_uris)),
    }
    # Every key of ALWAYS is there, even empty: room for all of them is kept first.
    used = sum(len(f"{key}=\n".encode()) for key in ALWAYS)
    lines = []
    for key in ALWAYS:
        value = values[key]
        if not _keeps(value):
            warnings.append(f"{key} left empty: {_ONE_LINE}")
            value = ""
        elif used + len(value.encode()) > MAX_BYTES:
            warnings.append(f"{key} left empty: {_TOO_BIG}; the job log has the whole result")
            value = ""
        used += len(value.encode())
        lines.append(f"{key}={value}")
    warnings += [
        f"{ami_key(region)} is not set: {len(ids)} images have an AMI there "
        f"({', '.join(sorted(ids))}); the job log lists each image's AMIs"
        for region, ids in outputs.ambiguous_amis.items()
    ]
    for region, text in outputs.amis.items():
        ami = _utf8(text)
        key = ami_key(region)
        line = f"{key}={ami}"
        if not _REGION.fullmatch(region) or not _KEY.fullmatch(key) or not _keeps(ami):
            warnings.append(f"no variable for region {region!r}: {_ONE_LINE}; see {AMIS}")
        elif len(lines) >= MAX_VARIABLES:
            warnings.append(f"{key} not written: GitLab takes {MAX_VARIABLES} variables at most")
        elif used + len(f"{line}\n".encode()) > MAX_BYTES:
            warnings.append(f"{key} not written: {_TOO_BIG}")
        else:
            used += len(f"{line}\n".encode())
            lines.append(line)
    return lines, warnings


def _keeps(value: str) -> bool:
    """Whether GitLab reads `value` back as it is: one line, nothing its parser strips
    (it strips spaces, and control characters are refused here), no `$`."""
    return not _UNSAFE.search(value) and value == value.strip(" ")


def _utf8(value: str) -> str:
    """`value` as UTF-8 can hold it: AWS's JSON may carry a lone surrogate (`"\ud800"`
    parses), which no UTF-8 file can; `?` stands in for it."""
    return value.encode("utf-8", "replace").decode("utf-8")


def ami_key(region: str) -> str:
    """`us-east-1` -> `IBWATCH_AMI_US_EAST_1`: a variable name GitLab accepts."""
    return AMI_PREFIX + region.upper().replace("-", "_")


_ONE_LINE = "a GitLab dotenv value is one line without `$` or surrounding spaces"
_TOO_BIG = f"GitLab refuses a dotenv report of more than {MAX_BYTES} bytes"


def _replace(path: Path, text: str) -> None:
    """Write a file beside `path`, then rename it over `path`: GitLab (or anything
    reading it) finds the whole report or none, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 is for secrets; this is none
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
