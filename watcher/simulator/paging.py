"""Paging and filtering for every List operation.

A page is the next `maxResults` items (the model's RestrictedInteger: 1 to 25;
25 when not given) after the last item the previous page served, by a sort key
carried in `nextToken`; items added meanwhile at the front (newer builds) are not
served twice or shift anything. The model's `nextToken` doc: "When this field isn't
empty, there are additional elements that the service hasn't included in this
request" — so a token is only sent when items are left, but nothing promises a
page is full: with the scenario's `faults.short_pages` chance a page holds fewer
items than asked for (possibly none) and still carries a token. That choice is
drawn from the scenario seed, the request and the page's index, so it is the
same on every run; a short page is always followed by a full one, so a client
makes progress even when every page could be short.

Decides pages only; knows nothing of what the items are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from watcher.simulator.wire import ApiError

T = TypeVar("T")
Key = tuple[Any, ...]
DEFAULT_PAGE_SIZE = 25
_INVALID_TOKEN = "InvalidPaginationTokenException"
_INVALID_MESSAGE = "The nextToken is not valid for this request."


@dataclass(frozen=True)
class _Cursor:
    after: Key | None
    page: int
    short: bool


class Pager:
    """Cuts sorted lists into pages for one scenario's seed and short-page chance."""

    def __init__(self, seed: int, short_pages: float) -> None:
        self._seed = seed
        self._short_pages = short_pages

    def page(
        self,
        operation: str,
        params: Mapping[str, Any],
        items: Sequence[tuple[Key, T]],
    ) -> tuple[list[T], str | None]:
        """The page `params` asks for of `items` (sorted by key, highest first), and
        the token for the next page, if any items are left."""
        limit: int = params.get("maxResults") or DEFAULT_PAGE_SIZE
        identity = _identity(operation, params)
        cursor = _read_token(params.get("nextToken"), identity)
        try:
            rest = [(k, item) for k, item in items if cursor.after is None or k < cursor.after]
        except TypeError:  # a token whose key does not compare with ours: not one we wrote
            raise ApiError(_INVALID_TOKEN, _INVALID_MESSAGE) from None
        draw = random.Random(f"{self._seed}:{identity}:{cursor.page}")
        short = bool(rest) and not cursor.short and draw.random() < self._short_pages
        size = draw.randrange(min(limit, len(rest))) if short else limit
        served = rest[:size]
        if len(rest) <= size:
            return [item for _, item in served], None
        after = served[-1][0] if served else cursor.after
        token = _write_token(identity, _Cursor(after, cursor.page + 1, short))
        return [item for _, item in served], token


def select(
    operation: str,
    filters: Sequence[Mapping[str, Any]] | None,
    fields: Mapping[str, Callable[[T], str | None]],
    items: Sequence[T],
) -> list[T]:
    """The items every filter matches (a filter matches when the field is one of its
    values; our reading, the model only names the filters). A filter name outside
    `fields` is refused, naming the ones supported."""
    chosen = list(items)
    for entry in filters or ():
        name = entry.get("name")
        field = fields.get(str(name))
        if field is None:
            raise ApiError(
                "InvalidRequestException",
                f"The filter {name!r} is not supported by {operation}; supported filters: "
                f"{', '.join(fields)}.",
            )
        values = set(entry.get("values") or ())
        chosen = [item for item in chosen if field(item) in values]
    return chosen


def _identity(operation: str, params: Mapping[str, Any]) -> str:
    """What a token is bound to: the operation and every parameter but the paging
    ones, so a token cannot be replayed against another query."""
    query = {k: v for k, v in params.items() if k not in ("nextToken", "maxResults")}
    text = json.dumps([operation, query], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _write_token(identity: str, cursor: _Cursor) -> str:
    data = {"q": identity, "after": cursor.after, "page": cursor.page, "short": cursor.short}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _read_token(token: object, identity: str) -> _Cursor:
    if token is None:
        return _Cursor(None, 0, False)
    refused = ApiError(_INVALID_TOKEN, _INVALID_MESSAGE)
    if not isinstance(token, str):
        raise refused
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise refused from None
    if (
        not isinstance(data, dict)
        or data.get("q") != identity
        or not isinstance(data.get("page"), int)
        or not isinstance(data.get("short"), bool)
        or not isinstance(data.get("after"), list | None)
    ):
        raise refused
    after = data["after"]
    return _Cursor(None if after is None else tuple(after), data["page"], data["short"])
