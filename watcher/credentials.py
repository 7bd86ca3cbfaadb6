"""Which credentials read which AWS account, in which Region.

The account of a watched ARN (its fifth field) picks an aiobotocore session: an
account listed in `[aws.accounts]` is read through a role assumed with STS, or
through a named profile; any other account through botocore's default chain, as
with a single account.

An assumed role's keys are asked of STS in the Region of the ARNs they read, so
they are kept per (account, Region): "Session tokens from Regional AWS STS endpoints
are valid in all AWS Regions. Session tokens from the global STS endpoint are valid
only in AWS Regions that are enabled by default" (IAM User Guide, "Manage AWS STS in
an AWS Region"), and botocore sends an STS client without a Region to the global
endpoint. A Region's STS failing then fails that Region's reads only.

Those keys are renewed by botocore's own refreshable credentials
(`AioDeferredRefreshableCredentials`): each request asks them for keys, and they call
AssumeRole again once the keys are within botocore's advisory window of their expiry
(15 minutes; a failure then keeps the current keys) or its mandatory one (10
minutes; a failure then fails the request). Their clock is the injected `Clock`.
AssumeRole is signed with the default chain's credentials, through one STS client
per (account, Region), kept; its endpoint is botocore's (AWS_ENDPOINT_URL_STS
overrides it). A failed renewal in the advisory window is logged once, not tried
again on every call meanwhile, and a failure that reaches a call is an
`AssumeRoleError` (classified by `watcher.aws`), never Image Builder's own.

Never holds a secret of its own, never runs a refresh loop, never reads a clock
other than the one it is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentialResolver, AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, NoCredentialsError

from watcher.clock import Clock
from watcher.errors import AccessDenied, ApiError, BadCredentials, Misconfigured, Unavailable

__all__ = [
    "DEFAULT_ACCOUNT",
    "RENEWAL_RETRY_AFTER",
    "AccountAccess",
    "AccountSessions",
    "AssumeRoleBadCredentials",
    "AssumeRoleDenied",
    "AssumeRoleError",
    "AssumeRoleFailed",
    "AssumeRoleMisconfigured",
    "AssumeRoleUnavailable",
    "account_field",
    "profile_problems",
]

log = structlog.get_logger("ibwatch")

DEFAULT_ACCOUNT = "default"
"""The key of every account not listed: read with botocore's default chain (whose
own account is not known without a call to STS GetCallerIdentity)."""

RENEWAL_RETRY_AFTER = 30.0
"""Seconds between tries of a renewal that failed while the current keys are still
outside botocore's mandatory window: botocore would otherwise call AssumeRole on
every request until one succeeds. Ten tries in the five minutes of the advisory
window; in the mandatory window every call tries (and fails without keys), paced by
the engine's own retries."""

_MANDATORY_WINDOW: float = AioDeferredRefreshableCredentials._mandatory_refresh_timeout
"""botocore's mandatory refresh window (10 minutes; `_DEFAULT_MANDATORY_REFRESH_TIMEOUT`
in botocore/credentials.py), read from the class whose objects apply it."""


class AssumeRoleError(ApiError):
    """Renewing an assumed role's keys (STS AssumeRole) failed, not the call that
    needed them: STS's throttling is not Image Builder's (it must not slow Image
    Builder's pace), and STS refusing a role is not Image Builder refusing a read."""


class AssumeRoleUnavailable(AssumeRoleError, Unavailable):
    """STS throttled AssumeRole, failed, or could not be reached: retried like any
    unavailable call, never counted as Image Builder throttling."""


class AssumeRoleDenied(AssumeRoleError, AccessDenied):
    """STS refused the role to the default chain's credentials (its trust policy, an
    sts:AssumeRole permission, an ExternalId, STS deactivated in the Region)."""


class AssumeRoleBadCredentials(AssumeRoleError, BadCredentials):
    """The default chain's credentials, which sign AssumeRole, are missing or refused."""


class AssumeRoleMisconfigured(AssumeRoleError, Misconfigured):
    """STS cannot be called at all as configured (AWS_ENDPOINT_URL_STS is no URL)."""


class AssumeRoleFailed(Exception):
    """What the refresh path raises: `error` is what AssumeRole (or making its client)
    raised. `watcher.aws` turns it into an `AssumeRoleError`, as it reads AWS errors."""

    def __init__(self, role_arn: str, region: str, error: Exception) -> None:
        super().__init__(f"STS AssumeRole of {role_arn} in {region}: {error}")
        self.role_arn = role_arn
        self.region = region
        self.error = error


class AccountAccess(Protocol):
    """How to read one account (`watcher.config.aws.AccountConfig` is one): exactly one
    of `role_arn` and `profile` is set."""

    @property
    def role_arn(self) -> str | None: ...

    @property
    def external_id(self) -> str | None: ...

    @property
    def session_name(self) -> str: ...

    @property
    def profile(self) -> str | None: ...


def account_field(arn: str) -> str:
    """An ARN's fifth field, its account: `arn:partition:service:region:account:...`."""
    parts = arn.split(":", 5)
    return parts[4] if len(parts) > 4 else ""


def profile_problems(accounts: Mapping[str, AccountAccess]) -> list[str]:
    """One line per account whose profile the AWS config and credentials files
    (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, as botocore reads them) do not
    hold, naming its key; [] when every one is there."""
    named = {account: a.profile for account, a in accounts.items() if a.profile is not None}
    if not named:
        return []
    # Imported here: it brings pydantic, which the one-shot commands never load.
    from watcher._validation import did_you_mean

    probe = AioSession()
    files = (
        f"the AWS config file ({_file(probe, 'config_file')}) or credentials file "
        f"({_file(probe, 'credentials_file')})"
    )
    try:
        known = probe.available_profiles
    except BotoCoreError as exc:  # a file that is not INI: ConfigParseError
        return [f"aws.accounts: cannot read {files}: {exc}"]
    return [
        f'aws.accounts."{account}".profile: no profile {profile!r} in {files}'
        + did_you_mean(profile, known)
        for account, profile in named.items()
        if profile not in known
    ]


def _file(session: AioSession, variable: str) -> str:
    return os.path.expanduser(str(session.get_config_variable(variable)))


class AccountSessions:
    """The session that reads each account in each Region, and the key that names its
    credentials.

    A key is the account id for a listed account, `DEFAULT_ACCOUNT` for any other:
    calls with the same key are made with the same credentials and so count against
    the same account's quotas, whatever account owns the resource (an image shared
    from another account is read with the caller's own)."""

    def __init__(
        self,
        accounts: Mapping[str, AccountAccess],
        *,
        base: AioSession,
        clock: Clock,
        sts_config: AioConfig | None = None,
    ) -> None:
        """`base`: the default chain's session, which also signs AssumeRole. Raises
        `Misconfigured` naming each profile the AWS files do not hold: found now,
        rather than as a failed call of that account's, blamed on AWS_PROFILE."""
        problems = profile_problems(accounts)
        if problems:
            raise Misconfigured("; ".join(problems), code="ProfileNotFound")
        self._base = base
        self._clock = clock
        self._sts_config = sts_config or AioConfig()
        self._keys = (DEFAULT_ACCOUNT, *accounts)
        self._listed = frozenset(accounts)
        self._sessions: dict[str, AioSession] = {DEFAULT_ACCOUNT: base}
        """The default chain's and each profile's: one session for every Region."""
        self._roles: dict[str, AccountAccess] = {}
        self._assumed: dict[tuple[str, str], _AssumedRole] = {}
        """An assumed role's credentials by (account, Region), made on first use."""
        for account, access in accounts.items():
            if access.profile is not None:
                self._sessions[account] = _sharing_models(AioSession(profile=access.profile), base)
            else:
                self._roles[account] = access
        if self._roles:
            _quiet_refresh_failures()

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key: the default first, then the listed accounts."""
        return self._keys

    def key_of(self, arn: str) -> str:
        """The key of the credentials that read `arn` (any ARN: image, pipeline)."""
        return self.key_of_account(account_field(arn))

    def key_of_account(self, account: str | None) -> str:
        """The key of the credentials that read account `account` (None: the default)."""
        return account if account is not None and account in self._listed else DEFAULT_ACCOUNT

    def session(self, key: str, region: str) -> AioSession:
        """The session whose clients read `key`'s account in `region`."""
        found = self._sessions.get(key)
        if found is not None:
            return found
        role = self._assumed.get((key, region))
        if role is None:
            role = self._assumed[key, region] = _AssumedRole(
                key, self._roles[key], self._base, region, self._sts_config, self._clock
            )
        return role.session

    def assumes_role(self, key: str) -> bool:
        """Whether `key`'s credentials are an assumed role: they renew themselves, and a
        client made before the default chain had credentials works once it has."""
        return key in self._roles

    async def aclose(self) -> None:
        """Close the STS clients; the sessions stay usable (a new client is made)."""
        for role in self._assumed.values():
            await role.aclose()


class _AssumedRole:
    """One account's assumed role in one Region: the refreshable credentials its
    clients sign with, and what they call to renew: AssumeRole at that Region's STS,
    through one client kept for it, signed with the default chain's credentials (its
    session's, which renew themselves when they are temporary)."""

    def __init__(
        self,
        account: str,
        access: AccountAccess,
        base: AioSession,
        region: str,
        config: AioConfig,
        clock: Clock,
    ) -> None:
        assert access.role_arn is not None  # the config allows a role or a profile
        self._account, self._region, self._role_arn = account, region, access.role_arn
        self._base, self._config, self._clock = base, config, clock
        self._request: dict[str, str] = {
            "RoleArn": access.role_arn,
            "RoleSessionName": access.session_name,
        }
        if access.external_id is not None:
            self._request["ExternalId"] = access.external_id
        self._credentials = AioDeferredRefreshableCredentials(
            refresh_using=self._renew, method="assume-role", time_fetcher=clock.now
        )
        self.session = _sharing_models(_session_with(self._credentials), base)
        self._sts: Any = None
        self._stack = AsyncExitStack()
        self._expires: datetime | None = None
        """When the keys held now expire (None: none issued yet)."""
        self._failed_at: float | None = None
        """When the last renewal failed (monotonic); None since the last success."""
        self._warned = False

    async def _renew(self) -> dict[str, Any]:
        # botocore calls this under the credentials' own lock: one renewal at a time.
        held = self._expires is not None and not self._credentials.refresh_needed(_MANDATORY_WINDOW)
        if (
            held
            and self._failed_at is not None
            and self._clock.monotonic() - self._failed_at < RENEWAL_RETRY_AFTER
        ):
            # Keeps the current keys (botocore's advisory refresh swallows it).
            raise _RenewalPaused()
        try:
            found = await self._assume_role()
        except Exception as exc:
            self._failed(exc)
            raise AssumeRoleFailed(self._role_arn, self._region, exc) from exc
        if self._warned:
            log.info("credentials.renewed", **self._fields(), expires_at=found["expiry_time"])
        self._failed_at, self._warned = None, False
        return found

    async def _assume_role(self) -> dict[str, Any]:
        # The default chain may have found no credentials at start (a pod token
        # mounted late): no client is made before it has, so none is kept unsigned.
        if await self._base.get_credentials() is None:
            raise NoCredentialsError()
        if self._sts is None:
            self._sts = await self._stack.enter_async_context(
                self._base.create_client(
                    "sts", region_name=self._region or None, config=self._config
                )
            )
        response = await self._sts.assume_role(**self._request)
        keys = response["Credentials"]
        expires = keys["Expiration"]  # a timestamp shape: botocore parses it
        self._expires = expires
        return {
            "access_key": keys["AccessKeyId"],
            "secret_key": keys["SecretAccessKey"],
            "token": keys["SessionToken"],
            "expiry_time": expires.isoformat(),
            "account_id": account_field(self._role_arn),
        }

    def _failed(self, exc: Exception) -> None:
        """A renewal failed: the first failure while keys are held is said once; the
        first AssumeRole's failure is the failed call's, which the engine reports."""
        self._failed_at = self._clock.monotonic()
        if self._expires is None or self._warned:
            return
        self._warned = True
        usable_until = self._expires - timedelta(seconds=_MANDATORY_WINDOW)
        log.warning(
            "credentials.renewal_failed",
            **self._fields(),
            error=f"{type(exc).__name__}: {exc}",
            expires_at=self._expires.isoformat(),
            note=(
                f"the current keys are used until {usable_until.isoformat()}, then each "
                "call of this account in this Region fails until AssumeRole succeeds; "
                f"it is tried again every {RENEWAL_RETRY_AFTER:g}s"
            ),
        )

    def _fields(self) -> dict[str, str]:
        return {"account": self._account, "region": self._region, "role_arn": self._role_arn}

    async def aclose(self) -> None:
        self._sts = None
        await self._stack.aclose()


class _RenewalPaused(Exception):
    """A renewal not tried: the last one failed less than RENEWAL_RETRY_AFTER ago."""


class _FixedCredentials:
    """A credential provider (botocore's duck type) that hands out one credentials object."""

    METHOD = "assume-role"
    CANONICAL_NAME = "ibwatch-assume-role"

    def __init__(self, credentials: AioDeferredRefreshableCredentials) -> None:
        self._credentials = credentials

    async def load(self) -> AioDeferredRefreshableCredentials:
        return self._credentials


def _session_with(credentials: AioDeferredRefreshableCredentials) -> AioSession:
    """A session whose clients sign with `credentials` (its credential chain replaced)."""
    session = AioSession()
    session.register_component(
        "credential_provider", AioCredentialResolver(providers=[_FixedCredentials(credentials)])
    )
    return session


def _sharing_models(session: AioSession, base: AioSession) -> AioSession:
    # The service models, read once for all: a session loading its own costs about
    # 0.15 s of CPU per first client (measured), per account and Region.
    session.register_component("data_loader", base.get_component("data_loader"))
    return session


class _RefreshFailed(logging.Filter):
    """Drops botocore's "Refreshing temporary credentials failed" records: they carry a
    traceback (on stderr, amid JSON log lines), and the failure is ours to report. A
    mandatory renewal's failure fails the call, which the engine reports with the ARN
    (and retries, or pauses the ARN when access was refused); an advisory one keeps
    the current keys, and `_AssumedRole` says so once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Refreshing temporary credentials failed")


_FILTER = _RefreshFailed()


def _quiet_refresh_failures() -> None:
    logger = logging.getLogger("aiobotocore.credentials")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
