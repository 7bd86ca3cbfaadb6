"""`[aws]`: how to reach Image Builder, and `[aws.accounts."<id>"]`: which credentials
read the builds of each account."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from watcher.config._base import PositiveDuration, Strict, problems_error

DEFAULT_SESSION_NAME = "ibwatch"
"""RoleSessionName when `session_name` is not set: the assumed-role ARN, and so the
watched account's CloudTrail, shows `assumed-role/<role>/ibwatch`."""

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
# An IAM role ARN: arn:<partition>:iam::<account>:role/<path><name>. IAM's model
# (iam service-2.json): pathType `/` or `/[\u0021-\u007E]+/` (at most 512),
# roleNameType `[\w+=,.@-]+` (1 to 64). IAM ARNs have no region (the empty fourth field).
_ROLE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::(?P<account>[0-9]{12}):role"
    r"(?P<path>/(?:[\x21-\x7e]{0,510}/)?)(?P<name>[\w+=,.@-]{1,64})"
)
_ROLE_EXAMPLE = "arn:aws:iam::111111111111:role/ibwatch-reader"
# STS's model (sts service-2.json), AssumeRole's members.
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")  # roleSessionNameType
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")  # externalIdType


class AccountConfig(Strict):
    """How to read one account's builds: a role to assume (with the default chain's
    credentials) or a named profile, exactly one of the two."""

    role_arn: str | None = None
    """Assumed with STS AssumeRole, using botocore's default credentials, at the
    regional STS endpoint of each Region whose ARNs it reads; refreshed before it
    expires."""
    external_id: str | None = None
    """AssumeRole's ExternalId, when the role's trust policy asks for one."""
    session_name: str = DEFAULT_SESSION_NAME
    """AssumeRole's RoleSessionName."""
    profile: str | None = None
    """A profile of the AWS config and credentials files (it may itself assume a role).
    Not looked up here (the files are the environment's): the sessions are, at start,
    and `ibwatch check-config` (`watcher.credentials.profile_problems`)."""

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.fullmatch(value):
            raise ValueError(f"expected an IAM role ARN like {_ROLE_EXAMPLE!r}, got {value!r}")
        return value

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str | None) -> str | None:
        if value is not None and not _EXTERNAL_ID.fullmatch(value):
            raise ValueError(
                "expected 2 to 1224 characters of letters, digits and +=,.@:/-_ "
                "(STS's ExternalId), no spaces"
            )
        return value

    @field_validator("session_name")
    @classmethod
    def _session_name(cls, value: str) -> str:
        if not _SESSION_NAME.fullmatch(value):
            raise ValueError(
                "expected 2 to 64 characters of letters, digits and +=,.@-_ "
                f"(STS's RoleSessionName), got {value!r}"
            )
        return value

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expected the name of a profile of the AWS config file")
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        if self.role_arn is not None and self.profile is not None:
            raise ValueError(
                "set role_arn (a role to assume) or profile (a named AWS profile), not both"
            )
        if self.role_arn is None and self.profile is None:
            raise ValueError(
                "set role_arn (a role to assume) or profile (a named AWS profile); neither is set"
            )
        if self.profile is not None:
            given = [k for k in ("external_id", "session_name") if k in self.model_fields_set]
            if given:
                verb = "goes" if len(given) == 1 else "go"
                raise ValueError(
                    f"{' and '.join(given)} {verb} with role_arn only; a profile sets its "
                    "own in the AWS config file"
                )
        return self


class AwsConfig(Strict):
    """How to reach Image Builder. Secrets never come from here: botocore's own chain
    (environment, profile, instance role) provides the credentials, and `accounts`
    only says which role or profile reads which account."""

    region: str | None = None
    """Region for ARNs that need one; None lets botocore decide. An ARN's own region wins."""
    endpoint_url: str | None = None
    """None lets botocore read AWS_ENDPOINT_URL_IMAGEBUILDER / AWS_ENDPOINT_URL."""
    connect_timeout: PositiveDuration = 5.0
    read_timeout: PositiveDuration = 20.0
    accounts: Mapping[str, AccountConfig] = Field(default_factory=dict)
    """Account id -> how to read it. The ARN's fifth field picks the entry; an account
    not listed is read with botocore's default credentials."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+", value):
            raise ValueError(f"expected an AWS region like 'us-east-1', got {value!r}")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL like 'http://127.0.0.1:4000', got {value!r}")
        return value

    @field_validator("accounts")
    @classmethod
    def _account_ids(cls, value: Mapping[str, AccountConfig]) -> Mapping[str, AccountConfig]:
        wrong = [
            (
                (account,),
                "expected a 12-digit AWS account id (the fifth field of the ARNs it owns), "
                f'quoted as a table name: [aws.accounts."111111111111"]; got {account!r}',
                account,
            )
            for account in value
            if not _ACCOUNT_ID.fullmatch(account)
        ]
        if wrong:
            raise problems_error("AwsConfig", wrong)
        return value
