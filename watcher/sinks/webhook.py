"""The generic webhook sink: each transition POSTed as its Standard Webhooks
envelope, optionally signed, to any HTTP receiver.

Every attempt is stamped and signed afresh from the injected clock (receivers
reject timestamps older than about five minutes) under the same `webhook-id`, so
a receiver can drop repeats. Never retries by itself (a wrapper does) and never
puts the URL, the secret or a header value in an error message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from watcher import signing
from watcher.clock import Clock
from watcher.model import Transition
from watcher.sinks.http import HttpPoster, json_body
from watcher.urls import redact_url

# Headers this sink owns: the webhook-* ones carry the signature and what it signs,
# content-type/length describe the signed body; a configured header must not replace them.
_RESERVED = frozenset({"content-type", "content-length"})
_RESERVED_PREFIX = "webhook-"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name


class WebhookSink:
    """POST each event to `url`; see the module docstring."""

    def __init__(
        self,
        *,
        url: str,
        poster: HttpPoster,
        clock: Clock,
        secret: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        _check_url(url)
        if secret is not None and not secret:
            raise ValueError("webhook secret is empty; give a whsec_ secret or none")
        if not timeout_s > 0:
            raise ValueError(f"webhook timeout_s must be positive, not {timeout_s!r}")
        self._url = url
        self._poster = poster
        self._clock = clock
        self._secret = secret
        self._headers = MappingProxyType(validate_headers(headers or {}))
        self._timeout_s = timeout_s

    async def send(self, event: Transition) -> None:
        body = json_body(event.envelope())
        timestamp = math.floor(self._clock.now().timestamp())
        sent = {**self._headers, **signing.headers(event.id, timestamp, body, self._secret)}
        await self._poster.post(self._url, body, headers=sent, timeout_s=self._timeout_s)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        usable = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and parts.port != 0  # reading .port raises ValueError when out of range
        )
    except ValueError:  # a malformed port or IPv6 address
        usable = False
    if not usable:
        raise ValueError(f"webhook URL must be http(s)://host/...; got {redact_url(url)}")


def validate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The custom headers, as a dict, if a webhook may send them; ValueError (naming
    the header, never quoting its value) if not. Config can call it at load time."""
    checked: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _RESERVED or lowered.startswith(_RESERVED_PREFIX):
            raise ValueError(
                f"webhook header {name!r} cannot be set: the sink sets content-type, "
                "content-length and the webhook-* headers itself"
            )
        if not _TOKEN.match(name):
            raise ValueError(f"webhook header name {name!r} is not a valid HTTP header name")
        if any(c in value for c in "\r\n\0"):
            # The value may be a credential: name the header, never quote the value.
            raise ValueError(f"webhook header {name!r} has a line break or NUL in its value")
        checked[name] = value
    return checked
