"""The workflow executions of each simulated build, placed in scenario time.

Every timeline step whose status runs a workflow (BUILDING, TESTING, DISTRIBUTING;
see `scenario_workflows`) is one workflow execution, and its steps run one after
another within that status's time: each for its own `duration`, the others sharing
what is left evenly. Derived from the timeline, never stored: a cancellation that
cuts a phase short is seen on the next look. Pure over scenario time, like
`catalog.py`; no clock, no I/O, no documents.

Our reading where the model is silent:
- A workflow execution exists (is listed) once its status has begun, and a step
  execution once the step has started: the model says both ids are assigned "at
  runtime". So a step that never ran (after a failure or a cancellation) is not
  listed, and is counted in none of totalStepsSucceeded/Failed/Skipped (the model:
  "The sum of succeeded, skipped, and failed steps only reaches this total if every
  step finishes in one of those states").
- A workflow ends with its status: FAILED if the build's next status is FAILED (its
  failing step FAILED, the steps after it never start), CANCELLED if the next is
  CANCELLED (the step running then CANCELLED), COMPLETED otherwise.
- Ids are `wf-`/`step-` and a UUID-shaped hex digest of the scenario seed, the build
  ARN, and the workflow's (and step's) place, so the same scenario shows the same ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from watcher.simulator.catalog import Build, Catalog, Phase
from watcher.simulator.scenario_workflows import (
    WORKFLOW_TYPES,
    WorkflowStep,
    failing_step,
    workflow_steps,
)

Outcome = Literal["COMPLETED", "FAILED", "CANCELLED"]

# Image Builder's managed workflows are owned by the `aws` account (as documents.py
# serves them in an image's `workflows`); the build versions are our reading.
_WORKFLOW_NAMES = {
    "BUILD": "build/build-{kind}/1.0.2/1",
    "TEST": "test/test-{kind}/1.0.2/1",
    "DISTRIBUTION": "distribution/distribute-{kind}/1.0.0/1",
}


def execution_id(seed: int, build_arn: str, phase_index: int) -> str:
    """The model's WorkflowExecutionId: `wf-` and a UUID-shaped hex string."""
    return "wf-" + _uuid_like(f"{seed}:{build_arn}:{phase_index}")


def step_execution_id(seed: int, build_arn: str, phase_index: int, step_index: int) -> str:
    """The model's WorkflowStepExecutionId: `step-` and a UUID-shaped hex string."""
    return "step-" + _uuid_like(f"{seed}:{build_arn}:{phase_index}:{step_index}")


def _uuid_like(text: str) -> str:
    h = hashlib.sha256(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass(frozen=True)
class StepRun:
    """One workflow step placed in time; `ends` None while it runs forever."""

    spec: WorkflowStep
    index: int
    execution_id: str
    begins: float
    ends: float | None
    failing: bool

    def status_at(self, t: float, workflow_end: float | None, outcome: Outcome) -> str:
        """WorkflowStepExecutionStatus at t (only asked once the step has begun)."""
        if workflow_end is not None and t >= workflow_end:
            if self.failing and outcome == "FAILED":
                return "FAILED"
            # The step still running when the build was cancelled; a timeline that
            # declares CANCELLED cancels the step that would have ended then.
            if outcome == "CANCELLED" and (self.ends is None or self.ends >= workflow_end):
                return "CANCELLED"
            return "COMPLETED"
        return "COMPLETED" if self.ends is not None and self.ends <= t else "RUNNING"

    def ended_at(self, t: float, workflow_end: float | None) -> float | None:
        """When it finished, if it has by t."""
        if workflow_end is not None and t >= workflow_end:
            return workflow_end if self.ends is None else min(self.ends, workflow_end)
        return self.ends if self.ends is not None and self.ends <= t else None


@dataclass(frozen=True)
class WorkflowRun:
    """One workflow execution of a build: a timeline phase that runs a workflow."""

    build: Build
    phase: Phase
    type: str
    execution_id: str
    workflow_arn: str
    defined: tuple[WorkflowStep, ...]
    steps: tuple[StepRun, ...]
    """The steps that run (all of them, or up to the failing one), placed in time."""
    outcome: Outcome

    @property
    def ends(self) -> float | None:
        return self.phase.ends

    def status_at(self, t: float) -> str:
        """WorkflowExecutionStatus at t (only asked once the workflow has begun)."""
        return self.outcome if self.ends is not None and t >= self.ends else "RUNNING"

    def started_steps(self, t: float) -> list[StepRun]:
        """The steps that have started by t (and before the workflow ended)."""
        end = self.ends
        return [s for s in self.steps if s.begins <= t and (end is None or s.begins < end)]

    def failed_step(self) -> StepRun | None:
        return (
            next((s for s in self.steps if s.failing), None) if self.outcome == "FAILED" else None
        )


class Workflows:
    """The workflow executions of every build, for one scenario seed."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        # id -> (build ARN, phase index[, step index]), filled as builds are first seen.
        self._executions: dict[str, tuple[str, int]] = {}
        self._steps: dict[str, tuple[str, int, int]] = {}
        self._indexed: set[str] = set()

    def runs(self, build: Build, t: float) -> list[WorkflowRun]:
        """The build's workflow executions that have begun by t, in the order they ran."""
        found = (self.run(build, p) for p in build.phases if p.begins <= t and t >= build.started)
        return [r for r in found if r is not None]

    def run(self, build: Build, phase: Phase) -> WorkflowRun | None:
        """The workflow execution of one phase, if its status runs one."""
        step = phase.step
        kind = WORKFLOW_TYPES.get(step.status)
        if kind is None or phase.ends == phase.begins:
            return None  # a zero-length phase is passed over, as Build.phase_at does
        defined = workflow_steps(step.status, step.workflow_steps, build.image.type)
        after = build.phases[phase.index + 1] if phase.index + 1 < len(build.phases) else None
        outcome: Outcome = "COMPLETED"
        running = defined
        failing: int | None = None
        if after is not None and after.status == "FAILED":
            outcome = "FAILED"
            context = after.step.failure_context or {}
            failing = failing_step(defined, after.step.failed_step, context.get("failedStep"))
            running = defined[: failing + 1]
        elif after is not None and after.status == "CANCELLED":
            outcome = "CANCELLED"
        placed = self._place(build, phase, running, failing)
        kind_name = "container" if build.image.type == "DOCKER" else "image"
        parts = build.image.parts
        arn = (
            f"arn:{parts['partition']}:imagebuilder:{parts['region']}:aws:workflow/"
            + _WORKFLOW_NAMES[kind].format(kind=kind_name)
        )
        return WorkflowRun(
            build=build,
            phase=phase,
            type=kind,
            execution_id=execution_id(self._seed, build.arn, phase.index),
            workflow_arn=arn,
            defined=defined,
            steps=placed,
            outcome=outcome,
        )

    def _place(
        self, build: Build, phase: Phase, steps: tuple[WorkflowStep, ...], failing: int | None
    ) -> tuple[StepRun, ...]:
        # The status's planned length (a cancellation cuts `phase.ends`, not the plan).
        total = phase.step.duration
        if failing is not None and phase.ends is not None:
            total = phase.ends - phase.begins
        # The failing step lasts until the status ends, whatever its own duration.
        lengths = [None if i == failing else s.duration for i, s in enumerate(steps)]
        given = sum(d for d in lengths if d is not None)
        shared = sum(1 for d in lengths if d is None)
        share = None if total is None else max(0.0, total - given) / max(1, shared)
        placed: list[StepRun] = []
        at: float | None = phase.begins
        for index, spec in enumerate(steps):
            if at is None:
                break  # the step before runs forever
            length = lengths[index] if lengths[index] is not None else share
            ends = None if length is None else at + length
            is_failing = index == failing
            if is_failing:
                ends = phase.ends  # it fails when the status ends
            placed.append(
                StepRun(
                    spec=spec,
                    index=index,
                    execution_id=step_execution_id(self._seed, build.arn, phase.index, index),
                    begins=at,
                    ends=ends,
                    failing=is_failing,
                )
            )
            at = ends
        return tuple(placed)

    def failed_run(self, build: Build, failed: Phase) -> WorkflowRun | None:
        """The workflow execution a FAILED phase failed in: that of the phase before."""
        if failed.index == 0:
            return None
        run = self.run(build, build.phases[failed.index - 1])
        return run if run is not None and run.outcome == "FAILED" else None

    # -- look-ups by id ---------------------------------------------------

    def find_run(self, catalog: Catalog, execution: str, t: float) -> WorkflowRun | None:
        """The workflow execution with this id, if it has begun by t."""
        self._index(catalog)
        where = self._executions.get(execution)
        return None if where is None else self._begun(catalog, *where, t)

    def find_step(
        self, catalog: Catalog, step_execution: str, t: float
    ) -> tuple[WorkflowRun, StepRun] | None:
        """The step execution with this id and its workflow, if it has started by t."""
        self._index(catalog)
        where = self._steps.get(step_execution)
        if where is None:
            return None
        arn, phase_index, step_index = where
        run = self._begun(catalog, arn, phase_index, t)
        if run is None:
            return None
        step = next((s for s in run.started_steps(t) if s.index == step_index), None)
        return None if step is None else (run, step)

    def _begun(self, catalog: Catalog, arn: str, phase_index: int, t: float) -> WorkflowRun | None:
        build = catalog.started(arn, t)
        if build is None or phase_index >= len(build.phases):
            return None  # a cancellation can have removed the phase
        phase = build.phases[phase_index]
        return self.run(build, phase) if phase.begins <= t else None

    def _index(self, catalog: Catalog) -> None:
        """Learn the ids of builds not seen before. A build's ids depend only on its
        ARN and its timeline as declared, so they are learnt once."""
        for build in catalog:
            if build.arn in self._indexed:
                continue
            self._indexed.add(build.arn)
            for phase in build.phases:
                step = phase.step
                defined = workflow_steps(step.status, step.workflow_steps, build.image.type)
                if not defined:
                    continue
                self._executions[execution_id(self._seed, build.arn, phase.index)] = (
                    build.arn,
                    phase.index,
                )
                for index in range(len(defined)):
                    self._steps[step_execution_id(self._seed, build.arn, phase.index, index)] = (
                        build.arn,
                        phase.index,
                        index,
                    )
