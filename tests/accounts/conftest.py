from __future__ import annotations

import pytest


@pytest.fixture
def sts(moto: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's server as STS, named by botocore's own override, AWS_ENDPOINT_URL_STS,
    as a user would point ibwatch at a stand-in: AssumeRole goes there."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto)
    return moto
