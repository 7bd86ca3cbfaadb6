"""`[[sinks]]`: where transitions go. Each entry is validated by the model of its
`type`; secrets (URLs, signing keys) come from the environment or a file, never
from the config itself.

A new sink type: a `SinkBase` subclass here with `type: Literal["x"] = "x"`, added
to `AnySink`, and its builder in `watcher/wiring.py` (a test checks that every type
has one)."""

from __future__ import annotations

import fnmatch
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher._validation import did_you_mean
from watcher.config._base import STATUSES, PositiveDuration, Strict, problems_error
from watcher.model import Transition
from watcher.signing import parse_secret
from watcher.templates import validate_template
from watcher.urls import redact_url

_SINK_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


class SinkBase(Strict):
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
                    f"{status!r} is not an image status{did_you_mean(status, list(STATUSES))}; "
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


class LogSinkConfig(SinkBase):
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


class HttpSinkBase(SinkBase):
    """A sink that POSTs to a URL; the URL is a secret (it carries the token)."""

    url_env: str | None = None
    url_file: Path | None = None
    timeout: PositiveDuration = 10.0
    rate_limit: float | None = Field(default=None, gt=0)
    """Most messages per second to this sink; unset: the platform's documented pace."""

    _url: SecretStr = PrivateAttr()

    @model_validator(mode="after")
    def _resolve_secrets(self, info: ValidationInfo) -> Any:
        # One validator for every secret of the sink, so that a missing URL variable
        # and a malformed signing secret are both reported by the same run.
        problems = [((), message, None) for message in self._read_secrets(info)]
        if problems:
            raise problems_error(type(self).__name__, problems)
        return self

    def _read_secrets(self, info: ValidationInfo) -> list[str]:
        """Read this sink's secrets into its private fields; one message per problem."""
        try:
            url = _read_secret("url", self.url_env, self.url_file, info, required=True)
        except ValueError as exc:
            return [str(exc)]
        assert url is not None
        scheme = url.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("http", "https") or "://" not in url.get_secret_value():
            return [f"the url from {self._url_source()} must start with https:// or http://"]
        self._url = url
        return []

    def _url_source(self) -> str:
        return f"environment variable {self.url_env}" if self.url_env else f"file {self.url_file}"

    @property
    def url(self) -> str:
        return self._url.get_secret_value()

    def redacted(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "url": redact_url(self.url)}


class WebhookSinkConfig(HttpSinkBase):
    """POSTs the event JSON (Standard Webhooks envelope), signed when a secret is given."""

    type: Literal["webhook"] = "webhook"
    secret_env: str | None = None
    secret_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    _secret: SecretStr | None = PrivateAttr(default=None)

    def _read_secrets(self, info: ValidationInfo) -> list[str]:
        problems = super()._read_secrets(info)
        try:
            secret = _read_secret("secret", self.secret_env, self.secret_file, info, required=False)
            if secret is not None:
                parse_secret(secret.get_secret_value())  # its ValueError never echoes the value
        except ValueError as exc:
            return [*problems, str(exc)]
        self._secret = secret
        return problems

    @property
    def secret(self) -> bytes | None:
        return parse_secret(self._secret.get_secret_value()) if self._secret else None

    def redacted(self) -> dict[str, Any]:
        return {**super().redacted(), "secret": "**********" if self._secret else None}


class ChatSinkBase(HttpSinkBase):
    template: str | None = None
    """Overrides the message text; `$name`, `$version`, `$status`, ... (string.Template)."""

    @field_validator("template")
    @classmethod
    def _valid_template(cls, value: str | None) -> str | None:
        return None if value is None else validate_template(value)


class SlackSinkConfig(ChatSinkBase):
    """A Slack incoming webhook."""

    type: Literal["slack"] = "slack"


class TeamsSinkConfig(ChatSinkBase):
    """A Microsoft Teams Workflows webhook (Adaptive Card)."""

    type: Literal["teams"] = "teams"


class DiscordSinkConfig(ChatSinkBase):
    """A Discord channel webhook."""

    type: Literal["discord"] = "discord"


class GChatSinkConfig(ChatSinkBase):
    """A Google Chat space incoming webhook; one thread per build."""

    type: Literal["gchat"] = "gchat"


# A new sink type: a `SinkBase` subclass with `type: Literal["x"] = "x"`, added here.
AnySink = (
    LogSinkConfig
    | WebhookSinkConfig
    | SlackSinkConfig
    | TeamsSinkConfig
    | DiscordSinkConfig
    | GChatSinkConfig
)


def _sink_models() -> dict[str, type[SinkBase]]:
    models = typing.get_args(AnySink) or (AnySink,)
    return {model.model_fields["type"].default: model for model in models}


_SINK_MODELS = _sink_models()


def _sink(value: Any, info: ValidationInfo) -> AnySink:
    if isinstance(value, tuple(_SINK_MODELS.values())):
        return typing.cast(AnySink, value)
    if not isinstance(value, Mapping):
        raise ValueError('expected a table such as { type = "log" }')
    kind = value.get("type")
    known = ", ".join(_SINK_MODELS)
    if kind is None:
        raise problems_error("sink", [(("type",), f"required: one of {known}", value)])
    model = _SINK_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        hint = did_you_mean(kind, _SINK_MODELS) if isinstance(kind, str) else ""
        raise problems_error(
            "sink",
            [(("type",), f"unknown sink type {kind!r}{hint}; expected one of {known}", kind)],
        )
    # The context carries the environment and base directory secrets are read from.
    return typing.cast(AnySink, model.model_validate(value, context=info.context))


SinkConfig = Annotated[AnySink, BeforeValidator(_sink)]
"""One `[[sinks]]` entry, chosen by its `type`."""
