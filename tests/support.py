"""Helpers shared by the tests: an unmodified aiobotocore client for an endpoint,
raw signed-looking requests, and small scenarios built in code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from watcher.simulator import Scenario

ACCOUNT = "123456789012"
WEB_BASE = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0/7"
WEB_BASE_VERSION = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web-base/1.4.0"

# Enough of an Authorization header to pass the simulator's presence check.
SIGNED_LOOKING = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/imagebuilder/"
    "aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef",
    "X-Amz-Date": "20260101T000000Z",
}


@asynccontextmanager
async def imagebuilder(endpoint_url: str, region: str = "us-east-1") -> AsyncIterator[Any]:
    """The real aiobotocore client, retries off so every call is one request."""
    async with aws_client("imagebuilder", endpoint_url, region) as client:
        yield client


@cache
def _models() -> Any:
    """botocore's loader of service models and endpoint rules, one per test process."""
    return get_session().get_component("data_loader")


def aws_session() -> AioSession:
    """A new botocore session, but reading the models through the process's one loader,
    as `watcher.credentials` shares them among its account sessions: a session of its
    own reads them from disk again, a tenth of a second of CPU or more per first client,
    on hundreds of clients. Everything else is the session's own, credentials and
    config files among it, so each test's environment is read afresh."""
    session = get_session()
    session.register_component("data_loader", _models())
    return session


@asynccontextmanager
async def aws_client(
    service: str,
    endpoint_url: str,
    region: str,
    key: tuple[str, str] = ("AKIDEXAMPLE", "not-a-secret"),
) -> AsyncIterator[Any]:
    """A real aiobotocore client of `service`, retries off so every call is one request;
    signing with `key` (access key id, secret)."""
    async with aws_session().create_client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=AioConfig(retries={"total_max_attempts": 1}),
    ) as client:
        yield client


async def raw_get_image(
    session: aiohttp.ClientSession, endpoint_url: str, arn: str
) -> tuple[int, dict[str, str], bytes]:
    async with session.get(
        f"{endpoint_url}/GetImage", params={"imageBuildVersionArn": arn}, headers=SIGNED_LOOKING
    ) as response:
        return response.status, dict(response.headers), await response.read()


async def raw_list(
    session: aiohttp.ClientSession, endpoint_url: str, body: dict[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(
        f"{endpoint_url}/ListImageBuildVersions", data=json.dumps(body), headers=SIGNED_LOOKING
    ) as response:
        return response.status, dict(response.headers), await response.read()


def timeline(*steps: tuple[str, float | None]) -> list[dict[str, Any]]:
    return [{"status": s, **({"duration": d} if d is not None else {})} for s, d in steps]


WEB_BASE_TIMELINE = timeline(
    ("PENDING", 60),
    ("CREATING", 60),
    ("BUILDING", 600),
    ("TESTING", 300),
    ("DISTRIBUTING", 120),
    ("INTEGRATING", 30),
    ("AVAILABLE", None),
)


def web_base_image(**overrides: Any) -> dict[str, Any]:
    image: dict[str, Any] = {
        "arn": WEB_BASE,
        "type": "AMI",
        "pipeline": "web-base-nightly",
        "timeline": WEB_BASE_TIMELINE,
        "amis": [
            {"region": "us-east-1", "image": "ami-0a1b2c3d4e5f60718"},
            {"region": "eu-west-1", "image": "ami-0b2c3d4e5f6071829"},
            {"region": "ap-southeast-2", "image": "ami-0c3d4e5f607182930"},
        ],
    }
    image.update(overrides)
    return image


def scenario(images: list[dict[str, Any]] | None = None, **fields: Any) -> Scenario:
    return Scenario.model_validate(
        {"images": images if images is not None else [web_base_image()], **fields}
    )
