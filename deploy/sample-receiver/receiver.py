"""A sample webhook receiver for trying ibwatch: prints one line per event and answers
204 No Content.

Standard library only, so any Python 3.11+ runs it (deploy/compose.yaml runs it in the
plain python image). With WEBHOOK_SECRET set to the sink's `whsec_...` secret it checks
each delivery the way a real receiver should (Standard Webhooks): the signature over
"id.timestamp.body", and a timestamp no more than five minutes away; anything else is
refused with 401 and never printed as an event. A repeated webhook-id (a retry whose
answer was lost) is acknowledged again and marked as a duplicate.

A demonstration, not a production server: http.server has no TLS and little hardening.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 1024 * 1024


def parse_secret(text: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret."""
    text = text.strip()
    if not text.startswith("whsec_"):
        raise ValueError("WEBHOOK_SECRET must look like whsec_<base64>")
    encoded = text.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("WEBHOOK_SECRET is not whsec_ followed by base64") from None


def verify(key: bytes, msg_id: str, timestamp: str, signatures: str, body: bytes) -> str | None:
    """None if the delivery is authentic and recent, else why it is not."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not an integer"
    if abs(time.time() - sent_at) > TOLERANCE_SECONDS:
        return "webhook-timestamp is more than five minutes away"
    content = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    # The header may carry several space-separated signatures (during a key rotation).
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return None
    return "no valid v1 signature"


def summary(event: dict[str, Any]) -> str:
    """`web-base 1.4.0/7: BUILDING -> AVAILABLE  us-east-1=ami-...` from an event."""
    data = event.get("data") or {}
    image = data.get("image") or {}
    previous = (data.get("previous") or {}).get("status") or "(first seen)"
    current = data.get("current") or {}
    line = (
        f"{image.get('name', '?')} {image.get('version', '?')}/{image.get('build', '?')}: "
        f"{previous} -> {current.get('status', '?')}"
    )
    if data.get("skipped"):
        line += f" (skipped {', '.join(data['skipped'])})"
    if current.get("reason"):
        line += f"  reason: {current['reason']}"
    outputs = data.get("outputs") or {}
    amis = outputs.get("amis") or []
    if amis:
        line += "  " + " ".join(f"{ami.get('region')}={ami.get('image')}" for ami in amis)
    for container in outputs.get("containers") or []:
        line += "  " + " ".join(container.get("imageUris") or [])
    return line


def make_server(host: str, port: int, *, key: bytes | None, out: TextIO) -> ThreadingHTTPServer:
    """A server that prints each event to `out`; not started."""
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
                return
            body = self.rfile.read(length)
            msg_id = self.headers.get("webhook-id", "")
            if not msg_id:
                self._answer(HTTPStatus.BAD_REQUEST, "no webhook-id header")
                return
            if key is not None:
                problem = verify(
                    key,
                    msg_id,
                    self.headers.get("webhook-timestamp", ""),
                    self.headers.get("webhook-signature", ""),
                    body,
                )
                if problem is not None:
                    self._answer(HTTPStatus.UNAUTHORIZED, f"{msg_id}: refused: {problem}")
                    return
            try:
                event = json.loads(body)
            except ValueError:
                self._answer(HTTPStatus.BAD_REQUEST, f"{msg_id}: body is not JSON")
                return
            with lock:
                repeat = msg_id in seen
                seen.add(msg_id)
            mark = "  (duplicate: already handled)" if repeat else ""
            self._answer(HTTPStatus.NO_CONTENT, f"{msg_id} {summary(event)}{mark}")

        def _answer(self, status: HTTPStatus, line: str) -> None:
            # Printed before the answer goes out: once the sender has its 2xx, the
            # event has been handled (here: shown).
            with lock:
                print(f"{status.value} {line}", file=out, flush=True)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per event from _answer is enough

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8080, help="default: %(default)s")
    args = parser.parse_args(argv)
    secret = os.environ.get("WEBHOOK_SECRET", "")
    key = parse_secret(secret) if secret.strip() else None
    server = make_server(args.host, args.port, key=key, out=sys.stdout)
    # As PID 1 in a container, SIGTERM has no default action: stop on it explicitly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    checking = "checking signatures" if key else "NOT checking signatures (no WEBHOOK_SECRET)"
    print(f"receiver listening on {args.host}:{server.server_port}, {checking}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
