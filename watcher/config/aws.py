"""`[aws]`: how to reach Image Builder."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import field_validator

from watcher.config._base import PositiveDuration, Strict


class AwsConfig(Strict):
    """How to reach Image Builder. Credentials never come from here: botocore's own
    chain (environment, profile, instance role) provides them."""

    region: str | None = None
    """Region for ARNs that need one; None lets botocore decide. An ARN's own region wins."""
    endpoint_url: str | None = None
    """None lets botocore read AWS_ENDPOINT_URL_IMAGEBUILDER / AWS_ENDPOINT_URL."""
    connect_timeout: PositiveDuration = 5.0
    read_timeout: PositiveDuration = 20.0

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
