"""Standard Webhooks signing (symmetric, `v1`): the `webhook-*` headers a receiver
uses to check that a delivery came from us, unaltered and recently.

The signed content is `{id}.{timestamp}.{body}`, HMAC-SHA256 keyed with the secret
a receiver gave as `whsec_<base64>`. Pure functions on the standard library: no
clock (the caller passes the timestamp), no I/O, and no error message ever quotes
a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def parse_secret(text: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (padding may be left off, as
    receivers' libraries allow). ValueError, never quoting it, for anything else."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(
            "a webhook signing secret must look like whsec_<base64> "
            "(the format Standard Webhooks receivers generate)"
        )
    encoded = text.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "a webhook signing secret must be whsec_ followed by standard base64; "
            "this one is not valid base64"
        ) from None
    if not key:
        raise ValueError("a webhook signing secret must not be empty after whsec_")
    return key


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`."""
    if not secret:
        raise ValueError("cannot sign with an empty secret")
    if not msg_id or "." in msg_id:
        # The id is a field of the signed content: a full stop in it would let
        # one (id, timestamp) pair pass for another.
        raise ValueError(f"a webhook id must be non-empty and contain no '.': {msg_id!r}")
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, content, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode('ascii')}"


def headers(msg_id: str, timestamp: int, body: bytes, secret: bytes | None) -> dict[str, str]:
    """`webhook-id` and `webhook-timestamp` (integer seconds since the epoch), and
    `webhook-signature` when there is a secret."""
    sent = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret is not None:
        sent["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return sent
