"""The `Sink` protocol and the one error a sink raises.

A sink has one method, `async send(event)`. It returns once the receiver has
acknowledged the event, or raises `DeliveryError` saying whether trying again can
help. Retries, rate limits and filters are wrappers around sinks (see
`watcher.delivery`), never options inside one.
"""

from __future__ import annotations

from typing import Protocol

from watcher.model import Transition


class DeliveryError(Exception):
    """A delivery the receiver did not acknowledge.

    `retryable`: a later attempt may succeed (transport errors, timeouts, 429, 5xx).
    `retry_after`: seconds the receiver asked us to wait (Retry-After), if it said.
    `gone`: the receiver said the endpoint no longer exists (410): disable the sink.
    The message never contains a URL or a secret.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        gone: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.gone = gone
        self.status = status


class Sink(Protocol):
    async def send(self, event: Transition) -> None:
        """Deliver one committed transition; raise DeliveryError if not acknowledged."""
        ...
