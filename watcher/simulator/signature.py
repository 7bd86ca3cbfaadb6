"""The SigV4 presence check every simulated service applies before answering.

The signature itself cannot be checked without the caller's secret, so its
presence and its credential scope are what is checked, and refused as AWS refuses
them (403, the codes of AWS's "Common Errors"). Decides only; each service puts
the refusal on the wire in its own protocol's error form.
"""

from __future__ import annotations

import re

from aiohttp import web

from watcher.simulator.wire import ApiError

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")


def signature_problem(request: web.Request, service: str) -> ApiError | None:
    """Why the request is refused before any operation runs (status 403); None if
    it carries a complete AWS4-HMAC-SHA256 Authorization scoped to `service`."""
    header = request.headers.get("Authorization")
    if header is None:
        return ApiError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    credential = _CREDENTIAL.search(header)
    if (
        not header.startswith("AWS4-HMAC-SHA256 ")
        or credential is None
        or "SignedHeaders=" not in header
        or "Signature=" not in header
    ):
        return ApiError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            "parameters of an AWS4-HMAC-SHA256 signature.",
            403,
        )
    if credential.group(4) != service:
        return ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
            403,
        )
    if "X-Amz-Date" not in request.headers and "Date" not in request.headers:
        return ApiError(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            403,
        )
    return None


def access_key_id(request: web.Request) -> str | None:
    """The access key id the request was signed with: the first field of its
    Authorization header's `Credential=AKID/date/region/service/aws4_request` (AWS
    General Reference, "Elements of an AWS API request signature"); None if it
    carries none."""
    found = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    return None if found is None else found.group(1)


def signed_region(request: web.Request) -> str | None:
    """The region of the request's credential scope (the region the client was
    created for); None if the request carries none."""
    found = _CREDENTIAL.search(request.headers.get("Authorization", ""))
    return None if found is None else found.group(3)
