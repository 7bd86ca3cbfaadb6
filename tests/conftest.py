from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from watcher.testing import FakeClock

pytest_plugins = ["pytester", "tests.secret_guard", "tests.pg_support"]


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing in the suite may find real credentials or reach past loopback."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_IMAGEBUILDER",
        "AWS_ENDPOINT_URL_LOGS",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts from structlog's defaults: `watcher.cli.main` configures it for
    the whole process (a level filter among it), and a later test's `capture_logs`
    would not see the lines that filter drops."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    # Imported here: moto's server (flask, werkzeug) is slow to import, and most
    # tests never need it.
    from tests.sqs_support import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def moto(_moto_server: str) -> str:
    """The endpoint URL of this process's moto server, with nothing in it yet."""
    from tests.sqs_support import reset

    reset(_moto_server)
    return _moto_server


@pytest.fixture
def sqs_endpoint(moto: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`moto`, named by botocore's own override, AWS_ENDPOINT_URL_SQS, as a user would
    point the daemon at a stand-in; the daemon's subprocesses inherit it, and the
    simulator's pusher sends there too."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto)
    return moto
