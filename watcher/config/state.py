"""`[state]`: where the watcher keeps what it has seen and what it still has to deliver:
an SQLite file (`path`, the default), or a PostgreSQL database that several replicas
share (`url`, `url_env` or `url_file`).

A database URL's password is a secret: it comes from the environment or a file, like
a sink's URL, and is masked wherever the config is shown (`repr` included).

An `IBWATCH_STATE_URL`, `_URL_ENV` or `_URL_FILE` variable replaces the file's choice
of where the URL comes from (its url, url_env or url_file, whichever it has): the
environment's says where the database is, as any override does. A file path on one
side and a URL on the other stay a conflict, named with its variable: which kind of
store to use is not guessed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from watcher.config._base import ENV_PREFIX, PositiveDuration, Strict, problems_error
from watcher.config.sinks import _read_secret
from watcher.store import database_url

MIN_KEEP_EVENTS = 86400.0
"""The shortest `keep_events`, a day: discovery takes a build that ended and was
created longer ago than `keep_events` as history, so a shorter one would silence
builds that merely ran long and ended while the daemon was down."""

_URL_KEYS = ("url", "url_env", "url_file")
_VARIABLES = {key: f"{ENV_PREFIX}STATE_{key.upper()}" for key in _URL_KEYS}
"""The environment variable that overrides each URL key (watcher.config.environment)."""


class StateConfig(Strict):
    """Where the watcher keeps what it has seen and what it still has to deliver."""

    path: Path = Field(default=Path("ibwatch-state.db"), validate_default=True)
    """The sqlite database; relative to the config file's directory, made absolute.
    Unused (and not to be given) when a database URL is."""
    url: str | None = Field(default=None, repr=False)
    """A PostgreSQL database (`postgresql://user@host:5432/db`) several replicas share,
    in place of the file. Without a password: one comes from url_env/url_file, or
    libpq's own PGPASSWORD / ~/.pgpass (IBWATCH_STATE_URL may carry one)."""
    url_env: str | None = None
    """An environment variable holding the database URL, password included."""
    url_file: Path | None = None
    """A file holding the database URL, password included; relative to the config file."""
    keep_events: PositiveDuration = 30 * 86400.0
    """How long events and ended builds are remembered; older ones are pruned from
    the state file (an undelivered event, a dead letter's included, is kept whatever
    its age). At least a day and at least `watch.failed_recheck_window`."""

    _database_url: SecretStr | None = PrivateAttr(default=None)

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL URL to connect to, password included; None: the SQLite file."""
        return self._database_url.get_secret_value() if self._database_url else None

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

    @model_validator(mode="before")
    @classmethod
    def _environment_wins(cls, data: Any, info: ValidationInfo) -> Any:
        # The overrides are already in `data` (watcher.config.environment): drop the
        # file's other URL keys, which they replace.
        overridden = _overridden(info)
        if not overridden or not isinstance(data, Mapping):
            return data
        return {
            key: value for key, value in data.items() if key not in _URL_KEYS or key in overridden
        }

    @model_validator(mode="after")
    def _one_database(self, info: ValidationInfo) -> StateConfig:
        given = [key for key in _URL_KEYS if getattr(self, key) is not None]
        if not given:
            return self
        overridden = _overridden(info)

        def named(key: str) -> str:
            return f"{key} ({_VARIABLES[key]})" if key in overridden else key

        problems: list[tuple[tuple[str | int, ...], str, Any]] = []
        if "path" in self.model_fields_set:
            problems.append(
                (
                    ("path",),
                    f"give path (an SQLite file) or {named(given[0])} (a PostgreSQL database), "
                    "not both",
                    str(self.path),
                )
            )
        if len(given) > 1:
            problems.append(
                (
                    (given[1],),
                    "give one of url, url_env or url_file, not "
                    f"{' and '.join(named(key) for key in given)}",
                    None,
                )
            )
        else:
            found = self._read_url(given[0], info)
            if isinstance(found, str):
                problems.append(((given[0],), found, None))
            else:
                self._database_url = found
        if problems:
            raise problems_error(type(self).__name__, problems)
        return self

    def _read_url(self, key: str, info: ValidationInfo) -> SecretStr | str:
        """The URL `key` gives, or why it cannot be used (never quoting the URL)."""
        if key == "url":
            assert self.url is not None
            url = self.url.strip()
            from_env = "url" in _overridden(info)
            problem = database_url.url_problem(url)
            if problem is None and database_url.has_password(url) and not from_env:
                problem = (
                    "carries a password, a secret that is never written in the config "
                    "itself: give the URL in url_env (an environment variable) or url_file "
                    "(a file), or leave the password to libpq (PGPASSWORD, ~/.pgpass)"
                )
            return problem if problem else SecretStr(url)
        try:
            secret = _read_secret("url", self.url_env, self.url_file, info, required=True)
        except ValueError as exc:
            return str(exc).removeprefix(f"{key}: ")
        assert secret is not None
        source = f"environment variable {self.url_env}" if self.url_env else f"file {self.url_file}"
        problem = database_url.url_problem(secret.get_secret_value())
        return f"the URL in {source} {problem}" if problem else secret

    @model_serializer(mode="wrap")
    def _shown(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # What `Config.redacted()` and check-config show: the database's URL with its
        # password masked, and no file path that is not used.
        data: dict[str, Any] = handler(self)
        if self.database_url is not None:
            data.pop("path", None)
            data["url"] = database_url.redact(self.database_url)
        return data


def _overridden(info: ValidationInfo) -> list[str]:
    """The URL keys an environment variable sets, in the validation context's env."""
    context = info.context if isinstance(info.context, Mapping) else {}
    env = context.get("env", {})
    return [key for key in _URL_KEYS if _VARIABLES[key] in env]
