"""`IBWATCH_SECTION_KEY` environment variables: each overrides one scalar key of
`[aws]`, `[watch]`, `[state]`, `[diagnostics]`, `[events]` or `[ha]`, and errors name the
variable it came from."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from watcher._validation import did_you_mean
from watcher.config._base import ENV_PREFIX
from watcher.config.aws import AwsConfig
from watcher.config.diagnostics import DiagnosticsConfig
from watcher.config.events import EventsConfig
from watcher.config.ha import HaConfig
from watcher.config.state import StateConfig
from watcher.config.watch import WatchConfig

_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("aws", AwsConfig),
    ("watch", WatchConfig),
    ("state", StateConfig),
    ("diagnostics", DiagnosticsConfig),
    ("events", EventsConfig),
    ("ha", HaConfig),
)
"""The sections whose scalar keys environment variables override: the one list that
the variables, their prefixes and the error text are all made from."""


def _env_overrides() -> Mapping[str, tuple[str, str]]:
    """`IBWATCH_SECTION_KEY` -> (section, key) for every scalar key of the sections
    that can be overridden; tables ([watch.intervals], [watch.retry]) cannot."""
    found = {}
    for section, model in _SECTIONS:
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

_ENV_SECTIONS = tuple(f"{ENV_PREFIX}{section.upper()}_" for section, _ in _SECTIONS)
_SECTION_NAMES = ", ".join(f"[{section}]" for section, _ in _SECTIONS[:-1])
_SECTION_NAMES += f" and [{_SECTIONS[-1][0]}]"
_LIST_KEYS = frozenset({("watch", "arns"), ("watch", "pipelines")})
NO_ENV: Mapping[str, str] = MappingProxyType({})


def apply_env(document: Any, env: Mapping[str, str]) -> tuple[Any, dict[str, str], list[str]]:
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
                    f"{did_you_mean(variable, ENV_OVERRIDES, cutoff=0.85)}; only scalar keys "
                    f"of {_SECTION_NAMES} can come from the environment: "
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


def name_origins(problems: list[str], origins: Mapping[str, str]) -> list[str]:
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
