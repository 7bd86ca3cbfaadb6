"""Builds in three accounts for the multi-account tests: two listed in
`[aws.accounts]` (A and B, each through a role), one not (the default chain's own,
`tests.support.ACCOUNT`). STS is moto's server on loopback; Image Builder is the
simulator, which counts requests by the access key that signed them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiobotocore.session import get_session
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.sqs_support import enforce_iam
from tests.support import ACCOUNT, aws_client, timeline
from watcher.aws import AwsImageSource
from watcher.config.aws import AccountConfig
from watcher.model import ImageSnapshot
from watcher.simulator import Simulator
from watcher.testing import VirtualClock

A = "111111111111"
B = "222222222222"
ROLE_A = f"arn:aws:iam::{A}:role/ibwatch-reader"
ROLE_B = f"arn:aws:iam::{B}:role/ibwatch-reader"
ARN_A = f"arn:aws:imagebuilder:us-east-1:{A}:image/app-a/1.0.0/1"
ARN_B = f"arn:aws:imagebuilder:us-east-1:{B}:image/app-b/1.0.0/1"
ARN_OWN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/app-own/1.0.0/1"
ARN_A_EU = f"arn:aws:imagebuilder:eu-west-1:{A}:image/app-a/1.0.0/2"
DEFAULT_KEY = "AKIDEXAMPLE"
"""The default chain's access key id in every test (tests/conftest.py's environment)."""

ROLES = {A: AccountConfig(role_arn=ROLE_A), B: AccountConfig(role_arn=ROLE_B)}


def image(arn: str, *steps: tuple[str, float | None]) -> dict[str, Any]:
    """A build of `arn`, AVAILABLE at once unless `steps` say otherwise."""
    return {"arn": arn, "timeline": timeline(*(steps or (("AVAILABLE", None),)))}


async def signed_by(simulator: Simulator, source: AwsImageSource, arn: str) -> str:
    """GetImage of `arn` through `source`: the access key id that signed the one
    request it made, as the simulator saw it."""
    before = Counter(simulator.counters.access_keys)
    await source.get(arn)
    made = simulator.counters.access_keys - before
    assert sum(made.values()) == 1, made
    ((key, operation),) = made
    assert operation == "GetImage"
    return key


async def caller_may_assume(moto: str, monkeypatch: pytest.MonkeyPatch, *roles: str) -> None:
    """Make the default chain an IAM user of moto's allowed sts:AssumeRole on `roles`
    only, and make moto check every call's signature and IAM policy from now on: a
    role not among them is refused AccessDenied, as AWS refuses it."""
    async with aws_client("iam", moto, "us-east-1") as iam:
        await iam.create_user(UserName="ibwatch")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": list(roles)}],
        }
        await iam.put_user_policy(
            UserName="ibwatch", PolicyName="assume", PolicyDocument=json.dumps(policy)
        )
        key = (await iam.create_access_key(UserName="ibwatch"))["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    enforce_iam(moto, True)


@asynccontextmanager
async def sts_client(moto: str, frozen: Any) -> AsyncIterator[Any]:
    """An STS client of moto's signing with `frozen` (botocore ReadOnlyCredentials)."""
    async with get_session().create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=moto,
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    ) as client:
        yield client


class HeldSource:
    """GetImage with the virtual clock held during the call: a loopback call (and the
    AssumeRole to moto it may make first) can outlast the clock's idle rounds on a
    loaded machine, and virtual time must not leap ahead while a poll is under way."""

    def __init__(self, inner: AwsImageSource, clock: VirtualClock) -> None:
        self._inner, self._clock = inner, clock

    def account_of(self, arn: str) -> str:
        return self._inner.account_of(arn)

    @property
    def account_keys(self) -> tuple[str, ...]:
        return self._inner.account_keys

    async def get(self, arn: str) -> ImageSnapshot:
        with self._clock.held():
            return await self._inner.get(arn)


class StsFaults:
    """STS on loopback that can fail as moto's cannot: a proxy in front of moto's
    server. With `fail_with` None it forwards every request to moto (its answers are
    the real ones); with a code, AssumeRole is answered with that error in STS's own
    form (the query protocol's `ErrorResponse`, HTTP `status`), as AWS answers
    `Throttling` ("Rate exceeded", our reading; botocore's retries/standard.py lists
    the code among the throttling ones). Counts AssumeRole requests and the TCP
    connections they came on (by the caller's port): a client kept for reuse sends
    them all on one."""

    def __init__(self, moto: str) -> None:
        self._moto = moto
        self.fail_with: str | None = None
        self.status = 400
        self.assume_role_calls = 0
        self.connections: set[object] = set()
        self._server = TestServer(web.Application(), host="127.0.0.1")
        self._server.app.router.add_route("*", "/{tail:.*}", self._serve)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> str:
        await self._server.start_server()
        self._http = aiohttp.ClientSession()
        return str(self._server.make_url("")).rstrip("/")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._http is not None
        await self._http.close()
        await self._server.close()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        action = parse_qs(body.decode()).get("Action", [""])[0]
        if action == "AssumeRole":
            self.assume_role_calls += 1
            assert request.transport is not None
            self.connections.add(request.transport.get_extra_info("peername"))
            if self.fail_with is not None:
                return web.Response(
                    status=self.status,
                    content_type="text/xml",
                    text=(
                        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                        f"<Error><Type>Sender</Type><Code>{self.fail_with}</Code>"
                        "<Message>Rate exceeded</Message></Error>"
                        "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>"
                        "</ErrorResponse>"
                    ),
                )
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._http.request(
            request.method, self._moto + request.path_qs, data=body, headers=headers
        ) as answer:
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=answer.content_type,
            )
