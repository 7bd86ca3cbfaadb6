"""The high-availability variants of deploy/: deploy/kubernetes/ha (two replicas on a
PostgreSQL database) and compose.yaml's profile "ha". Valid against the Kubernetes
schemas, loadable by this ibwatch, wired across files, and otherwise the same as the
single-replica files they stand beside (so the two cannot drift apart unseen).
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.deploy.test_deploy_files import (
    COMPOSE,
    DEPLOY,
    KUBERNETES,
    KUBERNETES_VERSIONS,
    _bind_mounts,
    _dummy_env,
    _secret_variables,
)
from watcher.config import Config, ConfigError, from_mapping

HA = KUBERNETES / "ha"
MANIFESTS = sorted(p for p in HA.glob("*.yaml") if p.name != "kustomization.yaml")
DATABASE_URL = "postgresql://ibwatch:dummy-password@db.example.invalid:5432/ibwatch"
SAME_AS_BASE = ("serviceaccount.yaml", "service.yaml")


def _manifest(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path}: expected one YAML document"
    return document


def _toml(configmap: Path) -> dict[str, Any]:
    return tomllib.loads(_manifest(configmap)["data"]["watcher.toml"])


def _config(document: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    """The ConfigMap's config as ibwatch loads it, secrets stood in for."""
    state_env = document["state"]["url_env"]
    return from_mapping(
        document,
        "ha/configmap.yaml",
        env={**_dummy_env(document), state_env: DATABASE_URL, **(env or {})},
    )


def _deployment() -> dict[str, Any]:
    return _manifest(HA / "deployment.yaml")


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in _container(deployment)["env"]}


# ---------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_ha_manifest_is_valid_for_kubernetes(path: Path, version: str) -> None:
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        assert "namespace" not in document["metadata"]
        kubernetes_validate.validate(document, version, strict=True)


def test_ha_kustomization_lists_every_manifest_of_its_directory() -> None:
    kustomization = _manifest(HA / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]
    assert all("/" not in resource for resource in kustomization["resources"])
    assert kustomization["images"] == _manifest(KUBERNETES / "kustomization.yaml")["images"]


@pytest.mark.parametrize("name", SAME_AS_BASE)
def test_ha_shares_the_base_service_account_and_service(name: str) -> None:
    assert _manifest(HA / name) == _manifest(KUBERNETES / name)


def test_ha_deployment_runs_two_replicas_rolling_one_at_a_time_without_a_volume() -> None:
    spec = _deployment()["spec"]
    assert spec["replicas"] == 2
    # A new standby's readiness is only worth something once it had time to find the
    # leader, or to say that nobody leads (after two failovers).
    assert spec["minReadySeconds"] >= 2 * _config(_toml(HA / "configmap.yaml")).ha.failover
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert not any("persistentVolumeClaim" in volume for volume in pod["volumes"])
    mounts = {m["mountPath"] for m in _container(_deployment())["volumeMounts"]}
    assert mounts == {"/etc/ibwatch", "/tmp"}
    assert not (HA / "pvc.yaml").exists()


def test_ha_deployment_is_the_base_one_but_for_replicas_strategy_spread_state_and_database() -> (
    None
):
    """Everything else (image, user, probes, grace, resources, sink secrets) as the
    single-replica deployment has it."""
    ha, base = copy.deepcopy(_deployment()), _manifest(KUBERNETES / "deployment.yaml")
    for spec in (ha["spec"], base["spec"]):
        del spec["replicas"], spec["strategy"]
    del ha["spec"]["minReadySeconds"]
    pod = ha["spec"]["template"]["spec"]
    del pod["topologySpreadConstraints"]
    container = _container(ha)
    container["env"] = [e for e in container["env"] if e["name"] != "IBWATCH_DATABASE_URL"]
    base_pod = base["spec"]["template"]["spec"]
    base_pod["volumes"] = [v for v in base_pod["volumes"] if "persistentVolumeClaim" not in v]
    base_container = _container(base)
    base_container["volumeMounts"] = [
        m for m in base_container["volumeMounts"] if m["mountPath"] != "/var/lib/ibwatch"
    ]
    assert ha == base


def test_ha_config_is_the_base_one_on_a_shared_database() -> None:
    ha, base = _toml(HA / "configmap.yaml"), _toml(KUBERNETES / "configmap.yaml")
    assert {**ha, "state": None, "ha": None} == {**base, "state": None, "ha": None}
    config = _config(ha)
    assert config.state.database_url == DATABASE_URL
    assert set(ha["state"]) == {"url_env"}
    assert config.ha.failover == 15


def test_ha_deployment_fills_the_database_url_and_every_sink_secret_from_the_secret() -> None:
    document = _toml(HA / "configmap.yaml")
    secret = _manifest(HA / "secret.yaml")
    env = _env(_deployment())
    wanted = {document["state"]["url_env"], *_secret_variables(document)}
    assert wanted <= set(env)
    for name in wanted:
        assert env[name]["name"] == secret["metadata"]["name"]
        assert env[name]["key"] in secret["stringData"]


def test_ha_secret_example_url_verifies_the_server_against_the_mounted_ca() -> None:
    """verify-full without sslrootcert looks for ~/.postgresql/root.crt, which the image
    lacks: the example names a file of the mounted ConfigMap instead."""
    text = (HA / "secret.yaml").read_text(encoding="utf-8")
    [example] = [w for w in text.split() if w.startswith("postgresql://") and "@" in w]
    query = dict(parse_qsl(urlsplit(example).query))
    assert query["sslmode"] == "verify-full"
    mount = {m["name"]: m["mountPath"] for m in _container(_deployment())["volumeMounts"]}
    [config_volume] = [
        v for v in _deployment()["spec"]["template"]["spec"]["volumes"] if "configMap" in v
    ]
    assert (
        config_volume["configMap"]["name"] == _manifest(HA / "configmap.yaml")["metadata"]["name"]
    )
    assert query["sslrootcert"].startswith(mount[config_volume["name"]] + "/")


def test_ha_secret_placeholder_for_the_database_stops_ibwatch_at_start() -> None:
    document = _toml(HA / "configmap.yaml")
    variable = document["state"]["url_env"]
    key = _env(_deployment())[variable]["key"]
    placeholder = _manifest(HA / "secret.yaml")["stringData"][key]
    assert "REPLACE-ME" in placeholder
    with pytest.raises(ConfigError) as raised:
        _config(document, env={variable: placeholder})
    assert any(problem.startswith("state.url_env") for problem in raised.value.problems)


def test_ha_disruption_budget_keeps_one_replica_of_the_deployment() -> None:
    budget = _manifest(HA / "poddisruptionbudget.yaml")["spec"]
    deployment = _deployment()["spec"]
    assert budget["selector"] == deployment["selector"]
    assert budget["minAvailable"] == 1 < deployment["replicas"]


def test_ha_replicas_spread_over_nodes() -> None:
    [spread] = _deployment()["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"] == _deployment()["spec"]["selector"]


# ------------------------------------------------------------------------- compose


def _compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    return services


def test_compose_profile_ha_adds_a_database_and_two_watchers_sharing_it() -> None:
    services = _compose_services()
    in_profile = {name for name, service in services.items() if "ha" in service.get("profiles", [])}
    assert in_profile == {"postgres", "watcher-a", "watcher-b"}
    ports = {name: services[name]["ports"] for name in ("watcher", "watcher-a", "watcher-b")}
    published = [port.rsplit(":", 1)[0] for listed in ports.values() for port in listed]
    assert len(published) == len(set(published)), "each watcher on a host port of its own"


def test_compose_postgres_is_the_official_image_with_a_healthcheck() -> None:
    postgres = _compose_services()["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


@pytest.mark.parametrize("name", ["watcher-a", "watcher-b"])
def test_compose_ha_watcher_loads_its_config_and_reaches_the_database(name: str) -> None:
    services = _compose_services()
    watcher, postgres = services[name], services["postgres"]
    [config_path] = [
        source
        for target, source in _bind_mounts(watcher).items()
        if target == "/etc/ibwatch/watcher.toml"
    ]
    assert config_path == DEPLOY / "compose" / "watcher-ha.toml"
    document = tomllib.loads(config_path.read_text(encoding="utf-8"))
    config = from_mapping(document, config_path, env=watcher["environment"])
    assert config.ha.failover == 5
    url = urlsplit(config.state.database_url or "")
    database = postgres["environment"]
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{database['POSTGRES_DB']}")
    assert (url.username, url.password) == (
        database["POSTGRES_USER"],
        database["POSTGRES_PASSWORD"],
    )
    assert watcher["depends_on"]["postgres"] == {"condition": "service_healthy"}
    # The rest as the single watcher's config: the same builds, sinks and server.
    single = tomllib.loads((DEPLOY / "compose" / "watcher.toml").read_text(encoding="utf-8"))
    assert {**document, "state": None, "ha": None} == {**single, "state": None, "ha": None}
