"""What every part of the configuration shares: strict tables whose mistakes read as
suggestions, durations, the list of image statuses, and the error `load()` raises."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from watcher._validation import FileError, did_you_mean
from watcher.durations import Duration
from watcher.model import ImageStatus

ENV_PREFIX = "IBWATCH_"

STATUSES: tuple[str, ...] = tuple(status.value for status in ImageStatus)


class ConfigError(FileError):
    """A configuration that cannot be used; `str()` names the file, each field and the fix."""


def problems_error(
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


class Strict(BaseModel):
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
                        f"unknown key{did_you_mean(key, fields)}; "
                        f"expected one of {', '.join(fields)}",
                    )
                elif _about_own_shape(error):
                    kind, message = (
                        "table_type",
                        f"expected a table with keys {', '.join(fields)}; "
                        f"got {toml_type(error['input'])}",
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


def toml_type(value: object) -> str:
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
