"""The signed webhook sink and the HTTP transport under it, against real aiohttp
receivers on 127.0.0.1: what arrives, how it is signed, and how every answer a
receiver can give is classified."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from watcher.model import Ami, ImageSnapshot, ImageStatus, Outputs, Transition
from watcher.signing import headers, parse_secret, sign
from watcher.sinks.base import DeliveryError
from watcher.sinks.http import HttpPoster, json_body, parse_retry_after
from watcher.sinks.webhook import WebhookSink
from watcher.testing import FakeClock
from watcher.tracker import observe
from watcher.urls import redact_url

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET_TEXT = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET_TEXT = "whsec_c2VjcmV0LW9mLWFub3RoZXItcmVjZWl2ZXIhIQ=="
# A URL shaped like a chat webhook: its path and query are the credential.
HOOK_PATH = "/services/T0/B0/s3cr3tPathT0ken"
HOOK_QUERY = "?token=qu3ryS3cretT0ken"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poster trusts proxy variables; a proxy set on the test machine must not
    sit between it and the loopback receivers."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# A real receiver.


@dataclass
class Received:
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass
class Receiver:
    """Records each POST and answers from a script (the last answer repeats).
    With `hang`, it never answers until `release` is set at teardown."""

    url: str = ""
    answers: list[Answer] = field(default_factory=lambda: [Answer()])
    hang: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[Received] = field(default_factory=list)

    def answer(self, *answers: Answer) -> None:
        self.answers = list(answers)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(request.path_qs, CIMultiDict(request.headers), body))
        if self.hang:
            await self.release.wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return web.Response(status=answer.status, headers=answer.headers, text=answer.body)


@asynccontextmanager
async def serve(handler: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with serve(found.handle) as base:
        found.url = base + HOOK_PATH + HOOK_QUERY
        try:
            yield found
        finally:
            found.release.set()  # lets a hanging handler finish before the server stops


@pytest.fixture
async def poster() -> AsyncIterator[HttpPoster]:
    async with HttpPoster() as opened:
        yield opened


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{HOOK_PATH}{HOOK_QUERY}"


def assert_no_url_in(error: BaseException, url: str) -> None:
    text = str(error)
    for part in (url, HOOK_PATH, "s3cr3tPathT0ken", "qu3ryS3cretT0ken"):
        assert part not in text, f"{part!r} leaked into {text!r}"


def available_event() -> Transition:
    def snapshot(status: str, minutes: float, outputs: Outputs | None = None) -> ImageSnapshot:
        return ImageSnapshot(
            arn=ARN,
            status=ImageStatus(status),
            name="web-base",
            version="1.4.0",
            build=7,
            type="AMI",
            created=T0,
            observed_at=T0 + timedelta(minutes=minutes),
            outputs=outputs or Outputs(),
        )

    tracked, _ = observe(ARN, None, snapshot("BUILDING", 1))
    # A non-ASCII name: the body is UTF-8 and the signature covers its bytes.
    amis = Outputs(amis=(Ami(region="eu-west-1", image="ami-0b2c3d4e5f6071829", name="web-bäse"),))
    _, [event] = observe(ARN, tracked, snapshot("AVAILABLE", 31, outputs=amis))
    return event


def sink(
    receiver: Receiver, poster: HttpPoster, clock: FakeClock, **options: object
) -> WebhookSink:
    return WebhookSink(url=receiver.url, poster=poster, clock=clock, **options)  # type: ignore[arg-type]


# Signing on its own.


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    """The vector from the standard-webhooks Python library's own tests."""
    signature = sign(
        parse_secret(SECRET_TEXT),
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    "text",
    [
        SECRET_TEXT,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        "whsec_c2VjcmV0LW9mLWFub3RoZXItcmVjZWl2ZXIhIQ",  # padding left off
    ],
)
def test_parse_secret_reads_the_key_receivers_read(text: str) -> None:
    """Same key as the standard-webhooks library takes from the same text."""
    stamp = datetime.fromtimestamp(1614265330, UTC)
    ours = sign(parse_secret(text), "msg_1", 1614265330, b"{}")
    assert ours == Webhook(text.strip()).sign("msg_1", stamp, "{}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_",
        "whsec_hunter2!hunter2",  # not base64
        "whsec_Qz7Xk",  # a base64 length that cannot be
        "Bearer hunter2hunter2",
    ],
)
def test_parse_secret_refuses_anything_else_without_quoting_it(text: str) -> None:
    with pytest.raises(ValueError, match="whsec_") as refused:
        parse_secret(text)
    secret_part = text.removeprefix("whsec_")
    if secret_part:
        assert secret_part not in str(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__ or refused.value.__context__ is None


def test_sign_refuses_an_id_with_a_full_stop() -> None:
    """The id is a field of the signed content; a '.' in it would blur the fields."""
    with pytest.raises(ValueError, match=r"'\.'"):
        sign(b"key", "msg.1614265330", 1, b"{}")


def test_headers_carry_id_and_integer_timestamp_and_signature_only_with_a_secret() -> None:
    assert headers("msg_1", 1614265330, b"{}", None) == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1614265330",
    }
    signed = headers("msg_1", 1614265330, b"{}", b"key")
    assert signed["webhook-signature"] == sign(b"key", "msg_1", 1614265330, b"{}")


# The sink against a real receiver.


async def test_the_signature_verifies_with_the_standard_webhooks_library(
    receiver: Receiver, poster: HttpPoster
) -> None:
    # The library checks webhook-timestamp against the real clock (5 minutes'
    # tolerance), so this one test starts its fake clock at the real time.
    clock = FakeClock(epoch=datetime.now(UTC))
    event = available_event()
    await sink(receiver, poster, clock, secret=parse_secret(SECRET_TEXT)).send(event)
    [got] = receiver.requests
    assert Webhook(SECRET_TEXT).verify(got.body, dict(got.headers)) == event.envelope()
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(OTHER_SECRET_TEXT).verify(got.body, dict(got.headers))


async def test_each_attempt_is_stamped_and_signed_afresh_under_the_same_id(
    receiver: Receiver, poster: HttpPoster, clock: FakeClock
) -> None:
    receiver.answer(Answer(503), Answer(204))
    event = available_event()
    webhook = sink(receiver, poster, clock, secret=parse_secret(SECRET_TEXT))
    with pytest.raises(DeliveryError):
        await webhook.send(event)
    clock.advance(90)
    await webhook.send(event)

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id
    assert first.body == second.body
    stamps = [int(r.headers["webhook-timestamp"]) for r in (first, second)]
    assert stamps == [int(clock.now().timestamp()) - 90, int(clock.now().timestamp())]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    for got, stamp in zip((first, second), stamps, strict=True):
        expected = Webhook(SECRET_TEXT).sign(
            event.id, datetime.fromtimestamp(stamp, UTC), got.body.decode()
        )
        assert got.headers["webhook-signature"] == expected


async def test_the_timestamp_is_the_clocks_whole_seconds(
    receiver: Receiver, poster: HttpPoster
) -> None:
    clock = FakeClock(epoch=T0)
    clock.advance(41.9)
    await sink(receiver, poster, clock).send(available_event())
    assert receiver.requests[0].headers["webhook-timestamp"] == str(int(T0.timestamp()) + 41)


async def test_the_body_is_exactly_the_envelope_json(
    receiver: Receiver, poster: HttpPoster, clock: FakeClock
) -> None:
    event = available_event()
    await sink(receiver, poster, clock).send(event)
    [got] = receiver.requests
    assert got.body == json_body(event.envelope())
    assert json.loads(got.body) == event.envelope()
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers.getall("Content-Type") == ["application/json"]
    assert got.path_qs == HOOK_PATH + HOOK_QUERY


async def test_without_a_secret_nothing_is_signed(
    receiver: Receiver, poster: HttpPoster, clock: FakeClock
) -> None:
    event = available_event()
    await sink(receiver, poster, clock).send(event)
    [got] = receiver.requests
    assert got.headers["webhook-id"] == event.id
    assert "webhook-timestamp" in got.headers
    assert "webhook-signature" not in got.headers


async def test_custom_headers_arrive(
    receiver: Receiver, poster: HttpPoster, clock: FakeClock
) -> None:
    custom = {"Authorization": "Bearer t0ken", "X-Team": "platform"}
    await sink(receiver, poster, clock, headers=custom).send(available_event())
    [got] = receiver.requests
    assert (got.headers["Authorization"], got.headers["X-Team"]) == ("Bearer t0ken", "platform")


@pytest.mark.parametrize(
    "name", ["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "content-type"]
)
def test_a_custom_header_cannot_override_the_sinks_own(name: str, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="cannot be set") as refused:
        WebhookSink(
            url="https://example.com/hook",
            poster=HttpPoster(),
            clock=clock,
            headers={name: "forged-value"},
        )
    assert "forged-value" not in str(refused.value)


def test_a_header_value_with_a_line_break_is_refused_without_quoting_it(
    clock: FakeClock,
) -> None:
    with pytest.raises(ValueError, match="line break") as refused:
        WebhookSink(
            url="https://example.com/hook",
            poster=HttpPoster(),
            clock=clock,
            headers={"Authorization": "Bearer t0ken\r\nX-Injected: 1"},
        )
    assert "t0ken" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://example.com{HOOK_PATH}",
        f"example.com{HOOK_PATH}",
        f"https://{HOOK_PATH}",
        f"https://example.com:99999{HOOK_PATH}",
        f"http://[::1{HOOK_PATH}",
    ],
)
def test_a_url_that_is_not_http_is_refused_without_quoting_it(url: str, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="http") as refused:
        WebhookSink(url=url, poster=HttpPoster(), clock=clock)
    assert "s3cr3tPathT0ken" not in str(refused.value)


async def test_a_refusal_reaches_the_caller_as_the_posters_delivery_error(
    receiver: Receiver, poster: HttpPoster, clock: FakeClock
) -> None:
    receiver.answer(Answer(410, body="gone"))
    with pytest.raises(DeliveryError) as failed:
        await sink(receiver, poster, clock).send(available_event())
    assert (failed.value.gone, failed.value.retryable, failed.value.status) == (True, False, 410)
    assert_no_url_in(failed.value, receiver.url)


# HttpPoster: how each answer is classified.


async def post(poster: HttpPoster, url: str, timeout_s: float = 5.0) -> int:
    return await poster.post(url, b'{"hello":"world"}', timeout_s=timeout_s)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_a_2xx_is_acknowledged(status: int, receiver: Receiver, poster: HttpPoster) -> None:
    receiver.answer(Answer(status))
    assert await post(poster, receiver.url) == status


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_a_throttle_or_server_error_is_retryable(
    status: int, receiver: Receiver, poster: HttpPoster
) -> None:
    receiver.answer(Answer(status, body="try later"))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    error = failed.value
    assert (error.retryable, error.gone, error.status, error.retry_after) == (
        True,
        False,
        status,
        None,
    )
    assert_no_url_in(error, receiver.url)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_a_client_error_is_not_retryable(
    status: int, receiver: Receiver, poster: HttpPoster
) -> None:
    receiver.answer(Answer(status, body="no such hook"))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert (failed.value.retryable, failed.value.gone, failed.value.status) == (
        False,
        False,
        status,
    )
    assert_no_url_in(failed.value, receiver.url)


async def test_410_means_the_endpoint_is_gone(receiver: Receiver, poster: HttpPoster) -> None:
    receiver.answer(Answer(410))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert (failed.value.gone, failed.value.retryable, failed.value.status) == (True, False, 410)


async def test_a_redirect_is_not_followed(receiver: Receiver, poster: HttpPoster) -> None:
    """Standard Webhooks: a 3xx is a failure; the URL should be updated instead."""
    receiver.answer(Answer(301, headers={"Location": "/elsewhere"}), Answer(204))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert (failed.value.retryable, failed.value.status) == (False, 301)
    assert len(receiver.requests) == 1
    assert str(failed.value) == (
        "HTTP 301: redirect to http://127.0.0.1/… not followed; configure the URL it points to"
    )


async def test_a_redirect_elsewhere_names_only_the_host_it_points_to(
    receiver: Receiver, poster: HttpPoster
) -> None:
    moved = "https://hooks.example.com/services/T0/B0/SECRET-NEW-TOKEN"
    receiver.answer(Answer(308, headers={"Location": moved}))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert "redirect to https://hooks.example.com/… not followed" in str(failed.value)
    assert "SECRET" not in str(failed.value)


async def test_a_redirect_with_a_location_that_does_not_parse_is_still_refused(
    receiver: Receiver, poster: HttpPoster
) -> None:
    receiver.answer(Answer(302, headers={"Location": "http://[bad"}))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert (failed.value.retryable, failed.value.status) == (False, 302)
    assert str(failed.value) == "HTTP 302: redirect not followed; configure the URL it points to"


async def test_retry_after_in_seconds_is_read(receiver: Receiver, poster: HttpPoster) -> None:
    receiver.answer(Answer(429, headers={"Retry-After": "2"}))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert failed.value.retry_after == 2.0
    assert failed.value.retryable


async def test_retry_after_as_an_http_date_is_the_seconds_until_it(
    receiver: Receiver, poster: HttpPoster
) -> None:
    # HttpPoster measures an HTTP-date against the real clock (it takes no Clock),
    # so the date has to be made from the real clock too.
    when = datetime.now(UTC) + timedelta(seconds=30)
    receiver.answer(Answer(503, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert failed.value.retry_after is not None
    assert 25.0 <= failed.value.retry_after <= 30.0


async def test_a_receiver_that_never_answers_times_out_retryably(
    receiver: Receiver, poster: HttpPoster
) -> None:
    receiver.hang = True
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url, timeout_s=0.2)
    assert failed.value.retryable
    assert "0.2s" in str(failed.value)
    assert failed.value.status is None
    assert_no_url_in(failed.value, receiver.url)


async def test_a_refused_connection_is_retryable(poster: HttpPoster) -> None:
    url = closed_port_url()
    with pytest.raises(DeliveryError) as failed:
        await post(poster, url)
    assert failed.value.retryable
    assert failed.value.status is None
    assert_no_url_in(failed.value, url)


async def test_a_receiver_echoing_the_path_does_not_leak_it(
    receiver: Receiver, poster: HttpPoster
) -> None:
    receiver.answer(Answer(404, body=f"Cannot POST {HOOK_PATH}{HOOK_QUERY}"))
    with pytest.raises(DeliveryError) as failed:
        await post(poster, receiver.url)
    assert_no_url_in(failed.value, receiver.url)


@pytest.mark.parametrize("url", ["http://", "ftp://example.com/hook"])
async def test_a_url_that_can_never_work_is_not_retryable(url: str, poster: HttpPoster) -> None:
    with pytest.raises(DeliveryError) as failed:
        await post(poster, url)
    assert not failed.value.retryable


# Retry-After and URL redaction on their own.


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # in the past
        ("Thu, 01 Jan 2026 00:00:30 -0000", 30.0),  # no zone information: taken as UTC
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=T0) == seconds


@pytest.mark.parametrize("value", [None, "", "soon", "Thursday", "2 minutes"])
def test_parse_retry_after_is_none_when_unreadable(value: str | None) -> None:
    assert parse_retry_after(value, now=T0) is None


def test_parse_retry_after_does_not_accept_infinity() -> None:
    assert parse_retry_after("inf", now=T0) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/SECRET", "https://hooks.slack.com/…"),
        ("https://user:pa55@example.com:8443/hook?token=abc", "https://example.com/…"),
        ("http://127.0.0.1:9000/x", "http://127.0.0.1/…"),
    ],
)
def test_redact_url_keeps_only_scheme_and_host(url: str, shown: str) -> None:
    assert redact_url(url) == shown
