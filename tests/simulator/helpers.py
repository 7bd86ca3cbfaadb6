"""Helpers for the simulator's tests beyond `tests.support`: pipelines in code, a
raw signed-looking request for any simulated operation, scenarios that hold both
images and pipelines, a CloudWatch Logs client, and `ibwatch simulate` run by the
CLI's `main` in the test's own thread."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import pytest

from tests.support import (
    ACCOUNT,
    SIGNED_LOOKING,
    WEB_BASE_VERSION,
    aws_client,
    timeline,
    web_base_image,
)
from watcher.cli import main
from watcher.simulator import Scenario, model

REGION_PREFIX = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
NIGHTLY = f"{REGION_PREFIX}:image-pipeline/web-base-nightly"
API_PIPELINE = f"{REGION_PREFIX}:image-pipeline/api-runtime"
API_VERSION = f"{REGION_PREFIX}:image/api-runtime/2.0.3"

# A run: 1 minute PENDING, 4 minutes BUILDING, then AVAILABLE (at 300s).
QUICK = timeline(("PENDING", 60), ("BUILDING", 240), ("AVAILABLE", None))
# A run that fails at 120s.
FAILING = timeline(("PENDING", 60), ("BUILDING", 60), ("FAILED", None))
AVAILABLE_NOW = timeline(("AVAILABLE", None))


def nightly(**overrides: Any) -> dict[str, Any]:
    """The web-base-nightly pipeline, building web-base 1.4.0 (the image of
    `tests.support.web_base_image`, which names this pipeline)."""
    pipeline: dict[str, Any] = {
        "arn": NIGHTLY,
        "image": WEB_BASE_VERSION,
        "timeline": QUICK,
        "amis": [{"region": "us-east-1", "image": "ami-0d4e5f60718293a41"}],
    }
    pipeline.update(overrides)
    return pipeline


def api_runtime(**overrides: Any) -> dict[str, Any]:
    """A container pipeline that has never run."""
    pipeline: dict[str, Any] = {
        "arn": API_PIPELINE,
        "image": API_VERSION,
        "type": "DOCKER",
        "timeline": QUICK,
        "containers": [
            {
                "region": "us-east-1",
                "image_uris": [f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/api-runtime:2.0.3"],
            }
        ],
    }
    pipeline.update(overrides)
    return pipeline


def world(
    images: list[dict[str, Any]] | None = None,
    pipelines: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Scenario:
    """A scenario of images (default: web-base 1.4.0/7) and pipelines (default: nightly)."""
    return Scenario.model_validate(
        {
            "images": images if images is not None else [web_base_image()],
            "pipelines": pipelines if pipelines is not None else [nightly()],
            **fields,
        }
    )


async def raw_call(
    session: aiohttp.ClientSession,
    endpoint_url: str,
    operation: str,
    params: dict[str, Any],
    *,
    region: str = "us-east-1",
) -> tuple[int, dict[str, str], bytes]:
    """One request of `operation` as the wire carries it, at the model's method and
    path: a query string for GET, a JSON body otherwise; signed-looking for `region`."""
    http = model.operation(operation).http
    url = f"{endpoint_url}{http['requestUri']}"
    headers = {
        name: value.replace("/us-east-1/", f"/{region}/") for name, value in SIGNED_LOOKING.items()
    }
    if http["method"] == "GET":
        request = session.get(url, params=params, headers=headers)
    else:
        request = session.request(http["method"], url, data=json.dumps(params), headers=headers)
    async with request as response:
        return response.status, dict(response.headers), await response.read()


def build_arn(number: int, version: str = WEB_BASE_VERSION) -> str:
    return f"{version}/{number}"


def images_of(*numbers: int, **overrides: Any) -> list[dict[str, Any]]:
    """web-base 1.4.0 builds with these numbers, each with `overrides`."""
    return [web_base_image(arn=build_arn(n), **overrides) for n in numbers]


@asynccontextmanager
async def logs(endpoint_url: str, region: str = "us-east-1") -> AsyncIterator[Any]:
    """The real aiobotocore CloudWatch Logs client, retries off so every call is one
    request."""
    async with aws_client("logs", endpoint_url, region) as client:
        yield client


@contextmanager
def signals_kept() -> Iterator[None]:
    """The test process's own SIGINT and SIGTERM handling, as it was before: a command
    that serves sets its own, and leaves the defaults behind."""
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:  # None: set outside Python, and not ours to restore
                signal.signal(signum, handler)


def in_main_thread(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """`ibwatch ARGV` by the CLI's `main`, in the calling (synchronous) test: its exit
    code and its stdout lines. For `simulate --until-settled`, which listens for SIGINT
    and SIGTERM while it serves, as only a process's main thread may, and stops by
    itself: no `ibwatch` process to start."""
    capsys.readouterr()
    with signals_kept():
        code = main(list(argv))
    return code, capsys.readouterr().out.splitlines()
