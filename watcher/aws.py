"""The edge to EC2 Image Builder (and to CloudWatch Logs, for a failed build's log):
aiobotocore clients, one per service, account and region, and the one place where
AWS errors are read and classified (see `watcher.errors`).

The account and region of the ARN a call is about pick its credentials
(`watcher.credentials`; an assumed role's come from that region's STS): a build's
GetImage, its workflow steps and its log are all read with the same ones. A failure
to renew them is an `AssumeRoleError`, classified here like any AWS error.

botocore's own retries are off (`total_max_attempts: 1`), STS's too; `watcher.retry`
is the single retry layer. Nothing outside this module may look at an AWS error code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
import anyio
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.parsers import ResponseParserError

from watcher.clock import Clock
from watcher.credentials import (
    AccountAccess,
    AccountSessions,
    AssumeRoleBadCredentials,
    AssumeRoleDenied,
    AssumeRoleError,
    AssumeRoleFailed,
    AssumeRoleMisconfigured,
    AssumeRoleUnavailable,
)
from watcher.diagnostics import StepExecution, WorkflowExecution
from watcher.errors import (
    AccessDenied,
    ApiError,
    BadCredentials,
    InvalidRequest,
    Misconfigured,
    NotFound,
    RetryableError,
    Throttled,
    Unavailable,
)
from watcher.model import (
    Ami,
    Arn,
    Container,
    ImageSnapshot,
    ImageStatus,
    Outputs,
    PipelineArn,
    PipelineInfo,
)
from watcher.ratelimit import LimiterPool
from watcher.retry import RetryPolicy, call_with_retry

T = TypeVar("T")

ClientKey = tuple[str, str]
"""(credentials key, region): what one client serves (`AccountSessions.key_of`)."""

IMAGEBUILDER = "imagebuilder"
LOGS = "logs"

LOGS_MAX_TPS = 5.0
"""GetLogEvents calls per second, our choice. CloudWatch Logs has its own quota per
account and Region, apart from Image Builder's, and AWS calls GetLogEvents' limit a
hard one meant for people rather than automation (knowledge center, "How do I
determine throttling in my CloudWatch logs?"). A tail is one or two calls per failed
build, so a low pace costs nothing and leaves the quota to the people reading logs."""
_LOG_RETRY = RetryPolicy(attempts=3, base=1.0, cap=5.0)
"""A log tail is a nicety: a few quick tries, then the event goes out without it."""
_LOG_PAGES = 5
"""Pages of GetLogEvents read for one tail. The model: "A returned page might only be
partially full, or even empty", so a short page does not prove the stream's start."""

_THROTTLING = {
    "CallRateLimitExceededException",
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "SlowDown",
    # SQS (the push path's queue): the model's RequestThrottled and KmsThrottled,
    # "The request was denied due to request throttling".
    "RequestThrottled",
    "KmsThrottled",
    "KMS.ThrottlingException",  # KmsThrottled's query-compatible code (our reading)
    # SQS's OverLimit (HTTP 403): "ReceiveMessage returns this error if the maximum
    # number of in flight messages is reached". It clears as messages are deleted:
    # a throttle, not a refusal.
    "OverLimit",
}
_UNAVAILABLE = {
    "ServiceUnavailableException",
    "ServiceException",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
}
_NOT_FOUND = {
    "ResourceNotFoundException",
    # SQS: the model's QueueDoesNotExist, and the code its awsQueryCompatible
    # protocol puts in the x-amzn-query-error header, which botocore reports.
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
}
_ACCESS_DENIED = {
    "ForbiddenException",
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    # SQS: the queue's KMS key refuses the caller; the second is the code its
    # query-compatible header carries (seen in aws-sdk-js issue 4151).
    "KmsAccessDenied",
    "KMS.AccessDeniedException",
}
_BAD_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
    "RequestExpired",
}


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a List operation. The model: a `nextToken` means more items
    may follow, even when this page is short or empty."""

    items: list[T]
    next_token: str | None


class ImageSource(Protocol):
    """Where snapshots come from: AWS here, a scripted fake in tests."""

    async def get(self, arn: str) -> ImageSnapshot:
        """The image behind `arn` now; raises a `watcher.errors.ApiError`."""
        ...


class AwsImageSource:
    """get_image through aiobotocore, a client per account and region created on
    first use.

    `endpoint_url=None` leaves the endpoint to botocore, which honours
    AWS_ENDPOINT_URL_IMAGEBUILDER and AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_LOGS for
    the log reads). A given `endpoint_url` serves both services: it is how ibwatch is
    pointed at the simulator, which answers Image Builder and CloudWatch Logs alike.

    `accounts` (`[aws.accounts]`): the role or profile that reads each listed account;
    `session` (the default chain's) reads every other one, and signs AssumeRole.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        region: str | None = None,
        endpoint_url: str | None = None,
        concurrency: int = 16,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        session: AioSession | None = None,
        accounts: Mapping[str, AccountAccess] | None = None,
    ) -> None:
        self._clock = clock
        self._region = region
        self._endpoint_url = endpoint_url
        self._config = AioConfig(
            retries={"total_max_attempts": 1},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max(1, concurrency),
        )
        self.accounts = AccountSessions(
            accounts or {},
            base=session or get_session(),
            clock=clock,
            # botocore's retries are off for STS too: they sleep on the real clock,
            # holding up the call being signed. A failed renewal is tried again by
            # the next call (watcher.credentials paces those) or by the engine's retry.
            sts_config=AioConfig(
                retries={"total_max_attempts": 1},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            ),
        )
        self._clients: dict[ClientKey, Any] = {}
        """Image Builder clients by (credentials, region): the hot path reads this one."""
        self._logs: dict[ClientKey, Any] = {}
        """CloudWatch Logs clients likewise, made when a first log tail is read."""
        # Not the engine's limiters: a log read must neither spend Image Builder's
        # quota nor, when CloudWatch Logs throttles it, slow Image Builder's polls.
        # Keyed like the clients: CloudWatch Logs' rate quotas are "TPS/account/
        # Region" (CloudWatch Logs User Guide, "CloudWatch Logs quotas"), so one
        # account's throttled reads must not slow another's.
        self._log_limiters = LimiterPool(LOGS_MAX_TPS, clock)
        self._lock = anyio.Lock()
        self._stack = AsyncExitStack()
        self._stack.push_async_callback(self.accounts.aclose)  # closed after the clients

    async def __aenter__(self) -> AwsImageSource:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
        self._clients.clear()
        self._logs.clear()

    def account_of(self, arn: str) -> str:
        """The key of the credentials that read `arn`: its account when listed in
        `accounts`, else `watcher.credentials.DEFAULT_ACCOUNT`. Labels metrics and
        picks the rate limiter, since quotas are the caller's account's."""
        return self.accounts.key_of(arn)

    @property
    def account_keys(self) -> tuple[str, ...]:
        """Every value `account_of` can return: "default", then each listed account."""
        return self.accounts.keys

    async def warm(self, arns: Iterable[str]) -> None:
        """Create the clients these (image or pipeline) ARNs need now rather than on
        their first call: loading models and TLS contexts happens once, before the
        clock matters."""
        # Image and pipeline ARNs alike: the region is the ARN's fourth field.
        for key in sorted({self._key(arn) for arn in arns}):
            await self._client(key)

    def _key(self, arn: str, region: str | None = None) -> ClientKey:
        return (self.accounts.key_of(arn), region or arn.split(":", 4)[3])

    async def get(self, arn: str, *, renew: bool = True) -> ImageSnapshot:
        # The ARN's own account and region pick the client.
        key = (self.accounts.key_of(arn), Arn.parse(arn).region)
        client = self._clients.get(key) or await self._client(key)
        try:
            response = await client.get_image(imageBuildVersionArn=arn)
        except Exception as exc:
            if (
                renew
                and isinstance(exc, botocore.exceptions.NoCredentialsError)
                and await self._renew_if_credentials_came(key, client)
            ):
                return await self.get(arn, renew=False)
            # classify_errors() as a plain except: this runs on every poll.
            with classify_errors(arn):
                raise exc from None
        return snapshot_from_response(response, arn, observed_at=self._clock.now())

    # -- discovery and CI calls: one API call each, so that every page goes
    # -- through the caller's rate limiter and retries on its own.

    async def list_build_versions(
        self,
        region: str,
        *,
        version_arn: str | None = None,
        name: str | None = None,
        next_token: str | None = None,
        account: str | None = None,
    ) -> Page[ImageSnapshot]:
        """One page of ListImageBuildVersions: the builds of exact version
        `version_arn`, or (without it) of every image named `name` in the region's
        account (`account`'s credentials read it; None: the default chain's). The
        model: imageVersionArn is optional and takes no wildcards."""
        request: dict[str, Any] = {"maxResults": 25}
        if version_arn is not None:
            request["imageVersionArn"] = version_arn
        if name is not None:
            request["filters"] = [{"name": "name", "values": [name]}]
        if next_token:
            request["nextToken"] = next_token
        key = (
            self._key(version_arn, region)
            if version_arn is not None
            else (self.accounts.key_of_account(account), region)
        )
        response = await self._call(key, "list_image_build_versions", version_arn or "", request)
        return self._summaries(response, version_arn or name or "")

    async def list_pipeline_images(
        self, pipeline_arn: str, *, next_token: str | None = None
    ) -> Page[ImageSnapshot]:
        """One page of ListImagePipelineImages: the builds a pipeline created."""
        request: dict[str, Any] = {"imagePipelineArn": pipeline_arn, "maxResults": 25}
        if next_token:
            request["nextToken"] = next_token
        key = self._key(pipeline_arn, PipelineArn.parse(pipeline_arn).region)
        response = await self._call(key, "list_image_pipeline_images", pipeline_arn, request)
        return self._summaries(response, pipeline_arn)

    async def get_pipeline(self, pipeline_arn: str) -> PipelineInfo:
        key = self._key(pipeline_arn, PipelineArn.parse(pipeline_arn).region)
        response = await self._call(
            key, "get_image_pipeline", pipeline_arn, {"imagePipelineArn": pipeline_arn}
        )
        return _pipeline(response.get("imagePipeline"), pipeline_arn)

    async def list_pipelines(
        self, region: str, *, next_token: str | None = None, account: str | None = None
    ) -> Page[PipelineInfo]:
        """One page of ListImagePipelines: every pipeline of the region's account
        (`account`'s credentials read it; None: the default chain's)."""
        request: dict[str, Any] = {"maxResults": 25}
        if next_token:
            request["nextToken"] = next_token
        key = (self.accounts.key_of_account(account), region)
        response = await self._call(key, "list_image_pipelines", "", request)
        items = response.get("imagePipelineList") or []
        return Page(
            [_pipeline(item, "") for item in items if isinstance(item, dict)],
            response.get("nextToken") or None,
        )

    async def start_pipeline(self, pipeline_arn: str, client_token: str) -> str:
        """StartImagePipelineExecution; returns the new build's ARN. The same
        `client_token` returns the original build instead of starting another."""
        key = self._key(pipeline_arn, PipelineArn.parse(pipeline_arn).region)
        response = await self._call(
            key,
            "start_image_pipeline_execution",
            pipeline_arn,
            {"imagePipelineArn": pipeline_arn, "clientToken": client_token},
        )
        arn = response.get("imageBuildVersionArn")
        if not isinstance(arn, str):
            raise Unavailable(
                "malformed StartImagePipelineExecution response: no imageBuildVersionArn",
                code="Malformed",
                arn=pipeline_arn,
            )
        return arn

    async def cancel_build(self, build_arn: str, client_token: str) -> None:
        """CancelImageCreation: asynchronous, the build moves to CANCELLED later."""
        await self._call(
            self._key(build_arn, Arn.parse(build_arn).region),
            "cancel_image_creation",
            build_arn,
            {"imageBuildVersionArn": build_arn, "clientToken": client_token},
        )

    # -- a failed build's workflow steps (watcher.diagnostics). The model lists
    # -- no ResourceNotFoundException for these, but one is classified as NotFound.

    async def list_workflow_executions(
        self, build_arn: str, *, next_token: str | None = None
    ) -> tuple[list[WorkflowExecution], str | None]:
        """One page of ListWorkflowExecutions: the workflows the build ran."""
        request: dict[str, Any] = {"imageBuildVersionArn": build_arn, "maxResults": 25}
        if next_token:
            request["nextToken"] = next_token
        key = self._key(build_arn, Arn.parse(build_arn).region)
        response = await self._call(key, "list_workflow_executions", build_arn, request)
        with _read("ListWorkflowExecutions", build_arn):
            items = [
                WorkflowExecution(
                    execution_id=item["workflowExecutionId"],
                    type=_typed(item, "type", str),
                    status=_typed(item, "status", str),
                    workflow_arn=_typed(item, "workflowBuildVersionArn", str),
                    message=_typed(item, "message", str),
                    total_step_count=_typed(item, "totalStepCount", int),
                )
                for item in response.get("workflowExecutions") or []
            ]
        return items, response.get("nextToken") or None

    async def list_workflow_step_executions(
        self, build_arn: str, workflow_execution_id: str, *, next_token: str | None = None
    ) -> tuple[list[StepExecution], str | None]:
        """One page of ListWorkflowStepExecutions: the steps of one workflow run
        (`build_arn` picks the account and region; the execution id names neither)."""
        request: dict[str, Any] = {"workflowExecutionId": workflow_execution_id, "maxResults": 25}
        if next_token:
            request["nextToken"] = next_token
        key = self._key(build_arn, Arn.parse(build_arn).region)
        response = await self._call(key, "list_workflow_step_executions", build_arn, request)
        with _read("ListWorkflowStepExecutions", build_arn):
            items = [_step(item) for item in response.get("steps") or []]
        return items, response.get("nextToken") or None

    async def get_workflow_step_execution(
        self, build_arn: str, step_execution_id: str
    ) -> StepExecution:
        """GetWorkflowStepExecution: one step by the id failureContext names; one call
        where listing would take two or more."""
        key = self._key(build_arn, Arn.parse(build_arn).region)
        response = await self._call(
            key,
            "get_workflow_step_execution",
            build_arn,
            {"stepExecutionId": step_execution_id},
        )
        with _read("GetWorkflowStepExecution", build_arn):
            return _step(response)

    # -- a failed build's log (watcher.diagnostics), from CloudWatch Logs.

    async def log_tail(self, build_arn: str, group: str, stream: str, events: int) -> list[str]:
        """The messages of the last `events` events of log stream `stream` of `group`,
        oldest first, read with GetLogEvents in the build ARN's account and region (its
        log is there). Paced by its own limiter and retried on its own (`LOGS_MAX_TPS`);
        raises a `watcher.errors.ApiError` once the retries are spent.

        The model: with startFromHead false (the default) "the latest log events are
        returned first", and paging backwards goes on "as long as the
        nextBackwardToken ... returned is NOT equal to the nextToken that you passed"
        ("If you have reached the end of the stream, it returns the same token you
        passed in"). So it pages back from the end until it holds `events` events or
        the token comes back unchanged: a stream shorter than `events` costs a
        second, empty call."""
        key = self._key(build_arn, Arn.parse(build_arn).region)
        found: list[str] = []
        token: str | None = None
        for _ in range(_LOG_PAGES if events > 0 else 0):
            request: dict[str, Any] = {
                "logGroupName": group,
                "logStreamName": stream,
                "startFromHead": False,
                "limit": min(events - len(found), 10_000),  # the model's EventsLimit: 1..10000
            }
            if token is not None:
                request["nextToken"] = token
            response = await call_with_retry(
                partial(self._call, key, "get_log_events", build_arn, request, service=LOGS),
                limiter=self._log_limiters.get(*key),
                clock=self._clock,
                policy=_LOG_RETRY,
            )
            page, backward = _log_page(response, build_arn)
            found = page[-(events - len(found)) :] + found
            if len(found) >= events or backward is None or backward == token:
                break
            token = backward
        return found

    async def _call(
        self,
        key: ClientKey,
        operation: str,
        arn: str,
        request: dict[str, Any],
        *,
        service: str = IMAGEBUILDER,
        renew: bool = True,
    ) -> dict[str, Any]:
        clients = self._clients_of(service)
        client = clients.get(key) or await self._client(key, service)
        with classify_errors(arn):
            try:
                response: dict[str, Any] = await getattr(client, operation)(**request)
            except botocore.exceptions.NoCredentialsError:
                if not (renew and await self._renew_if_credentials_came(key, client, clients)):
                    raise
                return await self._call(key, operation, arn, request, service=service, renew=False)
        return response

    def _clients_of(self, service: str) -> dict[ClientKey, Any]:
        return self._logs if service == LOGS else self._clients

    async def _renew_if_credentials_came(
        self, key: ClientKey, client: Any, clients: dict[ClientKey, Any] | None = None
    ) -> bool:
        """A client keeps the credentials it was created with, so one created before
        any existed (an IRSA token or a secret mounted late) fails forever. Once the
        session finds credentials, drop it, so the call can be made again with a new
        one (True). Until then nothing is recreated, so a long outage builds no pile
        of clients; a dropped one is closed with the others on exit. An assumed role's
        client needs none of this: its credentials ask the default chain anew at
        each renewal."""
        clients = self._clients if clients is None else clients
        if self.accounts.assumes_role(key[0]):
            return False
        async with self._lock:
            if clients.get(key) is not client:
                return True  # another call renewed it already
            try:
                found = await self.accounts.session(*key).get_credentials()
            except Exception:  # still none usable; the caller reports its own failure
                return False
            if found is None:
                return False
            del clients[key]
            return True

    def _summaries(self, response: dict[str, Any], arn: str) -> Page[ImageSnapshot]:
        now = self._clock.now()
        items = response.get("imageSummaryList") or []
        return Page(
            [snapshot_from_image(item, arn, observed_at=now) for item in items],
            response.get("nextToken") or None,
        )

    async def _client(self, key: ClientKey, service: str = IMAGEBUILDER) -> Any:
        clients = self._clients_of(service)
        async with self._lock:
            if key not in clients:
                account, region = key
                region = region or self._region or ""
                with classify_errors(""):
                    try:
                        client = self.accounts.session(account, region).create_client(
                            service,
                            region_name=region or None,
                            endpoint_url=self._endpoint_url,
                            config=self._config,
                        )
                        clients[key] = await self._stack.enter_async_context(client)
                    except ValueError as exc:  # botocore: "Invalid endpoint: notaurl"
                        raise Misconfigured(str(exc), code="InvalidEndpoint") from exc
            return clients[key]


@contextmanager
def classify_errors(arn: str) -> Iterator[None]:
    """Turn every way a call can fail into the project's own exceptions."""
    try:
        yield
    except ApiError:
        raise
    except botocore.exceptions.ClientError as exc:
        raise _from_client_error(exc, arn) from exc
    except AssumeRoleFailed as exc:
        raise _from_assume_role(exc, arn) from exc.error
    except (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.PartialCredentialsError,
        botocore.exceptions.CredentialRetrievalError,
    ) as exc:
        raise BadCredentials(
            f"no usable AWS credentials: {exc}", code=type(exc).__name__, arn=arn
        ) from exc
    except botocore.exceptions.NoRegionError as exc:
        raise Misconfigured(
            "no AWS region configured: set [aws] region or AWS_REGION",
            code="NoRegionError",
            arn=arn,
        ) from exc
    except (
        botocore.exceptions.ProfileNotFound,
        botocore.exceptions.ConfigNotFound,
        botocore.exceptions.ConfigParseError,
    ) as exc:
        raise Misconfigured(
            f"AWS configuration: {exc} (check AWS_PROFILE and AWS_CONFIG_FILE)",
            code=type(exc).__name__,
            arn=arn,
        ) from exc
    except botocore.exceptions.HTTPClientError as exc:
        if isinstance(exc.kwargs.get("error"), aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
            raise Misconfigured(
                f"the Image Builder endpoint is not an http(s) URL: {exc.kwargs['error']}",
                code="InvalidEndpoint",
                arn=arn,
            ) from exc
        raise Unavailable(f"{type(exc).__name__}: {exc}", code=type(exc).__name__, arn=arn) from exc
    except botocore.exceptions.ParamValidationError as exc:
        raise InvalidRequest(str(exc), code="ParamValidationError", arn=arn) from exc
    except RuntimeError as exc:
        # botocore's refreshable credentials raise a bare RuntimeError when keys just
        # renewed already look expired by the clock they were given: that clock is
        # ahead of STS's (our reading of RefreshableCredentials._protected_refresh).
        if "refreshed credentials are still expired" not in str(exc):
            raise
        raise BadCredentials(
            f"{exc} (is this machine's clock ahead of the real time?)",
            code="ExpiredCredentials",
            arn=arn,
        ) from exc
    except (
        TimeoutError,
        # The rest of botocore's own errors are transport trouble: endpoint
        # connection, read/connect timeouts, closed connections.
        botocore.exceptions.BotoCoreError,
        ResponseParserError,
        aiohttp.ClientError,
        OSError,
    ) as exc:
        # Dropped connections, timeouts, unreachable endpoints, unparseable bodies.
        raise Unavailable(f"{type(exc).__name__}: {exc}", code=type(exc).__name__, arn=arn) from exc


def _from_client_error(exc: botocore.exceptions.ClientError, arn: str) -> ApiError:
    kind, code, message = _client_error_parts(exc)
    return kind(f"{code}: {message}", code=code, arn=arn)


def _client_error_parts(
    exc: botocore.exceptions.ClientError,
) -> tuple[type[ApiError], str, str]:
    """A ClientError's class in the tree, its code and its message."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    kind: type[ApiError]
    if code in _THROTTLING or status == 429:
        kind = Throttled
    elif code in _UNAVAILABLE or status >= 500:
        kind = Unavailable
    elif code in _NOT_FOUND or status == 404:
        kind = NotFound
    elif code in _BAD_CREDENTIALS:
        kind = BadCredentials
    elif code in _ACCESS_DENIED or status == 403:
        kind = AccessDenied
    else:
        kind = InvalidRequest
    return kind, code, message


def _from_assume_role(failed: AssumeRoleFailed, arn: str) -> AssumeRoleError:
    """An assumed role's renewal failed while signing a call: classified as any AWS
    error, then as the renewal's own kind (`watcher.credentials.AssumeRoleError`), so
    that neither the engine nor its limiter takes it for Image Builder's answer."""
    where = f"STS AssumeRole of {failed.role_arn} in {failed.region}"
    error = failed.error
    if isinstance(error, botocore.exceptions.ClientError):
        kind, code, message = _client_error_parts(error)
        text = f"{code}: {where}: {message}"
        if code == "RegionDisabledException":
            # STS's model: "STS is not activated in the requested region for the
            # account that is being asked to generate credentials."
            text += " (an account administrator can activate STS in this Region in IAM)"
    else:
        try:
            with classify_errors(arn):
                try:
                    raise error
                except ValueError as exc:  # botocore: "Invalid endpoint: notaurl"
                    raise Misconfigured(str(exc), code="InvalidEndpoint") from exc
                except (KeyError, TypeError, AttributeError) as exc:  # no Credentials in it
                    raise Unavailable(f"malformed response: {exc!r}", code="Malformed") from exc
        except ApiError as found:
            kind, code, text = type(found), found.code, f"{where}: {found}"
    role_kind: type[AssumeRoleError]
    if issubclass(kind, RetryableError):
        role_kind = AssumeRoleUnavailable  # Throttled too: STS's quota, not Image Builder's
    elif issubclass(kind, BadCredentials):
        role_kind = AssumeRoleBadCredentials
    elif issubclass(kind, Misconfigured):
        role_kind = AssumeRoleMisconfigured
    else:
        role_kind = AssumeRoleDenied  # AccessDenied, and what STS names no better
    return role_kind(text, code=code, arn=arn)


def snapshot_from_response(
    response: dict[str, Any], arn: str, *, observed_at: datetime
) -> ImageSnapshot:
    """Read a GetImage response; a body without an image is a failed call."""
    image = response.get("image")
    if not isinstance(image, dict) or not isinstance(image.get("state"), dict):
        # botocore turns an unparseable 200 body into a response without `image`.
        raise Unavailable("malformed GetImage response: no image in it", code="Malformed", arn=arn)
    return snapshot_from_image(image, arn, observed_at=observed_at)


def snapshot_from_image(image: dict[str, Any], arn: str, *, observed_at: datetime) -> ImageSnapshot:
    """Read an `Image` (GetImage) or an `ImageSummary` (the List operations): they
    share every member a snapshot holds."""
    try:
        state = image["state"]
        built = Arn.parse(image["arn"])
        version, _, build = str(image.get("version", "")).partition("/")
        outputs = image.get("outputResources") or {}
        tests = image.get("imageTestsConfiguration") or {}
        return ImageSnapshot(
            arn=str(built),
            status=ImageStatus(_typed(state, "status", str) or ""),  # "" is refused too
            reason=_typed(state, "reason", str),
            failure_context=_typed(state, "failureContext", dict),
            name=built.name,
            version=version or built.version,
            build=int(build) if build else (built.build or 0),
            type=_typed(image, "type", str),
            platform=_typed(image, "platform", str),
            pipeline=_typed(image, "sourcePipelineName", str) or _pipeline_name(image),
            created=_date(image.get("dateCreated")),
            tests_enabled=_typed(tests, "imageTestsEnabled", bool),
            outputs=_outputs(outputs),
            observed_at=observed_at,
            log_group=_typed(
                _typed(image, "loggingConfiguration", dict) or {}, "logGroupName", str
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unavailable(f"malformed image in response: {exc}", code="Malformed", arn=arn) from exc


def _typed(document: dict[str, Any], key: str, kind: type[T]) -> T | None:
    """`document[key]` if it is a `kind` (None if absent). The values of a snapshot are
    not checked when built (no pydantic on the one-shot path), so the edge checks
    what it reads: a body of the wrong types is malformed, not stored."""
    value = document.get(key)
    if value is None or isinstance(value, kind):
        return value
    raise TypeError(f"{key} is {type(value).__name__}, expected {kind.__name__}")


def _step(item: dict[str, Any]) -> StepExecution:
    """A WorkflowStepMetadata, or a GetWorkflowStepExecution response (its members
    and the ids of its workflow)."""
    return StepExecution(
        step_execution_id=item["stepExecutionId"],
        name=item["name"],
        action=_typed(item, "action", str),
        status=_typed(item, "status", str),
        message=_typed(item, "message", str),
        execution_id=_typed(item, "workflowExecutionId", str),
        workflow_arn=_typed(item, "workflowBuildVersionArn", str),
        started_at=_date(item.get("startTime")),
    )


@contextmanager
def _read(operation: str, arn: str) -> Iterator[None]:
    """Reading an answer of `operation`: a member missing or of the wrong type makes
    it malformed (Unavailable, retried like a garbled answer), never a crash."""
    try:
        yield
    except (KeyError, TypeError, AttributeError) as exc:
        raise Unavailable(
            f"malformed {operation} response: {exc}", code="Malformed", arn=arn
        ) from exc


def _log_page(response: dict[str, Any], arn: str) -> tuple[list[str], str | None]:
    """A GetLogEvents page's messages, oldest first, and its nextBackwardToken. The
    model says the latest events come "first" without saying in which order a page
    lists them; AWS lists them oldest first (as `aws logs get-log-events` shows), and
    a page in the other order is turned around, so either reads right."""
    with _read("GetLogEvents", arn):
        events = [
            (_typed(event, "timestamp", int) or 0, _typed(event, "message", str) or "")
            for event in response.get("events") or []
        ]
        backward = _typed(response, "nextBackwardToken", str)
    if len(events) > 1 and events[0][0] > events[-1][0]:
        events.reverse()
    return [message for _, message in events], backward


def _pipeline_name(image: dict[str, Any]) -> str | None:
    # The model: sourcePipelineName is not returned for new images; use sourcePipelineArn.
    source = image.get("sourcePipelineArn")
    return source.rsplit("/", 1)[-1] if isinstance(source, str) and "/" in source else None


_NO_OUTPUTS = Outputs()


def _outputs(outputs: dict[str, Any]) -> Outputs:
    amis = tuple(
        Ami(
            region=_typed(a, "region", str) or "",
            image=_typed(a, "image", str) or "",
            name=_typed(a, "name", str),
            account_id=_typed(a, "accountId", str),
        )
        for a in outputs.get("amis", [])
        if a.get("region") and a.get("image")
    )
    containers = tuple(
        Container(
            region=_typed(c, "region", str) or "",
            image_uris=tuple(_strings(c.get("imageUris") or [], "imageUris")),
        )
        for c in outputs.get("containers", [])
        if c.get("region")
    )
    # Most polls are of builds without outputs yet: share one empty value rather
    # than keep one per watched ARN.
    return Outputs(amis=amis, containers=containers) if amis or containers else _NO_OUTPUTS


def _strings(values: object, key: str) -> list[str]:
    if isinstance(values, list) and all(isinstance(v, str) for v in values):
        return values
    raise TypeError(f"{key} is not a list of strings")


def _date(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _pipeline(value: object, arn: str) -> PipelineInfo:
    if not isinstance(value, dict):
        raise Unavailable("malformed response: no image pipeline in it", code="Malformed", arn=arn)
    try:
        last_run = value.get("dateLastRun")
        return PipelineInfo(
            arn=value["arn"],
            name=value.get("name") or value["arn"].rsplit("/", 1)[-1],
            status=value.get("status") or "ENABLED",
            date_last_run=str(last_run) if last_run else None,
            last_run_status=value.get("lastRunStatus"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unavailable(f"malformed image pipeline: {exc}", code="Malformed", arn=arn) from exc
