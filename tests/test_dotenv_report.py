"""`--dotenv`'s writer: every file it writes is one GitLab reads (tests/gitlab_dotenv.py
transcribes GitLab's parser), and a value that would break GitLab's rules is left
empty with a warning, never written broken."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests import gitlab_dotenv
from tests.report_factory import image, report
from watcher.config.environment import ENV_OVERRIDES
from watcher.dotenv_report import ALWAYS, MAX_VARIABLES, ami_key, dotenv_lines, write_dotenv
from watcher.result_files import no_result
from watcher.step_outputs import step_outputs

HEAD = "arn:aws:imagebuilder:us-east-1:123456789012:image"
BUILD = f"{HEAD}/web-base/1.4.0/7"
CONSOLE = "https://us-east-1.console.aws.amazon.com/imagebuilder/home?region=us-east-1#/images"


def available(**fields: Any) -> dict[str, Any]:
    """One image of the report, AVAILABLE with an AMI in two regions."""
    amis = [{"region": "us-east-1", "image": "ami-1"}, {"region": "eu-west-1", "image": "ami-2"}]
    return image(fields.pop("arn", BUILD), **{"amis": amis, **fields})


def failed(**fields: Any) -> dict[str, Any]:
    step = {"workflow": "TEST", "name": "RunImageTests", "action": "", "message": ""}
    defaults = {
        "status": "FAILED",
        "amis": [],
        "failed_workflow_step": step,
        "log_group": "/aws/imagebuilder/web-base",
        "console_url": CONSOLE,
    }
    return available(**{**defaults, **fields})


def written(tmp_path: Path, result: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    path = tmp_path / "ibwatch.env"
    warnings = write_dotenv(path, result)
    return gitlab_dotenv.parse(path.read_bytes()), warnings


def test_an_available_build_writes_every_variable_and_one_per_region(tmp_path: Path) -> None:
    values, warnings = written(tmp_path, report(available()))
    assert values == {
        "IBWATCH_STATUS": "AVAILABLE",
        "IBWATCH_EXIT_CODE": "0",
        "IBWATCH_BUILD_ARN": BUILD,
        "IBWATCH_FAILED_STEP": "",
        "IBWATCH_LOG_GROUP": "",
        "IBWATCH_CONSOLE_URL": "",
        "IBWATCH_AMIS": '{"us-east-1":"ami-1","eu-west-1":"ami-2"}',
        "IBWATCH_CONTAINER_URIS": "[]",
        "IBWATCH_AMI_US_EAST_1": "ami-1",
        "IBWATCH_AMI_EU_WEST_1": "ami-2",
    }
    assert warnings == []


def test_a_failed_build_names_its_step_log_group_and_console(tmp_path: Path) -> None:
    values, _ = written(tmp_path, report(failed(), status="FAILED", code=1))
    assert (values["IBWATCH_STATUS"], values["IBWATCH_EXIT_CODE"]) == ("FAILED", "1")
    assert values["IBWATCH_FAILED_STEP"] == "TEST/RunImageTests"
    assert values["IBWATCH_LOG_GROUP"] == "/aws/imagebuilder/web-base"
    assert values["IBWATCH_CONSOLE_URL"] == CONSOLE


def test_a_value_with_a_line_break_or_a_dollar_is_left_empty_with_a_warning(
    tmp_path: Path,
) -> None:
    """A line break would end the line (GitLab refuses the file); a `$` would be
    expanded by later jobs (GitLab stores dotenv values with raw: false)."""
    step = {"workflow": "TEST", "name": "Run\nTests", "action": "", "message": ""}
    result = report(failed(failed_workflow_step=step, log_group="/aws/$HOME"), status="FAILED")
    values, warnings = written(tmp_path, result)
    assert values["IBWATCH_FAILED_STEP"] == values["IBWATCH_LOG_GROUP"] == ""
    assert values["IBWATCH_CONSOLE_URL"] == CONSOLE
    assert [w.split(":")[0] for w in warnings] == [
        "IBWATCH_FAILED_STEP left empty",
        "IBWATCH_LOG_GROUP left empty",
    ]


def test_regions_past_gitlabs_twenty_variables_are_left_to_ibwatch_amis(tmp_path: Path) -> None:
    regions = {f"xx-test-{n}": f"ami-{n}" for n in range(15)}
    amis = [{"region": region, "image": ami} for region, ami in regions.items()]
    values, warnings = written(tmp_path, report(available(amis=amis)))
    assert len(values) == MAX_VARIABLES
    assert json.loads(values["IBWATCH_AMIS"]) == regions
    assert values["IBWATCH_AMI_XX_TEST_11"] == "ami-11"
    assert "IBWATCH_AMI_XX_TEST_12" not in values
    assert warnings == [
        f"IBWATCH_AMI_XX_TEST_{n} not written: GitLab takes 20 variables at most"
        for n in (12, 13, 14)
    ]


def test_a_value_that_would_pass_gitlabs_5_kb_is_left_empty(tmp_path: Path) -> None:
    long_url = CONSOLE + "/" + "x" * 5000
    values, warnings = written(tmp_path, report(failed(console_url=long_url), status="FAILED"))
    assert values["IBWATCH_CONSOLE_URL"] == ""
    assert values["IBWATCH_FAILED_STEP"] == "TEST/RunImageTests"  # kept: it came first
    assert warnings[0].startswith("IBWATCH_CONSOLE_URL left empty: GitLab refuses a dotenv")
    assert (tmp_path / "ibwatch.env").stat().st_size < gitlab_dotenv.SIZE_LIMIT


def test_a_region_two_images_built_in_has_no_variable_of_its_own(tmp_path: Path) -> None:
    other = available(arn=f"{HEAD}/api/2.0.0/1", amis=[{"region": "us-east-1", "image": "ami-9"}])
    values, warnings = written(tmp_path, report(available(), other))
    assert "IBWATCH_AMI_US_EAST_1" not in values
    assert values["IBWATCH_AMI_EU_WEST_1"] == "ami-2"
    assert values["IBWATCH_BUILD_ARN"] == ""  # two builds: no single one
    assert warnings == [
        "IBWATCH_AMI_US_EAST_1 is not set: 2 images have an AMI there (ami-1, ami-9); "
        "the job log lists each image's AMIs"
    ]


def test_a_run_without_a_result_has_its_status_exit_code_and_empty_json(tmp_path: Path) -> None:
    """`{}` and `[]` where later jobs parse JSON, never an empty value."""
    values, warnings = written(tmp_path, no_result(4))
    assert values == {
        **dict.fromkeys(ALWAYS, ""),
        "IBWATCH_STATUS": "ERROR",
        "IBWATCH_EXIT_CODE": "4",
        "IBWATCH_AMIS": "{}",
        "IBWATCH_CONTAINER_URIS": "[]",
    }
    assert warnings == []
    assert written(tmp_path, no_result(143))[0]["IBWATCH_STATUS"] == "INTERRUPTED"


def test_a_report_that_cannot_be_written_is_a_warning_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "ibwatch.env"
    (warning,) = write_dotenv(path, report(available()))
    assert warning == f"--dotenv {path}: No such file or directory"


def test_a_report_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "ibwatch.env"
    path.write_text("STALE=1\n" * 500)
    values, _ = written(tmp_path, report(available()))
    assert "STALE" not in values
    assert [p.name for p in tmp_path.iterdir()] == ["ibwatch.env"]


def test_no_variable_is_read_as_a_setting_by_a_later_ibwatch() -> None:
    """Later jobs get these as environment variables; `ibwatch run` there reads
    IBWATCH_<SECTION>_<KEY> as settings and refuses unknown ones of a section."""
    sections = {f"IBWATCH_{section.upper()}_" for section, _ in ENV_OVERRIDES.values()}
    for key in (*ALWAYS, ami_key("us-east-1"), ami_key("ap-southeast-2")):
        assert key not in ENV_OVERRIDES
        assert not key.startswith(tuple(sections)), key


_TEXT = st.text(max_size=300)
_REGION = st.text(
    alphabet=string.ascii_lowercase + string.digits + "-_ $\n", min_size=1, max_size=20
)


@settings(max_examples=100, deadline=None)
@given(
    step=st.one_of(st.none(), _TEXT),
    log_group=st.one_of(st.none(), _TEXT),
    console=st.one_of(st.none(), st.text(max_size=3000)),
    amis=st.dictionaries(_REGION, _TEXT, max_size=25),
    uris=st.lists(_TEXT, max_size=10),
)
def test_whatever_the_values_gitlab_reads_every_variable_back_exact_or_empty(
    step: str | None,
    log_group: str | None,
    console: str | None,
    amis: dict[str, str],
    uris: list[str],
) -> None:
    result = report(
        failed(
            failed_workflow_step=None
            if step is None
            else {"workflow": "", "name": step, "action": "", "message": ""},
            log_group=log_group,
            console_url=console,
            amis=[{"region": region, "image": ami} for region, ami in amis.items()],
            containers=[{"region": "us-east-1", "image_uris": uris}],
        ),
        status="FAILED",
        code=1,
    )
    outputs = step_outputs(result)
    lines, _ = dotenv_lines(outputs)
    values = gitlab_dotenv.parse("".join(f"{line}\n" for line in lines).encode())
    assert set(ALWAYS) <= set(values)
    expected = {
        "IBWATCH_FAILED_STEP": {outputs.failed_step or ""},
        "IBWATCH_LOG_GROUP": {log_group or ""},
        "IBWATCH_CONSOLE_URL": {console or ""},
        "IBWATCH_AMIS": {json.dumps(dict(outputs.amis), separators=(",", ":"))},
        "IBWATCH_CONTAINER_URIS": {json.dumps(uris, separators=(",", ":"))},
    }
    for region, ami in outputs.amis.items():
        expected.setdefault(ami_key(region), set()).add(ami)
    for key, value in values.items():
        if key in expected:
            assert value in {*expected[key], ""}, key
