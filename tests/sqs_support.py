"""A real SQS on loopback for the push-path tests: moto's server (`moto[server]`), a
well-kept implementation of the SQS API, started in-process on a free port. Never
our own SQS; never anything beyond loopback.

One server per test process (the `moto` and `sqs_endpoint` fixtures of
tests/conftest.py), reset before each test that uses it: stopping one costs half a
second (werkzeug's serve_forever looks for its shutdown every 0.5 s), and moto keeps
its state per process, not per server, so a reset is what makes a test's SQS fresh."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.server import ThreadedMotoServer

from tests.support import aws_client

REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 and a free port; yields its endpoint URL. Its state
    (queues, messages) lives as long as the server."""
    # Its werkzeug prints a line per request on stderr: noise in a test's output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        reset(url)
        yield url
    finally:
        server.stop()


def reset(endpoint_url: str) -> None:
    """Forget every queue, message and IAM user, and stop checking permissions (moto's
    own reset APIs): start from nothing."""
    _post(f"{endpoint_url}/moto-api/reset")
    enforce_iam(endpoint_url, False)


def enforce_iam(endpoint_url: str, enforce: bool) -> None:
    """Make moto check every call's signature and IAM policy, as AWS does, or stop.
    moto's `reset-auth` takes how many calls to let through before it starts checking:
    0 checks from now on, inf never."""
    _post(f"{endpoint_url}/moto-api/reset-auth", b"0" if enforce else b"inf")


def _post(url: str, body: bytes = b"") -> None:
    # text/plain: moto reads the body raw; a form type would be parsed away by flask.
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request) as answer:
        answer.read()


async def make_queue(endpoint_url: str, name: str, **attributes: str) -> str:
    """Create queue `name` on the moto server; returns its queue URL."""
    async with aws_client("sqs", endpoint_url, REGION) as sqs:
        created: dict[str, Any] = await sqs.create_queue(QueueName=name, Attributes=attributes)
    return str(created["QueueUrl"])
