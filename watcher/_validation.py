"""Turn pydantic validation errors into messages a person can act on: the file,
the field path as written in TOML (`images[0].timeline[2].status`) and what was
expected. Never a traceback, never the whole document.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError


class FileError(Exception):
    """A configuration or scenario file that cannot be used; `str()` is the full message."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{self.path}: {len(problems)} problem(s):\n{lines}")


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("images", 0, "timeline", 2, "status")` -> `images[0].timeline[2].status`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    by_upper = {choice.upper(): choice for choice in choices}
    hint = difflib.get_close_matches(word.upper(), list(by_upper), n=1, cutoff=cutoff)
    return f" (did you mean {by_upper[hint[0]]!r}?)" if hint else ""


def describe(error: ValidationError) -> list[str]:
    """One line per problem: `path: message`."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not _is_union_tag(p))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and the documented keys)"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        elif item["type"] == "missing":
            message = "required, but missing"
        problems.append(f"{field_path(loc)}: {message}")
    return problems


def _is_union_tag(part: int | str) -> bool:
    # pydantic adds the tried type's name for unions and function validators;
    # it means nothing to the person who wrote the file.
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def read_toml(path: Path | str) -> dict[str, Any]:
    """The parsed TOML document, or FileError naming the file and the syntax error."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise FileError(path, ["file not found"]) from None
    except IsADirectoryError:
        raise FileError(path, ["is a directory, expected a TOML file"]) from None
    except PermissionError:
        raise FileError(path, ["permission denied"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise FileError(path, [f"not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise FileError(path, [f"not UTF-8 text: {exc.reason}"]) from None
