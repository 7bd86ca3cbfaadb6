"""botocore's service model for Image Builder, and a strict walker that checks a
value against one of its shapes.

The simulator only answers what the real service could answer: every response it
builds, and every failure context a scenario declares, is checked against the
shapes botocore ships. Read-only; never talks to AWS.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

SERVICE = "imagebuilder"


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE)


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def output_shape(operation_name: str) -> Shape:
    shape = operation(operation_name).output_shape
    assert shape is not None
    return shape


def shape(name: str) -> Shape:
    return service_model().shape_for(name)


@functools.cache
def error_status(code: str) -> int:
    """The HTTP status the model gives an error code, e.g. 429 for throttling."""
    for error in service_model().error_shapes:
        if error.error_code == code:
            status: int = error.metadata["error"]["httpStatusCode"]
            return status
    raise KeyError(code)


@functools.cache
def error_codes() -> frozenset[str]:
    return frozenset(e.error_code for e in service_model().error_shapes)


@functools.cache
def pattern(text: str) -> re.Pattern[str]:
    """A pattern of the model, compiled once."""
    return re.compile(text)


def violations(value: Any, shape: Shape, path: str = "", *, known_enums: bool = True) -> list[str]:
    """Every way `value` (parsed JSON) departs from `shape`, as `path: problem`.

    Strict: a key the shape lacks is a violation, and so is a value of another
    type, a string outside the shape's enum, pattern or length bounds, or a number
    outside its range. `known_enums=False` lets enum values the model does not list
    pass, for the statuses AWS may add later.
    """
    where = path or "(top level)"
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return [f"{where}: expected an object for {shape.name}, got {type(value).__name__}"]
        problems = []
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                problems.append(f"{_join(path, key)}: not a member of {shape.name}")
            else:
                problems += violations(item, member, _join(path, key), known_enums=known_enums)
        for key in shape.required_members:
            if key not in value:
                problems.append(f"{_join(path, key)}: required by {shape.name}, missing")
        return problems
    if kind == "list":
        if not isinstance(value, Sequence) or isinstance(value, str):
            return [f"{where}: expected a list for {shape.name}, got {type(value).__name__}"]
        problems = _bounds(len(value), shape, where, "items")
        for index, item in enumerate(value):
            problems += violations(item, shape.member, f"{path}[{index}]", known_enums=known_enums)
        return problems
    if kind == "map":
        if not isinstance(value, Mapping):
            return [f"{where}: expected an object for {shape.name}, got {type(value).__name__}"]
        problems = _bounds(len(value), shape, where, "entries")
        for key, item in value.items():
            problems += violations(key, shape.key, f"{where} key {key!r}", known_enums=known_enums)
            problems += violations(item, shape.value, _join(path, key), known_enums=known_enums)
        return problems
    if kind == "string":
        return _string(value, shape, where, known_enums=known_enums)
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: expected an integer for {shape.name}, got {value!r}"]
        return _bounds(value, shape, where, "value")
    if kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{where}: expected a number for {shape.name}, got {value!r}"]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean, got {value!r}"]
    if kind == "timestamp":
        # rest-json sends timestamps as epoch seconds unless the shape says otherwise.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return []
        return [f"{where}: expected epoch seconds for {shape.name}, got {value!r}"]
    return [f"{where}: shape type {kind!r} is not checked by this walker"]


def _string(value: Any, shape: Shape, where: str, *, known_enums: bool) -> list[str]:
    if not isinstance(value, str):
        return [f"{where}: expected a string for {shape.name}, got {value!r}"]
    enum = shape.enum
    if enum and known_enums and value not in enum:
        return [f"{where}: {value!r} is not one of {shape.name}: {', '.join(enum)}"]
    regex = shape.metadata.get("pattern")
    if regex and not pattern(regex).search(value):
        return [f"{where}: {value!r} does not match the pattern of {shape.name}"]
    return _bounds(len(value), shape, where, "characters")


def _bounds(size: int, shape: Shape, where: str, unit: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        return [f"{where}: {size} {unit}, {shape.name} needs at least {low}"]
    if high is not None and size > high:
        return [f"{where}: {size} {unit}, {shape.name} allows at most {high}"]
    return []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
