"""deploy/events/, the push path's AWS side: the CloudFormation template is lint-clean
and deploys (into moto, on loopback) to a rule that delivers Image Builder's state-change
events to the queue its QueueUrl output names; the Terraform declares the same
resources wired the same way; both match the documented event and nothing else; the
daemon's IAM grants are exactly the three SQS reads and deletes on that queue.

No `terraform` binary can be had here (PyPI's terraform-binary is Terraform 0.11 from
2019, which reads none of this syntax; Debian packages none), and `terraform validate`
would need the provider downloaded anyway: python-hcl2 parses the files instead.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import hcl2
import pytest
import yaml
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EVENTS = DEPLOY / "events"
TEMPLATE = EVENTS / "cloudformation.yaml"
TERRAFORM = EVENTS / "terraform"
EVENTS_POLICY = EVENTS / "iam-policy-events.json"
DAEMON_POLICY = DEPLOY / "kubernetes" / "iam-policy.json"
CI_POLICY = DEPLOY / "ci" / "iam-policy-ci.json"

STATE_CHANGE = "EC2 Image Builder Image State Change"
BUILD_ARN = "arn:aws:imagebuilder:us-west-2:111122223333:image/example-image/1.0.0/1"

# The example of EC2 Image Builder User Guide, "Amazon EventBridge integration in
# Image Builder", section "EC2 Image Builder Image State Change"
# (https://docs.aws.amazon.com/imagebuilder/latest/userguide/integ-eventbridge.html),
# its placeholder image name shortened.
STATE_CHANGE_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
    "detail-type": STATE_CHANGE,
    "source": "aws.imagebuilder",
    "account": "111122223333",
    "time": "2024-01-18T17:50:56Z",
    "region": "us-west-2",
    "resources": [BUILD_ARN],
    "detail": {"previous-state": {"status": "TESTING"}, "state": {"status": "AVAILABLE"}},
}
# Another event Image Builder sends, from the same page ("EC2 Image Builder CVE
# Detected"): same source, another detail-type. The rule must leave it out.
CVE_DETECTED_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
    "detail-type": "EC2 Image Builder CVE Detected",
    "source": "aws.imagebuilder",
    "account": "111122223333",
    "time": "2023-03-01T16:59:09Z",
    "region": "us-east-1",
    "resources": [
        "arn:aws:imagebuilder:us-east-1:111122223333:image/test-image/1.0.0/1",
        "arn:aws:imagebuilder:us-east-1:111122223333:image-pipeline/test-pipeline",
    ],
    "detail": {
        "resource-id": "i-1234567890abcdef0",
        "finding-severity-counts": {"all": 0, "critical": 0, "high": 0, "medium": 0},
    },
}

# The three calls of the daemon's push path (watcher/push.py): ReceiveMessage and
# DeleteMessage, and GetQueueAttributes (issue 12). The SQS Developer Guide, "Amazon SQS
# API permissions: Actions and resource reference", gives each the queue's ARN as its
# resource (arn:aws:sqs:region:account_id:queue_name).
QUEUE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


# ------------------------------------------------------------------------- helpers


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, !GetAtt ...) read as the
    long forms they stand for."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def _template() -> dict[str, Any]:
    document = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)
    assert isinstance(document, dict)
    return document


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    """The template's resources of type `kind`, by logical id."""
    return {name: r for name, r in _template()["Resources"].items() if r["Type"] == kind}


def _one(kind: str) -> tuple[str, dict[str, Any]]:
    [(name, resource)] = _resources(kind).items()
    return name, resource["Properties"]


def _main_queue() -> tuple[str, dict[str, Any]]:
    """The queue with a redrive policy (the other one is its dead-letter queue)."""
    [(name, queue)] = [
        (n, q["Properties"])
        for n, q in _resources("AWS::SQS::Queue").items()
        if "RedrivePolicy" in q["Properties"]
    ]
    return name, queue


@functools.cache
def _terraform() -> dict[str, Any]:
    """All of deploy/events/terraform/*.tf as one document: blocks of the same kind
    from every file merged, strings without their quotes, references as "${...}"."""
    options = hcl2.SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    merged: dict[str, Any] = {
        "resource": {},
        "data": {},
        "locals": {},
        "variable": {},
        "output": {},
    }
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open(encoding="utf-8") as file:
            document = hcl2.load(file, serialization_options=options)
        for kind, blocks in document.items():
            for block in blocks:
                if kind in ("resource", "data"):
                    for type_, named in block.items():
                        merged[kind].setdefault(type_, {}).update(named)
                elif kind in merged:
                    merged[kind].update(block)
                else:
                    merged.setdefault(kind, []).append(block)
    return merged


def _tf_resource(type_: str) -> tuple[str, dict[str, Any]]:
    [(name, body)] = _terraform()["resource"][type_].items()
    return name, body


def _ref(expression: str) -> str:
    """The reference inside a Terraform interpolation: "${a.b.c}" -> "a.b.c"."""
    found = re.fullmatch(r"\$\{(.+)\}", expression)
    assert found, f"{expression!r} is not a single reference"
    return found.group(1)


def _matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's matching of an event pattern made of exact values only.

    From Amazon EventBridge User Guide, "Event pattern syntax"
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern.html):
    every field the pattern names must be in the event, at the same nesting (fields
    are ANDed); a field's value in the pattern is an array of alternatives (ORed), each
    matched exactly, character for character. From "Matching multiple values"
    (eb-event-patterns-arrays.html): when the event's value is an array, the field
    matches if the two arrays share a value. Content filters (prefix, anything-but,
    numeric ...) are not implemented: a pattern that uses one is refused rather than
    misjudged.
    """
    for field, wanted in pattern.items():
        if field not in event:
            return False
        value = event[field]
        if isinstance(wanted, dict):
            if not isinstance(value, dict) or not _matches(wanted, value):
                return False
            continue
        assert isinstance(wanted, list), f"{field}: a pattern value is an object or an array"
        assert wanted, f"{field}: EventBridge refuses an empty array"
        for alternative in wanted:
            assert not isinstance(alternative, dict | list), (
                f"{field}: content filter {alternative!r} is beyond this matcher"
            )
        values = value if isinstance(value, list) else [value]
        if not any(v == w and type(v) is type(w) for v in values for w in wanted):
            return False
    return True


def _policy(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _sqs_statements(path: Path) -> list[dict[str, Any]]:
    return [
        statement
        for statement in _policy(path)["Statement"]
        if any(action.startswith("sqs:") for action in _as_list(statement["Action"]))
    ]


def _default_queue_name() -> str:
    cloudformation = _template()["Parameters"]["NamePrefix"]["Default"]
    terraform = _terraform()["variable"]["name_prefix"]["default"]
    assert cloudformation == terraform
    assert isinstance(cloudformation, str)
    return cloudformation


def _cfn_lint() -> str:
    found = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    assert found, "cfn-lint is missing: pip install -e '.[test]'"
    return found


def _run_cfn_lint(templates: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint on `templates` for every Region it knows, informational rules included,
    away from any .cfnlintrc so that only the templates decide."""
    return subprocess.run(
        [
            _cfn_lint(),
            "--format",
            "parseable",
            "--regions",
            "ALL_REGIONS",
            "--include-checks",
            "I",
            "--",
            *map(str, templates),
        ],
        cwd=cwd,
        env={"HOME": str(cwd), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --------------------------------------------------------------------- CloudFormation


@dataclass(frozen=True)
class Linted:
    """One cfn-lint run over the shipped template and a broken copy of it."""

    broken: str
    """The broken copy's text."""
    returncode: int
    findings: dict[str, list[str]]
    """The parseable lines ("path:line:column:...:rule:message") by template: "shipped"
    and "broken"."""
    stderr: str


@pytest.fixture(scope="module")
def linted(tmp_path_factory: pytest.TempPathFactory) -> Linted:
    """cfn-lint once for the two tests below: a run costs seconds (its start-up and its
    schemas of every Region), and one run over two templates reports each finding under
    its template's path, as a run per template would. Its exit code ORs together the
    levels of the findings (cfn-lint's README, "Exit Codes"; 0: no issue found), so
    no finding under the shipped template is what its own run's exit code 0 says."""
    cwd = tmp_path_factory.mktemp("cfn-lint")
    text = TEMPLATE.read_text(encoding="utf-8")
    broken = text.replace("VisibilityTimeout: 60", "VisibilityTimeout: 50000").replace(
        "      ReceiveMessageWaitTimeSeconds:", "      ReceiveMessageWaitSeconds:"
    )
    path = cwd / "broken.yaml"
    path.write_text(broken, encoding="utf-8")
    result = _run_cfn_lint([TEMPLATE, path], cwd)
    lines = result.stdout.splitlines()
    findings = {
        name: [line for line in lines if line.startswith(f"{template}:")]
        for name, template in (("shipped", TEMPLATE), ("broken", path))
    }
    assert len(lines) == sum(map(len, findings.values())), lines  # nothing else printed
    return Linted(broken, result.returncode, findings, result.stderr)


def test_template_passes_cfn_lint(linted: Linted) -> None:
    """No finding at any level (error, warning, informational), in any Region."""
    assert (linted.findings["shipped"], linted.stderr) == ([], "")


def test_cfn_lint_finds_a_broken_template(linted: Linted) -> None:
    """The lint above really checks the resource schemas: a misspelt property and an
    out-of-range value are both reported."""
    assert linted.broken != TEMPLATE.read_text(encoding="utf-8")
    assert linted.returncode != 0
    found = "\n".join(linted.findings["broken"])
    assert ":E3002:" in found  # ReceiveMessageWaitSeconds is no property
    assert ":E3034:" in found  # 50000 > 43200, the most VisibilityTimeout takes


def test_template_has_the_queue_the_dead_letter_queue_the_rule_and_the_policy() -> None:
    kinds = sorted(resource["Type"] for resource in _template()["Resources"].values())
    assert kinds == [
        "AWS::Events::Rule",
        "AWS::SQS::Queue",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
    ]


def test_template_redrives_the_queue_to_the_dead_letter_queue() -> None:
    queues = _resources("AWS::SQS::Queue")
    main, queue = _main_queue()
    [dead_letter] = set(queues) - {main}
    redrive = queue["RedrivePolicy"]
    assert redrive == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letter, "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert _template()["Parameters"]["MaxReceiveCount"]["Default"] == 5
    assert "RedrivePolicy" not in queues[dead_letter]["Properties"]


def test_template_dead_letter_queue_outlasts_the_queue() -> None:
    """A standard queue's message keeps its enqueue time in the dead-letter queue, so
    the dead-letter queue's retention must be the longer (SQS Developer Guide,
    "Setting-up dead-letter queue retention")."""
    parameters = _template()["Parameters"]["MessageRetentionSeconds"]
    queues = {
        "RedrivePolicy" in q["Properties"]: q["Properties"]
        for q in _resources("AWS::SQS::Queue").values()
    }
    assert queues[True]["MessageRetentionPeriod"] == {"Ref": "MessageRetentionSeconds"}
    assert queues[False]["MessageRetentionPeriod"] == parameters["MaxValue"] == 1209600
    assert parameters["Default"] < 1209600


def test_template_queues_are_encrypted_and_long_polled() -> None:
    for properties in (q["Properties"] for q in _resources("AWS::SQS::Queue").values()):
        assert properties["SqsManagedSseEnabled"] is True
        assert "KmsMasterKeyId" not in properties  # EventBridge would need a key policy
    _, queue = _main_queue()
    assert queue["ReceiveMessageWaitTimeSeconds"] == 20
    assert queue["VisibilityTimeout"] == 60


def test_template_rule_targets_the_queue_without_a_role() -> None:
    """SQS targets are authorised by the queue policy; EventBridge's guide says not to
    give them a RoleArn."""
    queue, _ = _main_queue()
    _, rule = _one("AWS::Events::Rule")
    assert rule["State"] == "ENABLED"
    assert "EventBusName" not in rule  # the default bus, where AWS services send
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert set(target) == {"Id", "Arn"}


def test_template_policy_lets_only_the_rule_send_to_the_queue() -> None:
    queue, _ = _main_queue()
    rule, _ = _one("AWS::Events::Rule")
    _, policy = _one("AWS::SQS::QueuePolicy")
    assert policy["Queues"] == [{"Ref": queue}]
    document = policy["PolicyDocument"]
    assert document["Version"] == "2012-10-17"
    [statement] = document["Statement"]
    assert statement == {
        "Sid": statement["Sid"],
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": [queue, "Arn"]},
        "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule, "Arn"]}}},
    }


def test_template_outputs_what_the_daemon_and_the_operator_need() -> None:
    queue, _ = _main_queue()
    rule, _ = _one("AWS::Events::Rule")
    [dead_letter] = set(_resources("AWS::SQS::Queue")) - {queue}
    outputs = {name: output["Value"] for name, output in _template()["Outputs"].items()}
    assert outputs == {
        "QueueUrl": {"Ref": queue},  # Ref of an AWS::SQS::Queue is its URL
        "QueueArn": {"Fn::GetAtt": [queue, "Arn"]},
        "DeadLetterQueueUrl": {"Ref": dead_letter},
        "RuleArn": {"Fn::GetAtt": [rule, "Arn"]},
    }
    assert "queue_url" in _template()["Outputs"]["QueueUrl"]["Description"]


# ------------------------------------------------- the template, deployed into moto


@pytest.fixture
def moto_clients(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """botocore clients of CloudFormation, EventBridge and SQS, all pointed at one moto
    server on 127.0.0.1; proxies from the environment are not used for it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    session = botocore.session.get_session()
    config = Config(retries={"total_max_attempts": 1})
    clients = {
        service: session.create_client(
            service,
            region_name="us-east-1",
            endpoint_url=moto,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="not-a-secret",
            config=config,
        )
        for service in ("cloudformation", "events", "sqs")
    }
    yield clients
    for client in clients.values():
        client.close()


def _put(events: Any, event: Mapping[str, Any]) -> None:
    response = events.put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Resources": event["resources"],
                "Detail": json.dumps(event["detail"]),
            }
        ]
    )
    assert response["FailedEntryCount"] == 0


def test_deployed_template_delivers_state_changes_to_the_output_queue(
    moto_clients: dict[str, Any],
) -> None:
    """Deployed with its defaults, the stack's rule sends a state-change event to the
    queue QueueUrl names, and leaves another Image Builder event out."""
    cloudformation, events, sqs = (moto_clients[s] for s in ("cloudformation", "events", "sqs"))
    with warnings.catch_warnings():
        # moto's CloudFormation creates no AWS::SQS::QueuePolicy: it warns (in its server
        # thread) and skips it. The policy is checked above, resource by resource.
        warnings.filterwarnings(
            "ignore", message="Tried to parse AWS::SQS::QueuePolicy", category=UserWarning
        )
        cloudformation.create_stack(
            StackName="ibwatch-events", TemplateBody=TEMPLATE.read_text(encoding="utf-8")
        )
    [stack] = cloudformation.describe_stacks(StackName="ibwatch-events")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    name = _default_queue_name()
    # moto answers with AWS-shaped URLs; the loopback one is asked for by name, so
    # nothing is ever sent to the URL the stack reports.
    assert outputs["QueueUrl"].endswith(f"/{name}")
    assert outputs["DeadLetterQueueUrl"].endswith(f"/{name}-dlq")
    queue_url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    assert queue_url.startswith("http://127.0.0.1:")

    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == outputs["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": outputs["QueueArn"] + "-dlq",
        "maxReceiveCount": 5,
    }
    [target] = events.list_targets_by_rule(Rule=outputs["RuleArn"].rsplit("/", 1)[1])["Targets"]
    assert target["Arn"] == outputs["QueueArn"]

    _put(events, CVE_DETECTED_EVENT)
    _put(events, STATE_CHANGE_EVENT)
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    [message] = received["Messages"]
    body = json.loads(message["Body"])
    assert body["detail-type"] == STATE_CHANGE
    assert body["resources"][0] == BUILD_ARN
    assert body["detail"] == STATE_CHANGE_EVENT["detail"]


# -------------------------------------------------------------------------- Terraform


def test_terraform_pins_the_aws_provider_major_version() -> None:
    [terraform] = _terraform()["terraform"]
    [providers] = terraform["required_providers"]
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> \d+\.0", providers["aws"]["version"])
    assert terraform["required_version"].startswith(">=")


def test_terraform_declares_the_same_resources_as_the_template() -> None:
    resources = _terraform()["resource"]
    assert {type_: len(named) for type_, named in resources.items()} == {
        "aws_sqs_queue": 2,
        "aws_cloudwatch_event_rule": 1,
        "aws_cloudwatch_event_target": 1,
        "aws_sqs_queue_policy": 1,
    }
    assert set(_terraform()["data"]) == {"aws_iam_policy_document"}


def test_terraform_redrives_the_queue_to_the_dead_letter_queue() -> None:
    queues = _terraform()["resource"]["aws_sqs_queue"]
    [main] = [name for name, queue in queues.items() if "redrive_policy" in queue]
    [dead_letter] = set(queues) - {main}
    redrive = " ".join(queues[main]["redrive_policy"].split())
    assert redrive == (
        "${jsonencode({"
        f"deadLetterTargetArn = aws_sqs_queue.{dead_letter}.arn, "
        "maxReceiveCount = var.max_receive_count"
        "})}"
    )
    assert _terraform()["variable"]["max_receive_count"]["default"] == 5


def test_terraform_queues_match_the_template_settings() -> None:
    """Same names, retention, encryption, polling and visibility as cloudformation.yaml."""
    queues = _terraform()["resource"]["aws_sqs_queue"]
    [main] = [queue for queue in queues.values() if "redrive_policy" in queue]
    [dead_letter] = [queue for queue in queues.values() if "redrive_policy" not in queue]
    _, template_queue = _main_queue()
    variables = _terraform()["variable"]
    parameters = _template()["Parameters"]

    assert main["name"] == "${var.name_prefix}"
    assert dead_letter["name"] == "${var.name_prefix}-dlq"
    assert main["message_retention_seconds"] == "${var.message_retention_seconds}"
    assert (
        variables["message_retention_seconds"]["default"]
        == parameters["MessageRetentionSeconds"]["Default"]
    )
    assert dead_letter["message_retention_seconds"] == 1209600
    assert main["visibility_timeout_seconds"] == template_queue["VisibilityTimeout"]
    assert main["receive_wait_time_seconds"] == template_queue["ReceiveMessageWaitTimeSeconds"]
    for queue in (main, dead_letter):
        assert queue["sqs_managed_sse_enabled"] is True
        assert "kms_master_key_id" not in queue


def test_terraform_rule_targets_the_queue_without_a_role() -> None:
    queue = next(
        n for n, q in _terraform()["resource"]["aws_sqs_queue"].items() if "redrive_policy" in q
    )
    rule_name, rule = _tf_resource("aws_cloudwatch_event_rule")
    _, target = _tf_resource("aws_cloudwatch_event_target")
    assert rule["name"] == "${var.name_prefix}-image-state"
    assert rule["state"] == "ENABLED"
    assert "event_bus_name" not in rule
    assert _ref(target["rule"]) == f"aws_cloudwatch_event_rule.{rule_name}.name"
    assert _ref(target["arn"]) == f"aws_sqs_queue.{queue}.arn"
    assert "role_arn" not in target


def test_terraform_policy_lets_only_the_rule_send_to_the_queue() -> None:
    queue = next(
        n for n, q in _terraform()["resource"]["aws_sqs_queue"].items() if "redrive_policy" in q
    )
    rule_name, _ = _tf_resource("aws_cloudwatch_event_rule")
    _, queue_policy = _tf_resource("aws_sqs_queue_policy")
    [(document_name, document)] = _terraform()["data"]["aws_iam_policy_document"].items()

    assert _ref(queue_policy["queue_url"]) == f"aws_sqs_queue.{queue}.url"
    assert _ref(queue_policy["policy"]) == f"data.aws_iam_policy_document.{document_name}.json"
    assert document["version"] == "2012-10-17"
    [statement] = document["statement"]
    assert statement["effect"] == "Allow"
    assert statement["actions"] == ["sqs:SendMessage"]
    assert [_ref(r) for r in statement["resources"]] == [f"aws_sqs_queue.{queue}.arn"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["events.amazonaws.com"]}]
    [condition] = statement["condition"]
    assert (condition["test"], condition["variable"]) == ("ArnEquals", "aws:SourceArn")
    assert [_ref(v) for v in condition["values"]] == [f"aws_cloudwatch_event_rule.{rule_name}.arn"]


def test_terraform_outputs_match_the_template_outputs() -> None:
    outputs = _terraform()["output"]
    queues = _terraform()["resource"]["aws_sqs_queue"]
    [main] = [n for n, q in queues.items() if "redrive_policy" in q]
    [dead_letter] = set(queues) - {main}
    rule_name, _ = _tf_resource("aws_cloudwatch_event_rule")
    assert {name: _ref(output["value"]) for name, output in outputs.items()} == {
        "queue_url": f"aws_sqs_queue.{main}.url",
        "queue_arn": f"aws_sqs_queue.{main}.arn",
        "dead_letter_queue_url": f"aws_sqs_queue.{dead_letter}.url",
        "rule_arn": f"aws_cloudwatch_event_rule.{rule_name}.arn",
    }
    assert {re.sub(r"_", "", name) for name in outputs} == {
        name.lower() for name in _template()["Outputs"]
    }


def test_terraform_variables_have_the_template_defaults_and_limits() -> None:
    variables = _terraform()["variable"]
    parameters = _template()["Parameters"]
    pairs = {
        "name_prefix": "NamePrefix",
        "message_retention_seconds": "MessageRetentionSeconds",
        "max_receive_count": "MaxReceiveCount",
    }
    for variable, parameter in pairs.items():
        assert variables[variable]["default"] == parameters[parameter]["Default"], variable
        assert variables[variable]["validation"], f"{variable}: validate like the template"


# ---------------------------------------------------------------------- the pattern


def _cloudformation_pattern() -> dict[str, Any]:
    _, rule = _one("AWS::Events::Rule")
    pattern = rule["EventPattern"]
    assert isinstance(pattern, dict)
    return pattern


def test_both_define_the_same_event_pattern() -> None:
    _, rule = _tf_resource("aws_cloudwatch_event_rule")
    assert rule["event_pattern"] == "${jsonencode(local.event_pattern)}"
    assert _terraform()["locals"]["event_pattern"] == _cloudformation_pattern()


def test_pattern_is_image_builder_state_changes_and_nothing_more() -> None:
    assert _cloudformation_pattern() == {
        "source": ["aws.imagebuilder"],
        "detail-type": [STATE_CHANGE],
    }


def test_pattern_matches_the_documented_state_change_event() -> None:
    assert _matches(_cloudformation_pattern(), STATE_CHANGE_EVENT)


@pytest.mark.parametrize(
    "status",
    botocore.session.get_session().get_service_model("imagebuilder").shape_for("ImageStatus").enum,
)
def test_pattern_matches_a_state_change_to_any_status(status: str) -> None:
    """No status is filtered out: every transition is worth a poll."""
    event = {**STATE_CHANGE_EVENT, "detail": {"state": {"status": status}}}
    assert _matches(_cloudformation_pattern(), event)


def test_pattern_leaves_out_other_image_builder_events() -> None:
    assert not _matches(_cloudformation_pattern(), CVE_DETECTED_EVENT)


def test_pattern_leaves_out_the_same_detail_type_from_another_source() -> None:
    """A custom event copying the detail-type is not Image Builder's."""
    forged = {**STATE_CHANGE_EVENT, "source": "custom.imagebuilder"}
    assert not _matches(_cloudformation_pattern(), forged)


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        # The Image Builder User Guide's "notify on image completion" pattern.
        (
            {
                "source": ["aws.imagebuilder"],
                "detail": {"state": {"status": ["AVAILABLE", "FAILED"]}},
            },
            STATE_CHANGE_EVENT,
            True,
        ),
        (
            {"detail": {"state": {"status": ["FAILED"]}}},
            STATE_CHANGE_EVENT,
            False,
        ),
        ({"detail-type": [STATE_CHANGE.lower()]}, STATE_CHANGE_EVENT, False),
        ({"resources": [BUILD_ARN]}, STATE_CHANGE_EVENT, True),
        ({"detail": {"state": {"reason": ["x"]}}}, STATE_CHANGE_EVENT, False),
        ({"detail": {"finding-severity-counts": {"critical": [0]}}}, CVE_DETECTED_EVENT, True),
    ],
    ids=[
        "nested-alternatives",
        "nested-mismatch",
        "case-sensitive",
        "array-intersects",
        "absent-field",
        "number",
    ],
)
def test_matcher_follows_eventbridge_exact_matching(
    pattern: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    assert _matches(pattern, event) is expected


# ------------------------------------------------------------------------------ IAM


def test_events_iam_policy_is_exactly_the_three_queue_actions() -> None:
    policy = _policy(EVENTS_POLICY)
    assert set(policy) == {"Version", "Statement"}
    assert policy["Version"] == "2012-10-17"
    [statement] = policy["Statement"]
    assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == sorted(QUEUE_ACTIONS)
    assert len(statement["Action"]) == len(QUEUE_ACTIONS)


def test_events_iam_policy_names_the_default_queue_in_any_region_and_account() -> None:
    """The queue both templates create by default; the dead-letter queue is not granted."""
    [statement] = _policy(EVENTS_POLICY)["Statement"]
    assert statement["Resource"] == f"arn:aws:sqs:*:*:{_default_queue_name()}"


def test_events_iam_actions_are_sqs_operations() -> None:
    model = botocore.session.get_session().get_service_model("sqs")
    assert {action.removeprefix("sqs:") for action in QUEUE_ACTIONS} <= set(model.operation_names)


def test_daemon_iam_policy_carries_the_events_statement_and_no_other_sqs_grant() -> None:
    [statement] = _policy(EVENTS_POLICY)["Statement"]
    assert _sqs_statements(DAEMON_POLICY) == [statement]


def test_ci_iam_policy_has_no_sqs_grant() -> None:
    assert _sqs_statements(CI_POLICY) == []


# --------------------------------------------------------------------------- README


def _push_path_section() -> str:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    found = re.search(r"\n## The push path\n(.*?)(?=\n## |\Z)", readme, re.DOTALL)
    assert found, "deploy/README.md has no '## The push path' section"
    return found.group(1)


def test_deploy_readme_explains_the_push_path_wiring() -> None:
    section = _push_path_section()
    for path in (TEMPLATE, TERRAFORM, EVENTS_POLICY):
        assert str(path.relative_to(ROOT)) in section
    assert "[events]" in section
    assert "queue_url" in section
    for action in QUEUE_ACTIONS:
        assert action in section
    assert "maxReceiveCount" in section
    assert "dead-letter queue" in section


def test_deploy_readme_deploy_command_uses_the_template() -> None:
    commands = " ".join(_push_path_section().split())
    found = re.search(r"aws cloudformation deploy [^`]*--template-file (\S+)", commands)
    assert found, "no `aws cloudformation deploy ... --template-file` command"
    assert (ROOT / found.group(1)).resolve() == TEMPLATE
