"""A request's input parameters, read where the model says they travel (query
string for GET operations, a JSON body for the others) and checked against the
operation's input shape: required members, patterns, lengths, enums, ranges.

A violation becomes InvalidRequestException with a message in the style AWS
services use ("1 validation error detected: Value 'x' at 'y' failed to satisfy
constraint: ..."). Members the shape does not know are ignored (our reading: rest
services ignore them). Reads requests only; never answers one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from botocore.model import Shape

from watcher.simulator import model
from watcher.simulator.wire import ApiError


async def read_input(request: web.Request, operation: str) -> dict[str, Any]:
    """The operation's parameters from the request, validated; ApiError if they are not."""
    shape = model.operation(operation).input_shape
    assert shape is not None
    params: dict[str, Any] = {}
    in_body: list[str] = []
    for name, member in shape.members.items():
        if member.serialization.get("location") == "querystring":
            wire_name = member.serialization.get("name", name)
            if wire_name in request.query:
                params[name] = _from_query(request.query[wire_name], member)
        else:
            in_body.append(name)
    if in_body:
        body = _json_object(await request.read())
        params |= {name: body[name] for name in in_body if name in body}
    problems = violations(params, shape)
    if problems:
        count = len(problems)
        raise ApiError(
            "InvalidRequestException",
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems),
        )
    return params


def violations(value: Mapping[str, Any], shape: Shape) -> list[str]:
    """Every constraint of `shape` that the parameters `value` break."""
    return _structure(value, shape, "")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError("ClientException", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("ClientException", "The request body must be a JSON object.")
    return body


def _from_query(text: str, shape: Shape) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text  # reported as not an integer
    return text


def _structure(value: Mapping[str, Any], shape: Shape, path: str) -> list[str]:
    problems = []
    for name in shape.required_members:
        if value.get(name) is None:
            problems.append(_fails(None, _join(path, name), "Member must not be null"))
    for name, member in shape.members.items():
        item = value.get(name)
        if item is not None:
            problems += _check(item, member, _join(path, name))
    return problems


def _check(value: Any, shape: Shape, path: str) -> list[str]:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return [_fails(value, path, "Member must be an object")]
        return _structure(value, shape, path)
    if kind == "list":
        if not isinstance(value, list):
            return [_fails(value, path, "Member must be a list")]
        problems = _bounds(len(value), value, shape, path, "length")
        for index, item in enumerate(value, start=1):
            problems += _check(item, shape.member, f"{path}.{index}.member")
        return problems
    if kind == "map":
        if not isinstance(value, Mapping):
            return [_fails(value, path, "Member must be a map")]
        problems = _bounds(len(value), value, shape, path, "length")
        for key, item in value.items():
            problems += _check(key, shape.key, f"{path}.{key}.key")
            problems += _check(item, shape.value, f"{path}.{key}.value")
        return problems
    if kind == "string":
        return _string(value, shape, path)
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [_fails(value, path, "Member must be an integer")]
        return _bounds(value, value, shape, path, "value")
    if kind == "boolean" and not isinstance(value, bool):
        return [_fails(value, path, "Member must be a boolean")]
    return []


def _string(value: Any, shape: Shape, path: str) -> list[str]:
    if not isinstance(value, str):
        return [_fails(value, path, "Member must be a string")]
    if shape.enum and value not in shape.enum:
        return [
            _fails(value, path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        ]
    pattern = shape.metadata.get("pattern")
    if pattern and not model.pattern(pattern).search(value):
        return [_fails(value, path, f"Member must satisfy regular expression pattern: {pattern}")]
    return _bounds(len(value), value, shape, path, "length")


def _bounds(size: int, value: Any, shape: Shape, path: str, what: str) -> list[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        return [_fails(value, path, f"Member must have {what} greater than or equal to {low}")]
    if high is not None and size > high:
        return [_fails(value, path, f"Member must have {what} less than or equal to {high}")]
    return []


def _fails(value: Any, path: str, constraint: str) -> str:
    shown = "null" if value is None else f"'{value}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
