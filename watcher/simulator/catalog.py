"""The simulated account's builds and where each one is in its timeline.

Pure bookkeeping over scenario time (seconds since the scenario began, already
scaled): no clock, no I/O. The HTTP layer asks "what does this ARN show at time t".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from watcher.simulator.scenario import Image, Step

# Any ARN GetImage accepts, split into the image's prefix and its version part.
_REQUEST_ARN = re.compile(
    r"^(?P<prefix>arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/"
    r"[a-z0-9-_]+)/(?P<version>(?:[0-9]+|x)\.(?:[0-9]+|x)\.(?:[0-9]+|x))(?:/(?P<build>[0-9]+))?$"
)


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


class Build:
    """One image build: its spec and its timeline placed at its start time."""

    def __init__(self, image: Image, started: float) -> None:
        self.image = image
        self.started = started
        parts = image.parts
        self.arn = image.arn
        self.name = parts["name"]
        self.version = parts["version"]
        self.number = int(parts["build"])
        self.prefix = self.arn.rsplit("/", 2)[0]
        self.phases: list[Phase] = []
        at = started
        for index, step in enumerate(image.timeline):
            ends = None if step.duration is None else at + step.duration
            self.phases.append(Phase(step, index, at, ends))
            at = ends if ends is not None else at
        self._begins = [phase.begins for phase in self.phases]

    @property
    def version_arn(self) -> str:
        return f"{self.prefix}/{self.version}"

    def phase_at(self, t: float) -> Phase | None:
        """The phase the build is in at scenario time t; None before it starts."""
        if t < self.started:
            return None
        # The last phase that has begun; zero-length phases are passed over.
        return self.phases[bisect.bisect_right(self._begins, t) - 1]

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


class Catalog:
    """Every build the simulated account has, started or still to come."""

    def __init__(self, images: Iterable[Image] = ()) -> None:
        self._builds: dict[str, Build] = {}
        for image in images:
            self.add(image, image.start)

    def add(self, image: Image, started: float) -> Build:
        if image.arn in self._builds:
            raise ValueError(f"build {image.arn} exists already")
        build = Build(image, started)
        self._builds[image.arn] = build
        return build

    def __iter__(self) -> Iterator[Build]:
        return iter(self._builds.values())

    def get(self, arn: str) -> Build | None:
        return self._builds.get(arn)

    def resolve(self, arn: str, t: float) -> Build | None:
        """What GetImage shows for `arn` at time t: the build itself for a build ARN,
        the newest started build for a version ARN (`x` matching any number)."""
        found = _REQUEST_ARN.match(arn)
        if found is None:
            return None
        if found["build"] is not None:
            build = self._builds.get(arn)
            return build if build is not None and build.started <= t else None
        matching = self.builds_matching(found["prefix"], found["version"], t)
        return matching[-1] if matching else None

    def builds_matching(self, prefix: str, version: str, t: float) -> list[Build]:
        """Started builds of the image at `prefix` whose version matches, oldest first."""
        wanted = version.split(".")
        matching = [
            b
            for b in self._builds.values()
            if b.prefix == prefix
            and b.started <= t
            and all(w in ("x", have) for w, have in zip(wanted, b.version.split("."), strict=True))
        ]
        return sorted(matching, key=lambda b: (_version_key(b.version), b.number))

    def next_build_number(self, version_arn: str) -> int:
        numbers = [b.number for b in self._builds.values() if b.version_arn == version_arn]
        return max(numbers, default=0) + 1


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
