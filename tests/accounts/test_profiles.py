"""A profile named in `[aws.accounts."<id>"]` that the AWS config and credentials
files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE) do not hold is refused when the
sessions are built, by `ibwatch check-config`, and by `ibwatch run` at start (exit 2),
each naming the key that holds it; never blamed on AWS_PROFILE, never found only at
the account's first call."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.accounts.support import B
from watcher import cli
from watcher.aws import AwsImageSource
from watcher.config import load
from watcher.config.aws import AccountConfig
from watcher.errors import Misconfigured
from watcher.operator_commands import check_config
from watcher.testing import FakeClock

KEY = f'aws.accounts."{B}".profile'


def with_profile_images_b(tmp_path: Path) -> None:
    # tests/conftest.py points AWS_SHARED_CREDENTIALS_FILE here, empty until now.
    (tmp_path / "no-aws-credentials").write_text(
        "[images-b]\naws_access_key_id = AKIDPROFILEB\naws_secret_access_key = not-a-secret\n"
    )


def config_file(tmp_path: Path, profile: str) -> Path:
    """A daemon's config whose calls, were any made, could reach nothing but a closed
    loopback port."""
    path = tmp_path / "watcher.toml"
    path.write_text(
        '[aws]\nendpoint_url = "http://127.0.0.1:9"\n[server]\nlisten = "127.0.0.1:0"\n'
        '[watch]\narns = ["arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.0.0/1"]\n'
        f'[state]\npath = "{tmp_path / "state.db"}"\n[[sinks]]\ntype = "log"\n'
        f'[aws.accounts."{B}"]\nprofile = "{profile}"\n'
    )
    return path


def test_a_mistyped_profile_is_refused_when_the_sessions_are_built(tmp_path: Path) -> None:
    with_profile_images_b(tmp_path)
    with pytest.raises(Misconfigured) as caught:
        AwsImageSource(clock=FakeClock(), accounts={B: AccountConfig(profile="imgaes-b")})
    said = str(caught.value)
    assert said.startswith(f"{KEY}: no profile 'imgaes-b' in the AWS config file ")
    assert str(tmp_path / "no-aws-credentials") in said, "the files looked in are named"
    assert "(did you mean 'images-b'?)" in said
    assert "AWS_PROFILE" not in said
    assert caught.value.code == "ProfileNotFound"


def test_a_profile_of_the_config_file_alone_is_accepted(tmp_path: Path) -> None:
    """`[profile name]` in AWS_CONFIG_FILE (one that assumes a role, say) is a profile too."""
    (tmp_path / "no-aws-config").write_text("[profile images-b]\nregion = eu-west-1\n")
    AwsImageSource(clock=FakeClock(), accounts={B: AccountConfig(profile="images-b")})


def test_check_config_reports_a_profile_the_aws_files_do_not_hold(tmp_path: Path) -> None:
    with_profile_images_b(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert check_config(load(config_file(tmp_path, "imgaes-b"), env={}), out, err) == 2
    assert err.getvalue().startswith(f"ibwatch: {KEY}: no profile 'imgaes-b' ")
    assert out.getvalue() == ""
    out, err = io.StringIO(), io.StringIO()
    assert check_config(load(config_file(tmp_path, "images-b"), env={}), out, err) == 0
    assert err.getvalue() == ""


def test_run_exits_2_at_start_naming_the_profiles_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, "imgaes-b")
    assert cli.main(["run", "--config", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"ibwatch: {KEY}: no profile 'imgaes-b' ")
