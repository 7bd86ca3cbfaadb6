"""The simulated account's builds and where each one is in its timeline.

Pure bookkeeping over scenario time (seconds since the scenario began, already
scaled): no clock, no I/O. The HTTP layer asks "what does this ARN show at time t";
a cancellation rewrites the rest of one build's timeline from the moment it lands.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from watcher.simulator.scenario_images import STATUSES, Image, Step

BuildType = Literal["USER_INITIATED", "SCHEDULED"]

# Any ARN GetImage accepts, split into the image's prefix and its version part.
_REQUEST_ARN = re.compile(
    r"^(?P<prefix>arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/"
    r"[a-z0-9-_]+)/(?P<version>(?:[0-9]+|x)\.(?:[0-9]+|x)\.(?:[0-9]+|x))(?:/(?P<build>[0-9]+))?$"
)
# ImageState.status: "A new image moves through build, test, and distribution
# statuses during creation, and ends in the AVAILABLE, FAILED, or CANCELLED state.
# The DEPRECATED, DISABLED, and DELETED statuses come from later resource
# management actions." All six are where creation is over.
TERMINAL = frozenset({"AVAILABLE", "FAILED", "CANCELLED", "DEPRECATED", "DISABLED", "DELETED"})
_KNOWN = frozenset(STATUSES)


@dataclass(frozen=True)
class Phase:
    """A timeline step placed in scenario time; `ends` is None for the last step."""

    step: Step
    index: int
    begins: float
    ends: float | None

    @property
    def status(self) -> str:
        return self.step.status


@dataclass(frozen=True)
class Source:
    """The pipeline a build came from, as GetImage names it."""

    arn: str
    name: str


class Build:
    """One image build: its spec and its timeline placed at its start time."""

    def __init__(
        self,
        image: Image,
        started: float,
        *,
        build_type: BuildType = "USER_INITIATED",
        source: Source | None = None,
    ) -> None:
        self.image = image
        self.started = started
        self.build_type: BuildType = build_type
        self.source = source
        parts = image.parts
        self.arn = image.arn
        self.name = parts["name"]
        self.version = parts["version"]
        self.number = int(parts["build"])
        self.prefix = self.arn.rsplit("/", 2)[0]
        self.phases: list[Phase] = []
        at = started
        for step in image.timeline:
            at = self._append(step, at)
        self._begins = [phase.begins for phase in self.phases]
        # Worked out once: auto-disable asks for it for every run on every request.
        self._outcome: tuple[float, str] | None = None
        self._outcome_known = False

    def _append(self, step: Step, at: float) -> float:
        ends = None if step.duration is None else at + step.duration
        self.phases.append(Phase(step, len(self.phases), at, ends))
        return ends if ends is not None else at

    @property
    def version_arn(self) -> str:
        return f"{self.prefix}/{self.version}"

    @property
    def sort_key(self) -> tuple[float, int, int, int, int, str]:
        """Newest first when sorted in reverse: creation time, then build number."""
        major, minor, patch = version_key(self.version)
        return (self.started, self.number, major, minor, patch, self.arn)

    def phase_at(self, t: float) -> Phase | None:
        """The phase the build is in at scenario time t; None before it starts."""
        if t < self.started:
            return None
        # The last phase that has begun; zero-length phases are passed over.
        return self.phases[bisect.bisect_right(self._begins, t) - 1]

    def status_at(self, t: float) -> str | None:
        phase = self.phase_at(t)
        return None if phase is None else phase.status

    def terminal_at(self, t: float) -> bool:
        """Whether creation is over at t. A status the model does not list counts as
        terminal only as the timeline's last step (our reading: it lasts forever)."""
        phase = self.phase_at(t)
        if phase is None:
            return False
        return phase.status in TERMINAL or (
            phase.status not in _KNOWN and phase.index == len(self.phases) - 1
        )

    def reached(self, status: str, t: float) -> bool:
        return any(p.status == status and p.begins <= t for p in self.phases)

    def settled_by(self) -> float:
        """Scenario time at which the build enters its last step."""
        return self.phases[-1].begins

    def entered(self, status: str) -> float | None:
        """Scenario time at which the build first shows `status`, if it ever does."""
        for phase in self.phases:
            if phase.status == status and (phase.ends is None or phase.ends > phase.begins):
                return phase.begins
        return None

    def outcome(self) -> tuple[float, str] | None:
        """When the build first became AVAILABLE or FAILED, and which; None if never."""
        if not self._outcome_known:
            self._outcome, self._outcome_known = self._first_outcome(), True
        return self._outcome

    def _first_outcome(self) -> tuple[float, str] | None:
        moments = [
            (at, status)
            for status in ("AVAILABLE", "FAILED")
            if (at := self.entered(status)) is not None
        ]
        return min(moments) if moments else None

    def cancel(self, t: float, reason: str) -> None:
        """End the build in CANCELLED at t: the phase it is in stops there, and the
        steps it had still to come never happen."""
        current = self.phase_at(t)
        assert current is not None, "only a started build can be cancelled"
        kept = self.phases[: current.index]
        if current.begins < t:
            kept.append(Phase(current.step, current.index, current.begins, t))
        self.phases = kept
        self._append(Step(status="CANCELLED", reason=reason), t)
        self._begins = [phase.begins for phase in self.phases]
        self._outcome_known = False


class Catalog:
    """Every build the simulated account has, started or still to come."""

    def __init__(self, images: Iterable[Image] = ()) -> None:
        self._builds: dict[str, Build] = {}
        # Highest build number per version ARN: a long schedule asks on every run.
        self._highest: dict[str, int] = {}
        for image in images:
            self.add(image, image.start)

    def add(
        self,
        image: Image,
        started: float,
        *,
        build_type: BuildType = "USER_INITIATED",
        source: Source | None = None,
    ) -> Build:
        if image.arn in self._builds:
            raise ValueError(f"build {image.arn} exists already")
        build = Build(image, started, build_type=build_type, source=source)
        self._builds[image.arn] = build
        version = build.version_arn
        self._highest[version] = max(self._highest.get(version, 0), build.number)
        return build

    def __iter__(self) -> Iterator[Build]:
        return iter(self._builds.values())

    def get(self, arn: str) -> Build | None:
        return self._builds.get(arn)

    def started(self, arn: str, t: float) -> Build | None:
        """The build with this build ARN, if it exists at t."""
        build = self._builds.get(arn)
        return build if build is not None and build.started <= t else None

    def resolve(self, arn: str, t: float) -> Build | None:
        """What GetImage shows for `arn` at time t.

        A build ARN: that build, in any state. A version or wildcard ARN (`x`
        matching any number): the model's GetImage.imageBuildVersionArn says it
        "resolves to the latest matching build version that has reached AVAILABLE
        status. Builds that were later deprecated, disabled, or deleted don't
        resolve." Latest is our reading: highest version, then highest build number.
        """
        found = _REQUEST_ARN.match(arn)
        if found is None:
            return None
        if found["build"] is not None:
            return self.started(arn, t)
        wanted = found["version"].split(".")
        available = [
            b
            for b in self._builds.values()
            if b.prefix == found["prefix"]
            and all(w in ("x", have) for w, have in zip(wanted, b.version.split("."), strict=True))
            and b.status_at(t) == "AVAILABLE"
        ]
        return max(available, key=lambda b: (version_key(b.version), b.number), default=None)

    def visible(self, t: float) -> list[Build]:
        """Every build that exists at t, newest first."""
        started = [b for b in self._builds.values() if b.started <= t]
        return sorted(started, key=lambda b: b.sort_key, reverse=True)

    def next_build_number(self, version_arn: str) -> int:
        return self._highest.get(version_arn, 0) + 1


MAX_VERSION_NODE = 2**30 - 1
"""The user guide, "Semantic versioning in Image Builder": each of the first three
nodes takes "any positive integer value, or zero, with an upper limit of 2^30-1, or
1073741823"."""


def version_problem(arn: str) -> str | None:
    r"""Why GetImage refuses `arn` although it matches the model's pattern; None if
    it does not.

    The pattern (`ImageVersionArnOrBuildVersionArn`, checked before this) is
    `...:image/[a-z0-9-_]+/(?:(?:([0-9]+|x)\.([0-9]+|x)\.([0-9]+|x))|(?:[0-9]+\.[0-9]+\.[0-9]+/[0-9]+))$`:
    every node may be `x` on its own, so it takes `x.2.x`. The user guide
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html)
    says "When you use a wildcard in any node, all nodes to the right of the first
    wildcard must also be wildcards", and that `x.2.x` and `1.x.8` are "invalid,
    and produces an error". Which error is not documented: InvalidRequestException
    is our reading (GetImage's model lists it among its errors, and the pattern's
    own failures are answered with it). A node above 2^30-1 is refused the same way.
    """
    found = _REQUEST_ARN.match(arn)
    if found is None:
        return None
    nodes = found["version"].split(".")
    if "x" in nodes and any(node != "x" for node in nodes[nodes.index("x") :]):
        return (
            f"Wildcard version {found['version']} in {arn} is invalid: all nodes to the "
            "right of the first wildcard must also be wildcards."
        )
    if any(node != "x" and int(node) > MAX_VERSION_NODE for node in nodes):
        return f"Version {found['version']} in {arn} has a node above {MAX_VERSION_NODE}."
    return None


def version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch
