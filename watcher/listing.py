"""Finding builds by listing: every page of a List operation, the builds of a
version ARN (wildcards included), and which of them a version ARN means.

GetImage cannot do this: on a version ARN it returns the newest *AVAILABLE* build
only (botocore's model, GetImage `imageBuildVersionArn`), never one in progress
or failed. So a version is listed (`ListImageBuildVersions`) and the build it
means is then watched by its own build ARN.

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
from watcher.model import Arn, ImageSnapshot, ImageStatus

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
        builds = await all_pages(call, _by_name(edge, wanted), f"builds of {version_arn}")
    return [b for b in builds if wanted.matches(Arn.parse(b.arn))]


def _by_name(
    edge: BuildLister, wanted: Arn
) -> Callable[[str | None], Awaitable[Page[ImageSnapshot]]]:
    """One page of the builds of every version of `wanted`'s image name."""

    def fetch(token: str | None) -> Awaitable[Page[ImageSnapshot]]:
        return edge.list_build_versions(
            wanted.region, name=wanted.name, next_token=token, account=wanted.account
        )

    return fetch


_EPOCH = datetime.min.replace(tzinfo=UTC)


def chosen(builds: Sequence[ImageSnapshot]) -> ImageSnapshot | None:
    """The build a version ARN means, among `builds` (all of its matching builds):
    the newest build of the highest version.

    - The highest version. AWS's user guide, "Semantic versioning in Image Builder"
      (https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html):
      wildcards "specify the most recent versions"; "given the following latest
      versions: 2.2.4, 1.7.8, and 1.6.8", `x.x.x` = 2.2.4, `1.x.x` = 1.7.8 and
      `1.6.x` = 1.6.8. Versions compare node by node as integers (1.10.0 > 1.9.9),
      never by when they were built: a `1.0.0/5` created after `1.2.0/1` does not
      make `1.x.x` mean 1.0.0. For an exact version there is only one.
    - Never a build DEPRECATED, DISABLED or DELETED, for an exact version as for a
      wildcard: GetImage's model says "Builds that were later deprecated, disabled, or
      deleted don't resolve." They are passed over as if not listed, so a deprecated
      2.0.0/1 leaves `x.x.x` to the highest version with another build.
    - The highest version *that has any other build*, in any state. GetImage goes
      further and passes over versions without an AVAILABLE build (its model:
      "resolves to the latest matching build version that has reached AVAILABLE
      status"); we do not, since a wait is for the build in progress or failed as much
      as for the finished one. So when 2.0.0's only builds FAILED and a 1.9.0 build is
      still running, `x.x.x` means that failed 2.0.0 build (exit 1), not the 1.9.0 one:
      our reading, the documents say nothing of a version whose builds all failed.
    - Then the newest build of that version: latest `dateCreated`, then the highest
      build number (builds created in the same instant, or without a date).
    """
    candidates = [b for b in builds if b.status not in RETIRED]
    if not candidates:
        return None
    top = max(_version_key(b.version) for b in candidates)
    return max(
        (b for b in candidates if _version_key(b.version) == top),
        key=lambda b: (_aware(b.created), b.build),
    )


RETIRED = frozenset({ImageStatus.DEPRECATED, ImageStatus.DISABLED, ImageStatus.DELETED})
"""States a version ARN never resolves to (GetImage's model: "Builds that were later
deprecated, disabled, or deleted don't resolve")."""


def _version_key(version: str) -> tuple[int, ...]:
    """`1.10.0` -> (1, 10, 0): semantic order, not the text's (`"1.10.0" < "1.9.0"`)."""
    return tuple(int(node) for node in version.split("/", 1)[0].split("."))


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def newest_build(
    edge: BuildLister, call: Call[Page[ImageSnapshot]], version_arn: str
) -> str | None:
    """The ARN of the build `version_arn` means (`chosen`); None while it has none."""
    found = chosen(await builds_of_version(edge, call, version_arn))
    return found.arn if found else None


async def why_no_build(edge: BuildLister, call: Call[Page[ImageSnapshot]], version_arn: str) -> str:
    """What to add to "no build of VERSION_ARN yet" when a wait gives up on it:
    whether the image name has a build of any version at all, in the account the
    credentials read and the ARN's region (a misspelled name has none). One
    ListImageBuildVersions with a `name` filter; more only while the pages that come
    back are empty and still carry a `nextToken` (the model allows it), or, to tell a
    version whose builds are all retired (DEPRECATED, DISABLED, DELETED) from one with
    none, while no page has shown one of its builds."""
    wanted = Arn.parse(version_arn)
    fetch = _by_name(edge, wanted)
    token: str | None = None
    others = False
    for _ in range(MAX_PAGES):
        page = await call(functools.partial(fetch, token))
        retired = sorted({str(b.status) for b in page.items if wanted.matches(Arn.parse(b.arn))})
        if retired:  # a match can only be retired here: `chosen` found none to wait on
            return (
                f"its only builds are {' or '.join(retired)}, which a version ARN does not "
                "resolve to (GetImage's model: builds later deprecated, disabled or deleted "
                '"don\'t resolve"): give the build-version ARN to wait on one of them'
            )
        others = others or bool(page.items)
        token = page.next_token
        if token is None:
            break
    if others:
        return (
            f"image {wanted.name!r} has builds of other versions in {wanted.region}, "
            f"none of {wanted.version}"
        )
    return (
        f"the account these credentials read has no build of any image named {wanted.name!r} "
        f"in {wanted.region}: is the name right?"
    )
