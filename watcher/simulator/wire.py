"""How the simulated endpoint puts answers on the wire: JSON documents, and errors
as rest-json services send them.

Writes responses only; what goes in them is `documents.py`'s and the handlers' job.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from watcher.simulator import model

JSON = "application/json"


class ApiError(Exception):
    """An answer the service gives as an error: its code (an error shape of the
    model, e.g. ResourceNotFoundException), its message, and its HTTP status where
    the model gives the code none (None: the model's)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def json_response(body: dict[str, Any], request_id: str) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=JSON,
        headers={"x-amzn-RequestId": request_id},
    )


def error_response(
    code: str, message: str, request_id: str, status: int | None = None
) -> web.Response:
    """An error as rest-json services send it: the code in `x-amzn-ErrorType`, the
    message in the body, the status the model gives the code."""
    return web.Response(
        status=status if status is not None else model.error_status(code),
        body=json.dumps({"message": message}).encode(),
        content_type=JSON,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code},
    )
