"""Reading, overriding from the environment, and validating a config file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from watcher._validation import FileError, describe, read_toml
from watcher.config._base import ConfigError
from watcher.config.document import Config
from watcher.config.environment import NO_ENV, apply_env, name_origins


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
    env: Mapping[str, str] = NO_ENV,
    base_dir: Path | None = None,
) -> Config:
    """Validate an already-parsed document; `source` names it in errors. Unlike
    `load`, no environment is read unless `env` is given, and relative paths are
    relative to `base_dir` (default: the working directory)."""
    return _build(data, source, env, base_dir=(base_dir or Path.cwd()).absolute())


def _build(
    document: Mapping[str, Any], source: Path | str, env: Mapping[str, str], *, base_dir: Path
) -> Config:
    overridden, origins, problems = apply_env(document, env)
    try:
        config = Config.model_validate(overridden, context={"base_dir": base_dir, "env": env})
    except ValidationError as exc:
        problems += name_origins(describe(exc), origins)
    else:
        if not problems:
            return config
    raise ConfigError(source, problems)
