"""The watcher's configuration: one TOML file, overridable per key from `IBWATCH_*`
environment variables, validated whole when loaded.

A mistake is reported at start with the file, the field path as written in TOML
(`watch.intervals.BUILDNG`), where the value came from and what was expected, all
problems at once. This module never reads a secret from the file, never logs, and
never does I/O beyond reading that one file.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import os
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from watcher._validation import FileError, describe, read_toml
from watcher.durations import Duration
from watcher.model import Arn, ImageStatus, PipelineArn, Transition

ENV_PREFIX = "IBWATCH_"

STATUSES: tuple[str, ...] = tuple(status.value for status in ImageStatus)

DEFAULT_INTERVALS: Mapping[str, float] = MappingProxyType(
    {
        "default": 30.0,
        "PENDING": 30.0,
        "BUILDING": 60.0,
        "TESTING": 60.0,
        "DISTRIBUTING": 30.0,
        "AVAILABLE": 300.0,
    }
)
"""Poll intervals (seconds) used unless `[watch.intervals]` overrides them: builds
sit in BUILDING and TESTING for many minutes; a version ARN stays watched once
AVAILABLE, waiting for its next build, and needs no fast polling."""


class ConfigError(FileError):
    """A configuration that cannot be used; `str()` names the file, each field and the fix."""


def _problems(
    title: str, problems: Iterable[tuple[tuple[str | int, ...], str, Any]]
) -> ValidationError:
    """A ValidationError with one line per (loc, message, input); raised inside a
    validator, pydantic prefixes each loc with the field's own path."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("config", "{message}", {"message": message}),
                loc=loc,
                input=value,
            )
            for loc, message, value in problems
        ],
    )


def _did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    by_upper = {choice.upper(): choice for choice in choices}
    hint = difflib.get_close_matches(word.upper(), list(by_upper), n=1, cutoff=cutoff)
    return f" (did you mean {by_upper[hint[0]]!r}?)" if hint else ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="wrap")
    @classmethod
    def _explain_own_keys(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # pydantic's messages about this table's own shape ("Extra inputs are not
        # permitted", "valid dictionary or instance of X") become a suggestion and the
        # keys it accepts; every other problem passes through unchanged.
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if not any(_about_own_shape(error) for error in errors):
                raise
            fields = list(cls.model_fields)
            rewritten = []
            for error in errors:
                kind, message = error["type"], error["msg"]
                if _about_own_shape(error) and kind == "extra_forbidden":
                    key = str(error["loc"][0])
                    kind, message = (
                        "unknown_key",
                        f"unknown key{_did_you_mean(key, fields)}; "
                        f"expected one of {', '.join(fields)}",
                    )
                elif _about_own_shape(error):
                    kind, message = (
                        "table_type",
                        f"expected a table with keys {', '.join(fields)}; "
                        f"got {_toml_type(error['input'])}",
                    )
                rewritten.append(
                    InitErrorDetails(
                        type=PydanticCustomError(kind, "{message}", {"message": message}),
                        loc=error["loc"],
                        input=error["input"],
                    )
                )
            raise ValidationError.from_exception_data(exc.title, rewritten) from None


def _about_own_shape(error: Any) -> bool:
    loc = error["loc"]
    return bool(
        (error["type"] == "extra_forbidden" and len(loc) == 1)
        or (error["type"] == "model_type" and not loc)
    )


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _positive(seconds: float) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {seconds}")
    if seconds <= 0:
        raise ValueError("expected a duration longer than zero, such as '30s'")
    return seconds


def _finite(seconds: float) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {seconds}")
    return seconds


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
FiniteDuration = Annotated[Duration, AfterValidator(_finite)]


# ---------------------------------------------------------------------------- [aws]


class AwsConfig(_Strict):
    """How to reach Image Builder. Credentials never come from here: botocore's own
    chain (environment, profile, instance role) provides them."""

    region: str | None = None
    """Region for ARNs that need one; None lets botocore decide. An ARN's own region wins."""
    endpoint_url: str | None = None
    """None lets botocore read AWS_ENDPOINT_URL_IMAGEBUILDER / AWS_ENDPOINT_URL."""
    connect_timeout: PositiveDuration = 5.0
    read_timeout: PositiveDuration = 20.0

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+", value):
            raise ValueError(f"expected an AWS region like 'us-east-1', got {value!r}")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL like 'http://127.0.0.1:4000', got {value!r}")
        return value


# -------------------------------------------------------------------------- [watch]


def _arn(value: str) -> str:
    # InvalidArn is a ValueError whose message already says what an image ARN looks like.
    return str(Arn.parse(value))


def _pipeline_arn(value: str) -> str:
    return str(PipelineArn.parse(value))


def _interval_key(key: str) -> str:
    if key == "default" or key in STATUSES:
        return key
    raise ValueError(
        f"{key!r} is not an image status{_did_you_mean(key, ['default', *STATUSES])}; "
        f"expected 'default' or one of {', '.join(STATUSES)}"
    )


def _with_defaults(intervals: Mapping[str, float]) -> Mapping[str, float]:
    # Setting `default` means "this, unless I say otherwise": the built-in
    # per-status values then step aside, or `default = "5s"` would still poll
    # BUILDING every minute. Without `default`, each key replaces its built-in.
    base = (
        {"default": DEFAULT_INTERVALS["default"]} if "default" in intervals else DEFAULT_INTERVALS
    )
    merged = {**base, **intervals}
    order = ["default", *STATUSES]
    return MappingProxyType({key: merged[key] for key in order if key in merged})


_IntervalKey = Annotated[str, AfterValidator(_interval_key)]
Intervals = Annotated[
    Mapping[_IntervalKey, PositiveDuration],
    AfterValidator(_with_defaults),
    PlainSerializer(dict, return_type=dict[str, float]),
]


class RetryConfig(_Strict):
    """One get_image call's retries: full-jitter exponential backoff (tenacity)."""

    attempts: int = Field(default=5, ge=1)
    """Tries per call, the first included: 1 means no retry."""
    base: PositiveDuration = 1.0
    cap: PositiveDuration = 20.0

    @model_validator(mode="after")
    def _cap_covers_base(self) -> Self:
        if self.cap < self.base:
            raise _problems(
                "RetryConfig",
                [
                    (
                        ("cap",),
                        f"must be at least base ({self.base:g}s), got {self.cap:g}s",
                        self.cap,
                    )
                ],
            )
        return self


class WatchConfig(_Strict):
    """What to watch and how hard to poll."""

    arns: tuple[Annotated[str, AfterValidator(_arn)], ...] = ()
    """Image ARNs, normalised, each once. A build-version ARN is watched itself; a
    version ARN (wildcards allowed) is a source: discovery follows every build of it."""
    pipelines: tuple[Annotated[str, AfterValidator(_pipeline_arn)], ...] = ()
    """Image pipeline ARNs whose builds discovery follows; `.../image-pipeline/*` is
    every pipeline of that account and region, including ones created later."""
    discovery_interval: PositiveDuration = 60.0
    """How often version ARNs and pipelines are listed for new builds."""
    not_found_grace: FiniteDuration = 120.0
    """A build that answers NotFound within this long of first being polled is
    retried (a just-started build can 404 for a moment); after it, it is parked."""
    concurrency: int = Field(default=16, ge=1, le=1024)
    max_tps: float = Field(default=10.0, ge=0.01, allow_inf_nan=False)
    """GetImage requests per second across all workers (the rate limiter's ceiling)."""
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)
    """Each interval is stretched or shrunk by up to this fraction, at random."""
    failed_recheck_interval: PositiveDuration = 600.0
    failed_recheck_window: FiniteDuration = 21600.0
    """A FAILED build is re-checked every interval for this long (RetryImage can
    revive it); 0 drops it at once."""
    intervals: Intervals = Field(default_factory=lambda: DEFAULT_INTERVALS)
    """Seconds between polls by status; `default` for any status not listed."""
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @field_validator("arns", "pipelines")
    @classmethod
    def _unique_arns(cls, arns: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        first: dict[str, int] = {}
        repeated = []
        for index, arn in enumerate(arns):
            if arn in first:
                repeated.append(
                    (
                        (index,),
                        f"{arn!r} is already listed at watch.{info.field_name}[{first[arn]}]; "
                        "list it once",
                        arn,
                    )
                )
            first.setdefault(arn, index)
        if repeated:
            raise _problems("WatchConfig", repeated)
        return arns

    @model_validator(mode="after")
    def _something_to_watch(self) -> Self:
        if not self.arns and not self.pipelines:
            raise _problems(
                "WatchConfig",
                [(("arns",), "list at least one image ARN, or a pipeline in watch.pipelines", [])],
            )
        return self

    @property
    def build_arns(self) -> tuple[str, ...]:
        """The build-version ARNs in `arns`: watched themselves."""
        return tuple(arn for arn in self.arns if Arn.parse(arn).is_build)

    @property
    def version_arns(self) -> tuple[str, ...]:
        """The version ARNs in `arns`: sources whose every build is followed."""
        return tuple(arn for arn in self.arns if not Arn.parse(arn).is_build)

    def interval_for(self, status: ImageStatus) -> float:
        """Seconds between polls of a build in `status` (before jitter); `default`
        for a status without its own interval, including ones AWS adds later."""
        return self.intervals.get(str(status), self.intervals["default"])


# -------------------------------------------------------------------------- [state]


class StateConfig(_Strict):
    """Where the watcher keeps what it has seen and what it still has to deliver."""

    path: Path = Field(default=Path("ibwatch-state.db"), validate_default=True)
    """The sqlite database; relative to the config file's directory, made absolute."""

    @field_validator("path", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a file path such as 'ibwatch-state.db', got ''")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path, info: ValidationInfo) -> Path:
        value = value.expanduser()
        if value.is_absolute():
            return value
        context = info.context if isinstance(info.context, Mapping) else {}
        base = context.get("base_dir")
        return Path(base if base is not None else Path.cwd()) / value


# ------------------------------------------------------------------------ [[sinks]]

_SINK_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


class _SinkBase(_Strict):
    """What every sink has: its `type` (the union's tag) and a unique `name`."""

    type: str
    name: str = ""
    """Defaults to `type`; names a sink in logs, metrics and the store's delivery rows."""
    statuses: tuple[str, ...] = ()
    """Only events whose new status is one of these; empty: every status."""
    arns: tuple[str, ...] = ()
    """Only events whose image ARN (or watched ARN) matches one of these glob patterns."""
    first_sighting: bool = True
    """Send the event of the first time a build is seen (it has no previous status)."""

    @field_validator("statuses")
    @classmethod
    def _known_statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for status in value:
            if status not in STATUSES:
                raise ValueError(
                    f"{status!r} is not an image status{_did_you_mean(status, list(STATUSES))}; "
                    f"expected some of {', '.join(STATUSES)}"
                )
        return value

    def matches(self, event: Transition) -> bool:
        """Whether this sink wants `event`."""
        if self.statuses and event.current.status.value not in self.statuses:
            return False
        if not self.first_sighting and event.previous is None:
            return False
        if self.arns:
            return any(
                fnmatch.fnmatchcase(arn, pattern)
                for pattern in self.arns
                for arn in (event.image.arn, event.watched)
            )
        return True

    def redacted(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_type(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "name" not in data:
            return {**data, "name": data.get("type", cls.model_fields["type"].default)}
        return data

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not re.fullmatch(_SINK_NAME, value):
            raise ValueError(
                f"expected 1-64 letters, digits, '-', '_' or '.', starting with a letter "
                f"or digit, got {value!r}"
            )
        return value


class LogSinkConfig(_SinkBase):
    """Writes each event as a structured log line."""

    type: Literal["log"] = "log"


def _read_secret(
    what: str, env_name: str | None, file: Path | None, info: ValidationInfo, *, required: bool
) -> SecretStr | None:
    """A secret from an environment variable or a file, never from the config itself.
    Error messages name the variable or file, never the value."""
    if env_name and file:
        raise ValueError(f"give {what}_env or {what}_file, not both")
    context = info.context or {}
    if env_name:
        env: Mapping[str, str] = context.get("env", {})
        value = env.get(env_name, "")
        if not value.strip():
            raise ValueError(f"{what}_env: environment variable {env_name} is not set or empty")
        return SecretStr(value.strip())
    if file:
        path = file if file.is_absolute() else Path(context.get("base_dir", Path.cwd())) / file
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{what}_file: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ValueError(f"{what}_file: {path} is empty")
        return SecretStr(value)
    if required:
        raise ValueError(
            f"needs {what}_env (an environment variable) or {what}_file (a file) holding the "
            f"{what}; it is a secret, so it is never written in the config itself"
        )
    return None


class _HttpSinkBase(_SinkBase):
    """A sink that POSTs to a URL; the URL is a secret (it carries the token)."""

    url_env: str | None = None
    url_file: Path | None = None
    timeout: PositiveDuration = 10.0
    rate_limit: float | None = Field(default=None, gt=0)
    """Most messages per second to this sink; unset: the platform's documented pace."""

    _url: SecretStr = PrivateAttr()

    @model_validator(mode="after")
    def _resolve_url(self, info: ValidationInfo) -> Any:
        url = _read_secret("url", self.url_env, self.url_file, info, required=True)
        assert url is not None
        scheme = url.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("http", "https") or "://" not in url.get_secret_value():
            raise ValueError(
                f"the url from {self._url_source()} must start with https:// or http://"
            )
        self._url = url
        return self

    def _url_source(self) -> str:
        return f"environment variable {self.url_env}" if self.url_env else f"file {self.url_file}"

    @property
    def url(self) -> str:
        return self._url.get_secret_value()

    def redacted(self) -> dict[str, Any]:
        from watcher.sinks.http import redact_url

        return {**self.model_dump(mode="json"), "url": redact_url(self.url)}


class WebhookSinkConfig(_HttpSinkBase):
    """POSTs the event JSON (Standard Webhooks envelope), signed when a secret is given."""

    type: Literal["webhook"] = "webhook"
    secret_env: str | None = None
    secret_file: Path | None = None
    headers: dict[str, str] = {}

    _secret: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve_secret(self, info: ValidationInfo) -> Any:
        from watcher.sinks.signing import parse_secret

        secret = _read_secret("secret", self.secret_env, self.secret_file, info, required=False)
        if secret is not None:
            parse_secret(secret.get_secret_value())  # its ValueError never echoes the value
        self._secret = secret
        return self

    @property
    def secret(self) -> bytes | None:
        from watcher.sinks.signing import parse_secret

        return parse_secret(self._secret.get_secret_value()) if self._secret else None

    def redacted(self) -> dict[str, Any]:
        return {**super().redacted(), "secret": "**********" if self._secret else None}


class _ChatSinkBase(_HttpSinkBase):
    template: str | None = None
    """Overrides the message text; `$name`, `$version`, `$status`, ... (string.Template)."""

    @field_validator("template")
    @classmethod
    def _valid_template(cls, value: str | None) -> str | None:
        from watcher.sinks.template import validate_template

        return None if value is None else validate_template(value)


class SlackSinkConfig(_ChatSinkBase):
    """A Slack incoming webhook."""

    type: Literal["slack"] = "slack"


class TeamsSinkConfig(_ChatSinkBase):
    """A Microsoft Teams Workflows webhook (Adaptive Card)."""

    type: Literal["teams"] = "teams"


class DiscordSinkConfig(_ChatSinkBase):
    """A Discord channel webhook."""

    type: Literal["discord"] = "discord"


class GChatSinkConfig(_ChatSinkBase):
    """A Google Chat space incoming webhook; one thread per build."""

    type: Literal["gchat"] = "gchat"


# A new sink type: a `_SinkBase` subclass with `type: Literal["x"] = "x"`, added here.
_AnySink = (
    LogSinkConfig
    | WebhookSinkConfig
    | SlackSinkConfig
    | TeamsSinkConfig
    | DiscordSinkConfig
    | GChatSinkConfig
)


def _sink_models() -> dict[str, type[_SinkBase]]:
    models = typing.get_args(_AnySink) or (_AnySink,)
    return {model.model_fields["type"].default: model for model in models}


_SINK_MODELS = _sink_models()


def _sink(value: Any, info: ValidationInfo) -> _AnySink:
    if isinstance(value, tuple(_SINK_MODELS.values())):
        return typing.cast(_AnySink, value)
    if not isinstance(value, Mapping):
        raise ValueError('expected a table such as { type = "log" }')
    kind = value.get("type")
    known = ", ".join(_SINK_MODELS)
    if kind is None:
        raise _problems("sink", [(("type",), f"required: one of {known}", value)])
    model = _SINK_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = _did_you_mean(kind, _SINK_MODELS) if isinstance(kind, str) else ""
        raise _problems(
            "sink",
            [(("type",), f"unknown sink type {kind!r}{hint}; expected one of {known}", kind)],
        )
    # The context carries the environment and base directory secrets are read from.
    return typing.cast(_AnySink, model.model_validate(value, context=info.context))


SinkConfig = Annotated[_AnySink, BeforeValidator(_sink)]
"""One `[[sinks]]` entry, chosen by its `type`."""


class DeliveryConfig(_Strict):
    """How the outbox retries a sink that did not acknowledge an event."""

    backoff_base: PositiveDuration = 1.0
    backoff_cap: PositiveDuration = 300.0
    retry_after_cap: PositiveDuration = 3600.0
    max_age: PositiveDuration = 86400.0


class ServerConfig(_Strict):
    """The HTTP endpoint for probes and Prometheus."""

    listen: str = "127.0.0.1:9108"
    """host:port for /healthz, /readyz and /metrics; "0.0.0.0:9108" in a container."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port such as 127.0.0.1:9108, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class ShutdownConfig(_Strict):
    grace: PositiveDuration = 20.0
    """On SIGTERM/SIGINT polling stops at once; pending deliveries get this long."""


# ------------------------------------------------------------------------ the whole


class Config(_Strict):
    """The validated configuration: `load()` builds it; nothing changes it afterwards."""

    aws: AwsConfig = Field(default_factory=AwsConfig)
    watch: WatchConfig
    state: StateConfig = Field(default_factory=StateConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    sinks: tuple[SinkConfig, ...] = (LogSinkConfig(),)

    @model_validator(mode="before")
    @classmethod
    def _sections_exist(cls, data: Any) -> Any:
        # An absent section is validated as an empty one, so that a missing required
        # key is named (`watch.arns`) and relative paths meet the validation context.
        if isinstance(data, Mapping):
            return {"aws": {}, "watch": {}, "state": {}, **data}
        return data

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, sinks: tuple[_AnySink, ...]) -> tuple[_AnySink, ...]:
        first: dict[str, int] = {}
        repeated = []
        for index, sink in enumerate(sinks):
            if sink.name in first:
                repeated.append(
                    (
                        (index, "name"),
                        f"{sink.name!r} is already the name of sinks[{first[sink.name]}]; "
                        "give each sink its own name",
                        sink.name,
                    )
                )
            first.setdefault(sink.name, index)
        if repeated:
            raise _problems("Config", repeated)
        return sinks

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain JSON data, safe to log or print: URLs
        show their host at most, signing secrets are masked."""
        data = self.model_dump(mode="json")
        data["sinks"] = [sink.redacted() for sink in self.sinks]
        return data


# ------------------------------------------------------------------- environment


def _env_overrides() -> Mapping[str, tuple[str, str]]:
    """`IBWATCH_SECTION_KEY` -> (section, key) for every scalar key of the sections
    that can be overridden; tables ([watch.intervals], [watch.retry]) cannot."""
    found = {}
    sections: tuple[tuple[str, type[BaseModel]], ...] = (
        ("aws", AwsConfig),
        ("watch", WatchConfig),
        ("state", StateConfig),
    )
    for section, model in sections:
        for key, field in model.model_fields.items():
            annotation = field.annotation
            origin = typing.get_origin(annotation)
            if origin is Mapping or origin is dict:
                continue
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                continue
            found[f"{ENV_PREFIX}{section.upper()}_{key.upper()}"] = (section, key)
    return MappingProxyType(found)


ENV_OVERRIDES: Mapping[str, tuple[str, str]] = _env_overrides()
"""Each environment variable that overrides a key, and the (section, key) it sets.
A list key (`watch.arns`) takes a comma-separated value."""

_ENV_SECTIONS = tuple(f"{ENV_PREFIX}{name}_" for name in ("AWS", "WATCH", "STATE"))
_LIST_KEYS = frozenset({("watch", "arns"), ("watch", "pipelines")})
_NO_ENV: Mapping[str, str] = MappingProxyType({})


def _apply_env(document: Any, env: Mapping[str, str]) -> tuple[Any, dict[str, str], list[str]]:
    """The document with overrides applied, each overridden field path's variable,
    and the variables that look like overrides but are none."""
    origins: dict[str, str] = {}
    problems: list[str] = []
    if not isinstance(document, Mapping):
        return document, origins, problems  # validation reports the document itself
    document = dict(document)
    for variable in sorted(env):
        value = env[variable]
        target = ENV_OVERRIDES.get(variable)
        if target is None:
            if variable.startswith(_ENV_SECTIONS):
                problems.append(
                    f"{variable} (environment): not a setting"
                    f"{_did_you_mean(variable, ENV_OVERRIDES, cutoff=0.85)}; only scalar keys "
                    "of [aws], [watch] and [state] can come from the environment: "
                    f"{', '.join(ENV_OVERRIDES)}"
                )
            continue
        section, key = target
        table = document.get(section, {})
        if not isinstance(table, Mapping):
            continue  # validation reports the section itself
        parsed: Any = value
        if (section, key) in _LIST_KEYS:
            parsed = [item.strip() for item in value.split(",") if item.strip()]
        elif (section, key) == ("state", "path") and value.strip():
            # A path typed on a command line means the working directory, not the file's.
            parsed = str(Path.cwd() / Path(value).expanduser())
        document[section] = {**table, key: parsed}
        origins[f"{section}.{key}"] = variable
    return document, origins, problems


def _name_origins(problems: list[str], origins: Mapping[str, str]) -> list[str]:
    named = []
    for line in problems:
        for path, variable in origins.items():
            if line.startswith(path) and line[len(path) : len(path) + 1] in (":", "[", "."):
                rest = line[len(path) :]
                subscript, _, message = rest.partition(":")
                line = f"{path}{subscript} (from {variable}):{message}"
                break
        named.append(line)
    return named


# ------------------------------------------------------------------------ loading


def load(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from `env` (None: `os.environ`) and validate a config file.
    Relative paths in the file are relative to its directory. Raises ConfigError."""
    path = Path(path)
    try:
        document = read_toml(path)
    except FileError as exc:
        raise ConfigError(exc.path, exc.problems) from None
    return _build(
        document, path, os.environ if env is None else env, base_dir=path.absolute().parent
    )


def from_mapping(
    data: Mapping[str, Any],
    source: Path | str = "<string>",
    *,
    env: Mapping[str, str] = _NO_ENV,
    base_dir: Path | None = None,
) -> Config:
    """Validate an already-parsed document; `source` names it in errors. Unlike
    `load`, no environment is read unless `env` is given, and relative paths are
    relative to `base_dir` (default: the working directory)."""
    return _build(data, source, env, base_dir=(base_dir or Path.cwd()).absolute())


def _build(
    document: Mapping[str, Any], source: Path | str, env: Mapping[str, str], *, base_dir: Path
) -> Config:
    overridden, origins, problems = _apply_env(document, env)
    try:
        config = Config.model_validate(overridden, context={"base_dir": base_dir, "env": env})
    except ValidationError as exc:
        problems += _name_origins(describe(exc), origins)
    else:
        if not problems:
            return config
    raise ConfigError(source, problems)
