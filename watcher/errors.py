"""The exceptions the watcher raises about the Image Builder API.

AWS failures are classified once, in `watcher.aws`, into this tree; nothing else
reads an AWS error code.

    ApiError
    ├── RetryableError          retrying can heal it
    │   ├── Throttled           CallRateLimitExceededException, TooManyRequests, 429
    │   └── Unavailable         503, 500, timeouts, dropped connections, malformed bodies
    └── FinalError              retrying will not heal it; the ARN is parked
        ├── NotFound            ResourceNotFoundException
        ├── AccessDenied        ForbiddenException, AccessDeniedException
        ├── InvalidRequest      InvalidRequestException, ClientException, other 4xx
        ├── BadCredentials      missing, invalid or expired credentials
        └── Misconfigured       no such profile, no region, an endpoint URL that is none
"""

from __future__ import annotations


class ApiError(Exception):
    """A get_image call that did not return an image. `code` is the AWS error code
    or a short name for a transport failure."""

    def __init__(self, message: str, *, code: str = "", arn: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.arn = arn


class RetryableError(ApiError):
    """A failure that a later attempt can get past."""


class Throttled(RetryableError):
    """AWS refused the call for its request rate: slow every worker down."""


class Unavailable(RetryableError):
    """The service or the network failed this call."""


class FinalError(ApiError):
    """A failure no retry heals: the ARN is reported once and parked."""


class NotFound(FinalError):
    pass


class AccessDenied(FinalError):
    pass


class InvalidRequest(FinalError):
    pass


class BadCredentials(FinalError):
    pass


class Misconfigured(FinalError):
    """The AWS configuration itself is unusable (a profile that does not exist, no
    region, an endpoint URL that is not http(s)): no call can be made, so a one-shot
    run exits 2 at once instead of retrying until its timeout."""
