"""`[aws.accounts."<id>"]`: a role to assume or a profile per account, checked when
the file is loaded, each mistake named by its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.accounts.support import ROLE_A, A
from watcher.config import ConfigError, load

EXAMPLE = Path(__file__).parents[2] / "config" / "watcher.example.toml"
WATCH = '[watch]\narns = ["arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"]\n'


def problems(tmp_path: Path, accounts: str) -> str:
    path = tmp_path / "watcher.toml"
    path.write_text(WATCH + accounts)
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    return str(caught.value)


def test_a_role_and_a_profile_account_load(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text(
        WATCH + f'[aws.accounts."{A}"]\nrole_arn = "{ROLE_A}"\nexternal_id = "platform-images"\n'
        '[aws.accounts."222222222222"]\nprofile = "images-prod"\n'
    )
    accounts = load(path, env={}).aws.accounts
    assert accounts[A].role_arn == ROLE_A
    assert (accounts[A].external_id, accounts[A].session_name) == ("platform-images", "ibwatch")
    assert accounts["222222222222"].profile == "images-prod"


@pytest.mark.parametrize("account", ["12345", "1234567890123", "prod-account", "12345678901x"])
def test_an_account_id_that_is_not_twelve_digits_is_refused(tmp_path: Path, account: str) -> None:
    said = problems(tmp_path, f'[aws.accounts."{account}"]\nprofile = "x"\n')
    assert f"aws.accounts.{account}: expected a 12-digit AWS account id" in said


def test_both_a_role_and_a_profile_is_refused(tmp_path: Path) -> None:
    said = problems(tmp_path, f'[aws.accounts."{A}"]\nrole_arn = "{ROLE_A}"\nprofile = "x"\n')
    assert f"aws.accounts.{A}: set role_arn (a role to assume) or profile" in said
    assert "not both" in said


def test_neither_a_role_nor_a_profile_is_refused(tmp_path: Path) -> None:
    said = problems(tmp_path, f'[aws.accounts."{A}"]\nsession_name = "ibwatch"\n')
    assert f"aws.accounts.{A}: set role_arn (a role to assume) or profile" in said
    assert "neither is set" in said


@pytest.mark.parametrize(
    "role_arn",
    [
        f"arn:aws:iam::{A}:user/ibwatch",  # a user, not a role
        "arn:aws:iam::1111:role/ibwatch-reader",  # not a 12-digit account
        f"arn:aws:iam:us-east-1:{A}:role/ibwatch-reader",  # IAM ARNs have no region
        "ibwatch-reader",
    ],
)
def test_a_role_arn_that_is_not_an_iam_role_arn_is_refused(tmp_path: Path, role_arn: str) -> None:
    said = problems(tmp_path, f'[aws.accounts."{A}"]\nrole_arn = "{role_arn}"\n')
    assert f"aws.accounts.{A}.role_arn: expected an IAM role ARN like" in said


def test_role_keys_with_a_profile_and_stray_keys_are_named(tmp_path: Path) -> None:
    said = problems(
        tmp_path,
        f'[aws.accounts."{A}"]\nprofile = "x"\nexternal_id = "abc"\n'
        '[aws.accounts."222222222222"]\nrolearn = "x"\n',
    )
    assert f"aws.accounts.{A}: external_id goes with role_arn only" in said
    assert "aws.accounts.222222222222.rolearn: unknown key (did you mean 'role_arn'?)" in said


def test_session_name_and_external_id_follow_sts_rules(tmp_path: Path) -> None:
    said = problems(
        tmp_path,
        f'[aws.accounts."{A}"]\nrole_arn = "{ROLE_A}"\nsession_name = "my session"\n'
        'external_id = "x"\n',
    )
    assert f"aws.accounts.{A}.session_name: expected 2 to 64 characters" in said
    assert f"aws.accounts.{A}.external_id: expected 2 to 1224 characters" in said


def test_the_examples_commented_accounts_load_once_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    block = re.search(r"^# \[aws\.accounts\..*?(?=^[^#]|\Z)", text, re.MULTILINE | re.DOTALL)
    assert block is not None
    tables = re.sub(r"^# ?", "", block.group(0), flags=re.MULTILINE)
    path = tmp_path / "watcher.toml"
    path.write_text(WATCH + tables)
    accounts = load(path, env={}).aws.accounts
    assert sorted(accounts) == ["111111111111", "222222222222"]
