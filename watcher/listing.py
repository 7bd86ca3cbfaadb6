"""Finding builds by listing: every page of a List operation, the builds of a
version ARN (wildcards included), and which of them is the newest.

GetImage cannot do this: on a version ARN it returns the newest *AVAILABLE* build
only (botocore's model, GetImage `imageBuildVersionArn`), never one in progress
or failed. So a version is listed (`ListImageBuildVersions`) and its newest build
is then watched by its own build ARN.

The model documents no order for List results and allows short pages that still
carry `nextToken`: nothing here trusts the order, and paging stops only when the
token is gone. Never calls AWS itself: the caller's edge and retrying `call` do.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from watcher.aws import Page
from watcher.errors import Unavailable
from watcher.model import Arn, ImageSnapshot

T = TypeVar("T")

Call = Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]
"""Runs one API call the way polls run (shared rate limiter, retries)."""

MAX_PAGES = 10_000
"""A token that never runs out is a fault, not a list: stop and say so."""


class BuildLister(Protocol):
    async def list_build_versions(
        self,
        region: str,
        *,
        version_arn: str | None = None,
        name: str | None = None,
        next_token: str | None = None,
        account: str | None = None,
    ) -> Page[ImageSnapshot]: ...


async def all_pages(
    call: Callable[[Callable[[], Awaitable[Page[T]]]], Awaitable[Page[T]]],
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    what: str,
) -> list[T]:
    """Every item of a paged List operation; each page is one retried call."""
    items: list[T] = []
    token: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = await call(functools.partial(fetch, token))
        items += page.items
        token = page.next_token
        if token is None:
            return items
        if token in seen:
            raise Unavailable(f"{what}: the API sent the same nextToken twice", code="PageLoop")
        seen.add(token)
    raise Unavailable(f"{what}: more than {MAX_PAGES} pages", code="PageLoop")


async def builds_of_version(
    edge: BuildLister, call: Call[Page[ImageSnapshot]], version_arn: str
) -> list[ImageSnapshot]:
    """Every build of a version ARN, in no particular order.

    An exact version costs one `ListImageBuildVersions(imageVersionArn=...)` per page.
    The model refuses wildcards there (its `ImageVersionArn` pattern has no `x`), so
    `1.x.x` lists every build of that image name (a `name` filter, no
    imageVersionArn) and keeps those whose version matches: a page per 25 builds
    of the name, across all its versions.
    """
    wanted = Arn.parse(version_arn)
    if not wanted.is_wildcard:

        def exact(token: str | None) -> Awaitable[Page[ImageSnapshot]]:
            return edge.list_build_versions(
                wanted.region, version_arn=wanted.version_arn, next_token=token
            )

        builds = await all_pages(call, exact, f"builds of {version_arn}")
    else:

        def by_name(token: str | None) -> Awaitable[Page[ImageSnapshot]]:
            return edge.list_build_versions(
                wanted.region, name=wanted.name, next_token=token, account=wanted.account
            )

        builds = await all_pages(call, by_name, f"builds of {version_arn}")
    return [b for b in builds if wanted.matches(Arn.parse(b.arn))]


_EPOCH = datetime.min.replace(tzinfo=UTC)


def newest(builds: Sequence[ImageSnapshot]) -> ImageSnapshot | None:
    """The newest build: latest `dateCreated`, then the highest build number (for
    builds created in the same instant, or without a date).

    Our choice, not the model's: GetImage resolves a wildcard to the highest
    matching *version* that is AVAILABLE. A CI job waiting on `1.x.x` after
    starting a pipeline wants the build just started, whatever its version."""
    return max(builds, key=lambda b: (_aware(b.created), b.build), default=None)


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def newest_build(
    edge: BuildLister, call: Call[Page[ImageSnapshot]], version_arn: str
) -> str | None:
    """The ARN of the newest build of `version_arn`; None while it has none."""
    found = newest(await builds_of_version(edge, call, version_arn))
    return found.arn if found else None
