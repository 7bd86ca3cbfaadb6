"""The watcher's vocabulary: ARNs, statuses, what one get_image told us
(`ImageSnapshot`) and the event a status change becomes (`Transition`).

Values only: parsing and validation, no I/O, no clock. AWS adds statuses over
time, so an unknown status is carried as its raw string and never crashes anything.

The values are frozen dataclasses, not pydantic models: `ibwatch
wait-until-available` must start as fast as one AWS CLI call, and building pydantic
models at import costs more than the rest of its start-up.
pydantic is imported only when a value is read from or written to JSON (the state
file, a webhook): see `_Value`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, cast, dataclass_transform

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from watcher.build_progress import BuildProgress
    from watcher.diagnostics import Diagnostics

EVENT_TYPE = "image.state_changed"
EVENT_VERSION = "1"


class InvalidArn(ValueError):
    """An ARN that is not an Image Builder image (version or build-version) ARN."""


_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):imagebuilder:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+):"
    r"(?P<account>[0-9]{12}|aws(?:-[a-z-]+)?):image/(?P<name>[a-z0-9-_]+)/"
    r"(?P<version>(?:[0-9]+|x)\.(?:[0-9]+|x)\.(?:[0-9]+|x))(?:/(?P<build>[0-9]+))?$"
)
_EXAMPLE = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"


@dataclass(frozen=True)
class Arn:
    """An image ARN: a build-version ARN (with `build`) or a version ARN (without),
    whose newest build the API returns."""

    partition: str
    region: str
    account: str
    name: str
    version: str
    build: int | None

    @classmethod
    def parse(cls, text: str) -> Arn:
        """The ARN `text` names; InvalidArn says what is wrong with it. Cached: the
        engine parses the same few thousand ARNs on every poll."""
        return _parse_arn(text) if isinstance(text, str) else cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Arn:
        found = _ARN.match(text.strip()) if isinstance(text, str) else None
        if found is None:
            raise InvalidArn(_explain(text))
        if found["build"] is not None and "x" in found["version"]:
            raise InvalidArn(
                f"{text!r}: a build number needs an exact version, not {found['version']}"
            )
        _check_version(text, found["version"])
        build = found["build"]
        return cls(
            found["partition"],
            found["region"],
            found["account"],
            found["name"],
            found["version"],
            int(build) if build is not None else None,
        )

    @property
    def is_build(self) -> bool:
        return self.build is not None

    @property
    def is_wildcard(self) -> bool:
        """A version ARN with `x` in it (`1.x.x`): ListImageBuildVersions refuses it."""
        return "x" in self.version

    def matches(self, build: Arn) -> bool:
        """Whether build-version ARN `build` is a build of this (version) ARN."""
        return (
            (build.partition, build.region, build.account, build.name)
            == (self.partition, self.region, self.account, self.name)
            and all(
                want in ("x", have)
                for want, have in zip(
                    self.version.split("."), build.version.split("."), strict=True
                )
            )
            and (self.build is None or self.build == build.build)
        )

    @property
    def version_arn(self) -> str:
        return (
            f"arn:{self.partition}:imagebuilder:{self.region}:{self.account}:"
            f"image/{self.name}/{self.version}"
        )

    def __str__(self) -> str:
        return self.version_arn if self.build is None else f"{self.version_arn}/{self.build}"


@functools.lru_cache(maxsize=65536)
def _parse_arn(text: str) -> Arn:
    return Arn._parse(text)


MAX_VERSION_NODE = 2**30 - 1
"""AWS's user guide, "Semantic versioning in Image Builder": "For the first three
nodes you can assign any positive integer value, or zero, with an upper limit of
2^30-1, or 1073741823 for each node." """


def _check_version(text: str, version: str) -> None:
    """Refuse what the model's pattern lets through but Image Builder does not.

    The pattern (`ImageVersionArnOrBuildVersionArn`) is `([0-9]+|x)` for each node,
    so it takes `x.1.x`. The user guide, "Semantic versioning in Image Builder"
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html):
    "When you use a wildcard in any node, all nodes to the right of the first
    wildcard must also be wildcards"; `x.2.x` and `1.x.8` are "invalid, and
    produces an error". Caught here, such an ARN is refused before any call,
    instead of never matching a build until the timeout."""
    nodes = version.split(".")
    if "x" in nodes and any(node != "x" for node in nodes[nodes.index("x") :]):
        raise InvalidArn(
            f"{text!r}: {version} is not a valid wildcard version: every node right of "
            "the first x must be x (x.x.x, 1.x.x or 1.2.x)"
        )
    too_big = [node for node in nodes if node != "x" and int(node) > MAX_VERSION_NODE]
    if too_big:
        raise InvalidArn(
            f"{text!r}: version node {too_big[0]} is above {MAX_VERSION_NODE} (2^30-1), "
            "the largest Image Builder allows"
        )


def check_listable(arn: Arn) -> Arn:
    """`arn` if its builds can be found by listing; InvalidArn says why not.

    A wildcard is listed by its image name without `imageVersionArn` (see
    `watcher.listing.builds_of_version`), and the model says of that parameter: "If you don't
    specify it, Image Builder returns build versions for all of the images in your
    account." An image owned by AWS (account `aws`) is never in the caller's
    account, so a wildcard of one would find no build until the timeout. An exact
    version is listed by `imageVersionArn`, whose pattern (`ImageVersionArn`) takes
    the account `aws`, so it is let through. Another 12-digit account (a shared
    image) is let through too: which account the credentials read is not known
    without a call."""
    if arn.is_wildcard and not arn.account.isdigit():
        raise InvalidArn(
            f"{str(arn)!r}: a wildcard version of an image owned by {arn.account!r} cannot "
            "be waited on: its builds are found with ListImageBuildVersions, which without "
            "an exact version lists only the images of your own account. Give the build "
            "version ARN (.../NAME/X.Y.Z/BUILD) or an exact version ARN (.../NAME/X.Y.Z)"
        )
    return arn


def _explain(text: object) -> str:
    if not isinstance(text, str) or not text.startswith("arn:"):
        return f"{text!r} is not an ARN; expected an image ARN like {_EXAMPLE}"
    parts = text.split(":", 5)
    if len(parts) < 6 or parts[2] != "imagebuilder":
        return f"{text!r} is not an Image Builder ARN; expected one like {_EXAMPLE}"
    if parts[5].startswith("image-pipeline/"):
        return (
            f"{text!r} is an image pipeline ARN, not an image ARN: to start the pipeline and "
            "wait for its build, use `ibwatch start`; to follow its builds, list it in "
            f"`[watch] pipelines`. An image ARN looks like {_EXAMPLE}"
        )
    if not parts[5].startswith("image/"):
        kind = parts[5].split("/", 1)[0]
        article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
        return (
            f"{text!r} names {article} {kind}, not an image; expected an image ARN like "
            f"{_EXAMPLE} (or its version ARN without the build number)"
        )
    return (
        f"{text!r} is not a valid image ARN; expected region, 12-digit account, lower-case "
        f"name and version X.Y.Z with an optional /BUILD, like {_EXAMPLE}"
    )


_PIPELINE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):imagebuilder:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+):"
    r"(?P<account>[0-9]{12}|aws):image-pipeline/(?P<name>[a-z0-9-_]+|\*)$"
)
_PIPELINE_EXAMPLE = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly"


def explain_pipeline_arn(text: object, *, wildcard: bool) -> str:
    """Why `text` is not an image pipeline ARN; `wildcard`: whether the caller takes
    `image-pipeline/*` (the daemon's `[watch] pipelines` does, `ibwatch start` not)."""
    also = (
        ", or one ending in image-pipeline/* for every pipeline of that account and region"
        if wildcard
        else ""
    )
    expected = f"expected one like {_PIPELINE_EXAMPLE}{also}"
    parts = text.split(":", 5) if isinstance(text, str) else []
    resource = parts[5] if len(parts) == 6 and parts[2] == "imagebuilder" else ""
    kind, _, name = resource.partition("/")
    if kind and kind != "image-pipeline":
        article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
        hint = (
            "; to wait for an image's build, use `ibwatch wait-until-available`"
            if kind == "image"
            else ""
        )
        return f"{text!r} names {article} {kind}, not an image pipeline; {expected}{hint}"
    if kind and name != name.lower():
        # The model's ImagePipelineArn pattern ends `image-pipeline/[a-z0-9-_]+$`, and
        # its CreateImagePipeline `name` doc says "Image Builder generates the pipeline
        # ARN from a normalized form of the name".
        return (
            f"{text!r}: pipeline ARNs name the pipeline in lower case, as Image Builder "
            f"writes them (a pipeline named {name!r} has an ARN ending "
            f"image-pipeline/{name.lower()}); {expected}"
        )
    return f"{text!r} is not an image pipeline ARN; {expected}"


@dataclass(frozen=True)
class PipelineArn:
    """An image pipeline ARN (the model's `ImagePipelineArn` pattern), or our
    wildcard `.../image-pipeline/*`: every pipeline of that account and region."""

    partition: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, text: str) -> PipelineArn:
        found = _PIPELINE_ARN.match(text.strip()) if isinstance(text, str) else None
        if found is None:
            raise InvalidArn(explain_pipeline_arn(text, wildcard=True))
        return cls(found["partition"], found["region"], found["account"], found["name"])

    @property
    def is_wildcard(self) -> bool:
        return self.name == "*"

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:imagebuilder:{self.region}:{self.account}:"
            f"image-pipeline/{self.name}"
        )


class ImageStatus(StrEnum):
    """`image.state.status`. Unknown values become members made on the fly, so
    `ImageStatus("NEW_THING")` works, is not `known`, and is not terminal."""

    PENDING = "PENDING"
    CREATING = "CREATING"
    BUILDING = "BUILDING"
    TESTING = "TESTING"
    DISTRIBUTING = "DISTRIBUTING"
    INTEGRATING = "INTEGRATING"
    AVAILABLE = "AVAILABLE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    DEPRECATED = "DEPRECATED"
    DELETED = "DELETED"
    DISABLED = "DISABLED"

    @classmethod
    def _missing_(cls, value: object) -> ImageStatus | None:
        if not isinstance(value, str) or not value:
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        return self._name_ in type(self).__members__

    @property
    def terminal(self) -> bool:
        """The build has ended: it will not move again unless retried or aged by lifecycle."""
        return self.known and self in _TERMINAL

    @property
    def succeeded(self) -> bool:
        return self is ImageStatus.AVAILABLE


_TERMINAL = frozenset(
    {
        ImageStatus.AVAILABLE,
        ImageStatus.CANCELLED,
        ImageStatus.FAILED,
        ImageStatus.DEPRECATED,
        ImageStatus.DELETED,
        ImageStatus.DISABLED,
    }
)

PROGRESS: tuple[ImageStatus, ...] = (
    ImageStatus.PENDING,
    ImageStatus.BUILDING,
    ImageStatus.TESTING,
    ImageStatus.DISTRIBUTING,
    ImageStatus.AVAILABLE,
)
"""The stages of a build on its way to AVAILABLE, in order. CREATING and
INTEGRATING are left out: not every build shows them, so missing them between two
polls says nothing. Which of these a given build is sure to pass: `always_passed`."""

IMAGE_TYPES = frozenset({"AMI", "DOCKER"})
"""The model's `ImageType` values, whose lifecycle we know (see `always_passed`)."""


def always_passed(image_type: str | None, tests_enabled: bool | None) -> tuple[ImageStatus, ...]:
    """The statuses every build of this type and test setting passes through on its
    way to AVAILABLE: the only ones an event may list as `skipped` between two polls.

    - PENDING, BUILDING, DISTRIBUTING, AVAILABLE: every AMI and container build. The
      API (ImageState.status) says a new image "moves through build, test, and
      distribution statuses", a recipe needs at least one build component, and
      distribution is how the output reaches its region(s) (ECR for a container).
    - TESTING only when the build says its tests are enabled
      (`imageTestsConfiguration.imageTestsEnabled`): a build with tests switched off
      never enters it, and a snapshot that does not say (a list operation's summary,
      a hand-made one) is no evidence either way.
    - A type AWS adds later (neither AMI nor DOCKER): none. We do not know its path,
      and an event claiming a stage the build never had misleads whoever reads it.
      No type at all (None) is read as AMI or DOCKER: GetImage always sends one.
    """
    if image_type is not None and image_type not in IMAGE_TYPES:
        return ()
    return tuple(s for s in PROGRESS if s is not ImageStatus.TESTING or tests_enabled is True)


def _camel(name: str) -> str:
    """`account_id` -> `accountId`: AWS's spelling of our snake_case field names."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


@dataclass_transform(kw_only_default=True, frozen_default=True)
class _Value:
    """A frozen, keyword-only dataclass (every subclass is made one) with the few
    pydantic-model methods the rest of the code uses. Construction does not
    validate: callers pass typed values (mypy checks them). Reading JSON
    (`model_validate*`) validates fully, through a pydantic TypeAdapter built on
    first use, so pydantic is imported only by the code that (de)serialises."""

    # pydantic reads this from a stdlib dataclass: a mistyped key in a state file
    # or a test's dict fails, as it did when these were pydantic models.
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with `update`'s fields replaced (not validated, as pydantic's)."""
        # Every subclass is a dataclass (__init_subclass__); mypy cannot see it here.
        copy: Self = dataclasses.replace(cast(Any, self), **(update or {}))
        return copy

    def model_dump(self, *, mode: Literal["json", "python"] = "python") -> dict[str, Any]:
        dumped: dict[str, Any] = _adapter(type(self)).dump_python(self, mode=mode)
        return dumped

    def model_dump_json(self) -> str:
        return _adapter(type(self)).dump_json(self).decode()

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        value: Self = _adapter(cls).validate_python(data)
        return value

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        value: Self = _adapter(cls).validate_json(data)
        return value

    @classmethod
    def model_json_schema(cls, **kwargs: Any) -> dict[str, Any]:
        schema: dict[str, Any] = _adapter(cls).json_schema(**kwargs)
        return schema


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _adapter(cls: type[_Value]) -> TypeAdapter[Any]:
    """The pydantic TypeAdapter of a value class, built once, on first use."""
    key = f"{cls.__module__}.{cls.__qualname__}"
    if key not in _ADAPTERS:
        from pydantic import TypeAdapter  # only here: see the module docstring

        # Transition.diagnostics and .progress name classes of modules that import
        # this one: pydantic resolves those forward references in this frame's locals.
        from watcher.build_progress import BuildProgress  # noqa: F401
        from watcher.diagnostics import Diagnostics  # noqa: F401

        _ADAPTERS[key] = TypeAdapter(cls)
    return _ADAPTERS[key]


class _AwsShaped(_Value):
    """Values that mirror an AWS object keep AWS's camelCase names in JSON (the event
    says `failureContext`, `accountId`, `imageUris`, as GetImage does)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {
        "extra": "forbid",
        "alias_generator": _camel,
        "validate_by_name": True,
        "validate_by_alias": True,
        "serialize_by_alias": True,
    }


class Ami(_AwsShaped):
    region: str
    image: str
    name: str | None = None
    account_id: str | None = None


class Container(_AwsShaped):
    region: str
    image_uris: tuple[str, ...]


class Outputs(_Value):
    amis: tuple[Ami, ...] = ()
    containers: tuple[Container, ...] = ()


class ImageSnapshot(_Value):
    """What one get_image told us about one build."""

    arn: str
    """The build-version ARN the API returned (for a version ARN, its newest build)."""
    status: ImageStatus
    reason: str | None = None
    failure_context: dict[str, Any] | None = None
    name: str
    version: str
    build: int
    type: str | None = None
    platform: str | None = None
    pipeline: str | None = None
    created: datetime | None = None
    tests_enabled: bool | None = None
    outputs: Outputs = Outputs()
    observed_at: datetime
    """When we received it, on the watcher's clock."""
    log_group: str | None = None
    """loggingConfiguration.logGroupName, where the response carries it."""

    def same_state(self, other: ImageSnapshot) -> bool:
        """Whether `other` shows nothing worth remembering that this one does not:
        the same build, status, reason, failure context and outputs (only a new
        status or build is an event). Compared field by field: it runs every poll."""
        return (
            self.arn == other.arn
            and self.status == other.status
            and self.reason == other.reason
            and self.failure_context == other.failure_context
            and self.outputs == other.outputs
        )


class PipelineInfo(_Value):
    """What GetImagePipeline or ListImagePipelines told us about one pipeline."""

    arn: str
    name: str
    status: str
    """ENABLED or DISABLED (Image Builder disables a pipeline after consecutive
    scheduled failures); kept as the raw string, as AWS may add values."""
    date_last_run: str | None = None
    """The API's `dateLastRun` as sent: compared, never computed with."""
    last_run_status: str | None = None


class StatusInfo(_AwsShaped):
    status: ImageStatus
    reason: str | None = None
    failure_context: dict[str, Any] | None = None


class ImageInfo(_Value):
    arn: str
    name: str
    version: str
    build: int
    type: str | None
    platform: str | None
    region: str
    account: str
    pipeline: str | None


class Durations(_Value):
    in_previous_status_seconds: float | None
    """Time between first seeing the previous status and seeing this one."""
    total_seconds: float | None
    """Time since the build was created (the API's dateCreated)."""


class Transition(_Value):
    """One status change of one build: the event sinks receive.

    `id` is the same whenever the same transition is recomputed, across retries
    and restarts. `previous` is None on first sighting.
    """

    id: str
    sequence: int
    """The build's transitions counted from 1; FAILED -> ... -> FAILED again differ by it."""
    watched: str
    """The ARN as configured, or the version or pipeline ARN that discovery found
    the build through."""
    image: ImageInfo
    previous: StatusInfo | None
    current: StatusInfo
    skipped: tuple[ImageStatus, ...] = ()
    terminal: bool
    durations: Durations
    outputs: Outputs | None = None
    observed_at: datetime
    diagnostics: Diagnostics | None = None
    """Why the build failed (`watcher.diagnostics`): set on the event of a transition
    into FAILED only, and in the envelope only when set."""
    progress: BuildProgress | None = None
    """The running workflow step (`watcher.build_progress`), when the event's status
    runs a workflow and it was looked up; in the envelope only when set."""

    def envelope(self) -> dict[str, Any]:
        """The Standard Webhooks envelope: `{type, timestamp, data}`."""
        data = self.model_dump(mode="json")
        for added in ("diagnostics", "progress"):  # added within v1: absent, not null
            if data.get(added) is None:
                data.pop(added, None)
        data["version"] = EVENT_VERSION
        return {"type": EVENT_TYPE, "timestamp": data["observed_at"], "data": data}
