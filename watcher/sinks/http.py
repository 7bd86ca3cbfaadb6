"""Posting JSON to a receiver over HTTP, and reading its answer as a
`DeliveryError` classification: the shared transport of every HTTP sink.

Honours HTTPS_PROXY/NO_PROXY (`trust_env`), verifies TLS (against a custom CA
bundle where SSL_CERT_FILE / SSL_CERT_DIR name one: OpenSSL's default paths), and
never puts the URL in an error message: URLs carry secrets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from watcher.clock import Clock, SystemClock
from watcher.sinks.base import DeliveryError
from watcher.urls import redact_url

_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

RetryAfterFromBody = Callable[[int, Mapping[str, str], bytes], float | None]
"""Some receivers (Discord) say how long to wait in the body of a 429."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date. None if absent
    or unreadable; never negative."""
    if not value:
        return None
    value = value.strip()
    # delta-seconds: digits (a fraction tolerated); never "inf", "1e3" or "1_0".
    if _SECONDS.fullmatch(value):
        return max(0.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpPoster:
    """One aiohttp session shared by the HTTP sinks."""

    def __init__(
        self,
        *,
        user_agent: str = "ibwatch",
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpPoster:
        self._session = aiohttp.ClientSession(
            trust_env=True,
            # aiohttp's verifying context: ssl.create_default_context(), whose default
            # paths honour SSL_CERT_FILE / SSL_CERT_DIR.
            connector=aiohttp.TCPConnector(ssl=True),
            headers={"User-Agent": self._user_agent},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        retry_after_from_body: RetryAfterFromBody | None = None,
    ) -> int:
        """POST `body`; return the 2xx status, or raise DeliveryError."""
        if self._session is None:
            raise RuntimeError("HttpPoster used outside `async with`")
        sent_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            async with self._session.post(
                url,
                data=body,
                headers=sent_headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                # At most 64 KiB of any answer: a receiver streaming hundreds of MB
                # must not grow the daemon by as much. What is cut is never needed
                # (an error message, a Retry-After in a small JSON body).
                content = await response.content.read(MAX_ANSWER_BYTES)
                status = response.status
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
        except TimeoutError:
            raise DeliveryError(f"no answer within {timeout_s:g}s", retryable=True) from None
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
            # A URL that can never work: trying again will not help.
            raise DeliveryError(
                "the configured URL is not a usable http(s) URL", retryable=False
            ) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"transport error: {type(exc).__name__}", retryable=True) from None
        if 200 <= status < 300:
            return status
        retry_after = parse_retry_after(answer_headers.get("retry-after"), now=self._clock.now())
        if retry_after is None and retry_after_from_body is not None:
            retry_after = retry_after_from_body(status, answer_headers, content)
        detail = _short(content, url)
        if status == 410:
            raise DeliveryError(f"HTTP 410 Gone{detail}", retryable=False, gone=True, status=status)
        if 300 <= status < 400:
            # Never followed: a redirect would carry the signed body and its headers to
            # a host the config does not name. Where it points is shown as its host only.
            to = _redirect_target(url, answer_headers.get("location", ""))
            raise DeliveryError(
                f"HTTP {status}: redirect{to} not followed; configure the URL it points to",
                retryable=False,
                status=status,
            )
        raise DeliveryError(
            f"HTTP {status}{detail}",
            retryable=status in RETRYABLE_STATUSES,
            retry_after=retry_after,
            status=status,
        )


MAX_ANSWER_BYTES = 64 * 1024


def _redirect_target(url: str, location: str) -> str:
    """` to <scheme://host/…>` of a redirect's Location, or "" if it has none or
    none that parses (a receiver's bad header must not turn a refusal into a crash)."""
    try:
        return f" to {redact_url(urljoin(url, location))}" if location else ""
    except ValueError:
        return ""


def _short(content: bytes, url: str) -> str:
    """A little of the receiver's answer, for the error message, with every part of
    the URL that may be secret cut out: receivers often echo the request path."""
    text = content[:2000].decode("utf-8", "replace").strip().replace("\n", " ")
    for secret in _secret_parts(url):
        text = text.replace(secret, "…")
    text = text[:200]
    return f": {text}" if text else ""


def _secret_parts(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    pieces = [url, parts.path, parts.query, parts.password or "", parts.username or ""]
    pieces += [segment for segment in parts.path.split("/") if len(segment) >= 4]
    for pair in parts.query.split("&"):
        pieces += [piece for piece in pair.split("=") if len(piece) >= 4]
    # Longest first, so a segment inside a longer secret does not leave the rest behind.
    return sorted({p for p in pieces if p and p != "/"}, key=len, reverse=True)


def json_body(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
