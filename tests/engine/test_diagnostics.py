"""Diagnostics of a failed build: gathered once, through the engine's limiter and
retries, when a poll first sees FAILED, and carried on that event only. Against the
simulator over loopback, on virtual time.

Model facts relied on (botocore's imagebuilder service-2.json): ImageFailureContext
carries workflowExecutionId, workflowArn, stepExecutionId, failedStep,
componentFailure and distributionFailure{errorMessage, regionFailures[]};
GetWorkflowStepExecution answers one step's name, action, status and message;
ImageLoggingConfiguration.logGroupName defaults to /aws/imagebuilder/<image name>.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from structlog.testing import capture_logs

from tests.engine.test_engine_simulator import watch
from tests.support import WEB_BASE, scenario, timeline, web_base_image
from watcher.model import ImageStatus, Transition
from watcher.schema import event_schema
from watcher.simulator import Scenario, load_scenario
from watcher.testing import RecordingSink

DEMO = Path(__file__).parents[2] / "config" / "demo-scenario.toml"
AGENT = "arn:aws:imagebuilder:eu-west-1:123456789012:image/windows-agent/3.1.0/12"
WORKFLOW_CALLS = (
    "ListWorkflowExecutions",
    "ListWorkflowStepExecutions",
    "GetWorkflowExecution",
    "GetWorkflowStepExecution",
)
REGION_FAILURES = [
    {
        "region": "ap-southeast-2",
        "status": "FAILED",
        "errorMessage": "AMI copy failed: KMS key not accessible in the destination Region",
    },
    {"region": "eu-west-1", "status": "TIMED_OUT", "errorMessage": "copy timed out"},
]


def windows_agent(**fields: Any) -> Scenario:
    """The demo's build that fails in its TEST workflow, alone and without faults."""
    demo = load_scenario(DEMO).model_dump()
    images = [i for i in demo["images"] if i["arn"] == AGENT]
    return Scenario.model_validate(
        {**demo, "images": images, "pipelines": [], "faults": {}, **fields}
    )


def fails_in_distribution() -> Scenario:
    failed = {
        "status": "FAILED",
        "reason": "Distribution failed in 2 Regions",
        "failure_context": {
            "distributionFailure": {
                "errorMessage": "Image distribution failed",
                "regionFailures": REGION_FAILURES,
            }
        },
    }
    return scenario(
        [web_base_image(timeline=[*timeline(("BUILDING", 60), ("DISTRIBUTING", 30)), failed])]
    )


def failed_events(sink: RecordingSink) -> list[Transition]:
    return [e for e in sink.events if e.current.status is ImageStatus.FAILED]


async def test_a_build_failing_in_testing_names_its_failing_step_log_and_console_page() -> None:
    result, sink, _ = await watch(windows_agent(), [AGENT], interval=30.0)
    (failed,) = failed_events(sink)
    diagnostics = failed.diagnostics
    assert diagnostics is not None
    step = diagnostics.failed_step
    assert step is not None
    assert (step.workflow, step.name, step.action) == ("TEST", "RunImageTests", "ExecuteComponents")
    assert step.message is not None
    assert "service 'ibagent' did not reach Running within 120s" in step.message
    assert step.step_execution_id == failed.current.failure_context["stepExecutionId"]
    assert diagnostics.component_failure is not None
    assert diagnostics.component_failure.step_name == "RunTests"
    assert (diagnostics.log_group, diagnostics.log_stream) == (
        "/aws/imagebuilder/windows-agent",
        "3.1.0/12",
    )
    assert diagnostics.console_url == (
        "https://eu-west-1.console.aws.amazon.com/imagebuilder/home?region=eu-west-1#/images/"
        "arn%3Aaws%3Aimagebuilder%3Aeu-west-1%3A123456789012%3Aimage%2Fwindows-agent%2F3.1.0"
        "/12/details"
    )
    assert all(e.diagnostics is None for e in sink.events if e is not failed)
    assert all(w.error is None for w in result.watches.values())


async def test_a_build_failing_in_distribution_carries_its_region_failures() -> None:
    _, sink, _ = await watch(fails_in_distribution(), [WEB_BASE], interval=10.0)
    (failed,) = failed_events(sink)
    assert failed.diagnostics is not None
    assert failed.diagnostics.distribution_error == "Image distribution failed"
    assert [(r.region, r.status, r.error_message) for r in failed.diagnostics.region_failures] == [
        (r["region"], r["status"], r["errorMessage"]) for r in REGION_FAILURES
    ]


async def test_diagnostics_are_gathered_once_per_build() -> None:
    """One GetWorkflowStepExecution (failureContext names the step), and no other
    workflow call, though the FAILED build is polled again afterwards."""
    _, _, simulator = await watch(
        windows_agent(), [AGENT], interval=30.0, stop_when_ended=False, time_limit=3 * 3600
    )
    requests = simulator.counters.requests
    assert requests["GetImage"] > 3  # FAILED is re-checked for a while (RetryImage)
    assert {op: requests[op] for op in WORKFLOW_CALLS} == {
        "ListWorkflowExecutions": 0,
        "ListWorkflowStepExecutions": 0,
        "GetWorkflowExecution": 0,
        "GetWorkflowStepExecution": 1,
    }


async def test_denied_workflow_calls_leave_the_step_out_with_one_warning() -> None:
    """A policy without the workflow actions: the FAILED event still arrives, with the
    log and console parts, and the watch ends normally rather than parked."""
    outage = {"code": "AccessDeniedException", "end": "10h", "operations": list(WORKFLOW_CALLS)}
    with capture_logs() as logs:
        result, sink, _ = await watch(
            windows_agent(faults={"outages": [outage]}), [AGENT], interval=30.0
        )
    (failed,) = failed_events(sink)
    assert failed.diagnostics is not None
    assert failed.diagnostics.failed_step is None
    assert failed.diagnostics.log_stream == "3.1.0/12"
    warnings = [e for e in logs if e["event"] == "image.diagnostics_incomplete"]
    assert len(warnings) == 1
    assert warnings[0]["error"] == "AccessDenied"
    assert all(w.error is None and w.ended for w in result.watches.values())


async def test_the_failed_event_with_diagnostics_validates_against_the_schema() -> None:
    _, sink, _ = await watch(windows_agent(), [AGENT], interval=30.0)
    (failed,) = failed_events(sink)
    envelope = failed.envelope()
    assert envelope["data"]["diagnostics"]["failed_step"]["name"] == "RunImageTests"
    validator = Draft202012Validator(event_schema())
    assert [e.message for e in validator.iter_errors(envelope)] == []
    others = [e.envelope()["data"] for e in sink.events if e is not failed]
    assert others
    assert all("diagnostics" not in data for data in others)
