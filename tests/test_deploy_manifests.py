"""The deployment files, checked offline: Dockerfile, docker-compose.yml and deploy/k8s.

No Docker, kubectl or kustomize here: kustomizations are built by a small interpreter that covers
what deploy/k8s uses (resources, namespace, images, strategic-merge and JSON 6902 patches) and
fails on anything it does not understand. The service table comes from the code itself (settings
classes and pyproject.toml), so the manifests cannot drift from the services silently.
"""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from modyard.common.settings import ServiceSettings
from modyard.deployer.settings import DeployerSettings
from modyard.gateway.settings import GatewaySettings
from modyard.installer.settings import InstallerSettings
from modyard.registry.settings import RegistrySettings
from modyard.runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "production": K8S / "overlays" / "production"}
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

Manifest = dict[str, Any]

SETTINGS: dict[str, type[ServiceSettings]] = {
    "registry": RegistrySettings,
    "installer": InstallerSettings,
    "runtime": RuntimeSettings,
    "appcell-gateway": GatewaySettings,
    "deployer": DeployerSettings,
}
EXPECTED_PORTS = {
    "registry": 8001,
    "installer": 8002,
    "runtime": 8003,
    "appcell-gateway": 8004,
    "deployer": 8005,
}
SECRET_KEYS = {"database-url", "amqp-url", "jwt-secret"}
CLUSTER_SCOPED = {"Namespace"}


@dataclass(frozen=True)
class Service:
    name: str  # registry, ..., appcell-gateway
    port: int
    distribution: str  # pyproject [project].name
    script: str  # its console script
    env_key: str  # MODYARD_<env_key>_*

    @property
    def k8s_name(self) -> str:
        return f"modyard-{self.name}"

    @property
    def image(self) -> str:
        return f"modyard/{self.name}"


def _service(name: str) -> Service:
    settings = SETTINGS[name]
    project = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())["project"]
    (script,) = project["scripts"]
    prefix = str(settings.model_config.get("env_prefix"))
    env_key = prefix.removeprefix("MODYARD_").removesuffix("_")
    return Service(name, settings.default_port, project["name"], script, env_key)


SERVICES = [_service(name) for name in SETTINGS]
service_param = pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)


# --- a small kustomize -------------------------------------------------------------------------


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_kustomization(directory: Path) -> Manifest:
    path = directory / "kustomization.yaml"
    document: Manifest = yaml.safe_load(path.read_text())
    assert document.get("kind", "Kustomization") == "Kustomization", path
    known = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
    assert set(document) <= known, (
        f"{path}: the test's kustomize does not know {set(document) - known}"
    )
    return document


def referenced_paths(directory: Path) -> list[Path]:
    """Every file or directory a kustomization points at."""
    kustomization = load_kustomization(directory)
    paths = [directory / entry for entry in kustomization.get("resources", [])]
    paths += [
        directory / patch["path"] for patch in kustomization.get("patches", []) if "path" in patch
    ]
    return paths


def _matches(resource: Manifest, target: Manifest) -> bool:
    metadata = resource.get("metadata", {})
    if "kind" in target and resource.get("kind") != target["kind"]:
        return False
    if "name" in target and metadata.get("name") != target["name"]:
        return False
    for requirement in filter(None, target.get("labelSelector", "").split(",")):
        key, _, value = requirement.partition("=")
        if metadata.get("labels", {}).get(key.strip()) != value.strip():
            return False
    return True


def _pointer(document: Any, path: str) -> tuple[Any, str | int]:
    parts = [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]
    node = document
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    return node, (int(last) if isinstance(node, list) and last != "-" else last)


def apply_json6902(resource: Manifest, operations: list[Manifest]) -> None:
    for operation in operations:
        parent, key = _pointer(resource, operation["path"])
        if operation["op"] == "replace":
            assert key in parent if isinstance(parent, dict) else 0 <= int(key) < len(parent), (
                f"replace of missing {operation['path']} in {resource['metadata']['name']}"
            )
            parent[key] = copy.deepcopy(operation["value"])
        elif operation["op"] == "add":
            if isinstance(parent, list):
                parent.insert(
                    len(parent) if key == "-" else int(key), copy.deepcopy(operation["value"])
                )
            else:
                parent[key] = copy.deepcopy(operation["value"])
        elif operation["op"] == "remove":
            del parent[key]
        else:
            raise AssertionError(f"unsupported JSON patch op {operation['op']}")


def strategic_merge(target: Any, patch: Any) -> Any:
    """Dicts merge recursively; lists of named items merge by name; anything else is replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = strategic_merge(target[key], value) if key in target else value
        return merged
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in [*target, *patch])
    ):
        by_name = {item["name"]: item for item in target}
        for item in patch:
            by_name[item["name"]] = strategic_merge(by_name.get(item["name"], {}), item)
        return list(by_name.values())
    return copy.deepcopy(patch)


def image_name(reference: str) -> str:
    """``host:5000/a/b:tag`` or ``a/b@sha256:...`` -> the name without tag or digest."""
    name = reference.partition("@")[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _pod_containers(resource: Manifest) -> list[Manifest]:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


@cache
def _build(directory: Path) -> tuple[Manifest, ...]:
    kustomization = load_kustomization(directory)
    resources: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources += list(_build(path.resolve())) if path.is_dir() else load_documents(path)
    resources = copy.deepcopy(resources)

    for patch in kustomization.get("patches", []):
        body = (
            load_documents(directory / patch["path"])[0]
            if "path" in patch
            else yaml.safe_load(patch["patch"])
        )
        if isinstance(body, list):
            target = patch["target"]
        else:
            target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
        matched = [index for index, resource in enumerate(resources) if _matches(resource, target)]
        assert matched, f"{directory}: patch {patch} matches no resource"
        for index in matched:
            if isinstance(body, list):
                apply_json6902(resources[index], body)
            else:
                resources[index] = strategic_merge(resources[index], body)

    for image in kustomization.get("images", []):
        used = False
        for resource in resources:
            for container in _pod_containers(resource):
                name = image_name(container["image"])
                if name == image["name"]:
                    used = True
                    tag = container["image"].removeprefix(name).lstrip(":")
                    new_name = image.get("newName", name)
                    container["image"] = (
                        f"{new_name}@{image['digest']}"
                        if "digest" in image
                        else f"{new_name}:{image.get('newTag', tag)}"
                    )
        assert used, f"{directory}: images entry {image['name']} matches no container"

    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] == "Namespace":  # kustomize renames the Namespace object too
                resource["metadata"]["name"] = kustomization["namespace"]
            elif resource["kind"] not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return tuple(resources)


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
    assert set(secret["stringData"]) == SECRET_KEYS


# --- base: one set of objects per service --------------------------------------------------------


@service_param
def test_base_has_deployment_service_pdb_hpa_and_migration_job_per_service(
    service: Service,
) -> None:
    resources = build(BASE)
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        find(resources, kind, service.k8s_name)
    find(resources, "Job", f"{service.k8s_name}-migrate")


@service_param
def test_service_pdb_and_hpa_target_the_server_pods_and_not_the_migration_pods(
    service: Service,
) -> None:
    resources = build(BASE)
    deployment = find(resources, "Deployment", service.k8s_name)
    job = find(resources, "Job", f"{service.k8s_name}-migrate")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
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
    target = find(resources, "HorizontalPodAutoscaler", service.k8s_name)["spec"]["scaleTargetRef"]
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


@service_param
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
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


@build_param
def test_pods_disable_service_links_that_would_clobber_port_settings(build_dir: Path) -> None:
    # A Service named modyard-registry would otherwise inject MODYARD_REGISTRY_PORT=tcp://...
    for resource in build(build_dir):
        if resource["kind"] in ("Deployment", "Job"):
            assert pod_spec(resource).get("enableServiceLinks") is False, resource["metadata"][
                "name"
            ]


@build_param
def test_pods_read_secrets_only_from_modyard_secrets(build_dir: Path) -> None:
    resources = build(build_dir)
    config_maps = {r["metadata"]["name"] for r in resources if r["kind"] == "ConfigMap"}
    for resource in resources:
        if resource["kind"] not in ("Deployment", "Job"):
            continue
        for container in _pod_containers(resource):
            refs = {
                item["name"]: item["valueFrom"]["secretKeyRef"]
                for item in container.get("env", [])
                if "secretKeyRef" in item.get("valueFrom", {})
            }
            assert {ref["name"] for ref in refs.values()} == {"modyard-secrets"}
            assert {ref["key"] for ref in refs.values()} <= SECRET_KEYS
            assert refs["MODYARD_DATABASE_URL"]["key"] == "database-url"
            if resource["kind"] == "Deployment":
                assert {ref["key"] for ref in refs.values()} == SECRET_KEYS
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
def test_server_containers_probe_healthz_for_liveness_and_readyz_for_readiness(
    build_dir: Path,
) -> None:
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


@build_param
def test_every_container_has_requests_and_limits_and_runs_locked_down(build_dir: Path) -> None:
    workloads = [r for r in build(build_dir) if r["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 2 * len(SERVICES)
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod_security = pod_spec(workload).get("securityContext", {})
        for container in _pod_containers(workload):
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (name, bound)
            security = container["securityContext"]
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security.get("runAsUser", pod_security.get("runAsUser", 1)) != 0, name


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
    assert {image_name(image) for image in images} == {s.image for s in SERVICES}
    for image in images:
        assert image != image_name(image), f"{image} has neither tag nor digest"
        assert not image.endswith(":latest"), image


@pytest.mark.parametrize(("overlay", "min_replicas"), [("dev", 1), ("production", 2)])
def test_overlay_autoscaling_keeps_enough_replicas_for_the_disruption_budget(
    overlay: str, min_replicas: int
) -> None:
    resources = build(OVERLAYS[overlay])
    for service in SERVICES:
        hpa = find(resources, "HorizontalPodAutoscaler", service.k8s_name)["spec"]
        assert min_replicas <= hpa["minReplicas"] <= hpa["maxReplicas"]
        pdb = find(resources, "PodDisruptionBudget", service.k8s_name)["spec"]
        if "minAvailable" in pdb:
            assert int(pdb["minAvailable"]) < hpa["minReplicas"], "the PDB would block every drain"


# --- docker-compose --------------------------------------------------------------------------


@cache
def _compose() -> Manifest:
    document: Manifest = yaml.safe_load(COMPOSE.read_text())
    return document


def test_compose_defines_the_five_services_and_their_infrastructure() -> None:
    assert set(_compose()["services"]) == {*SETTINGS, "postgres", "rabbitmq"}


def test_compose_publishes_ports_on_localhost_only() -> None:
    services = _compose()["services"]
    for name, definition in services.items():
        for port in definition.get("ports", []):
            assert isinstance(port, str), f"{name}: use the 'host_ip:host:container' string form"
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    for service in SERVICES:
        published = services[service.name]["ports"]
        assert published == [f"127.0.0.1:{service.port}:{service.port}"]


@service_param
def test_compose_builds_every_service_from_the_one_dockerfile(service: Service) -> None:
    build_spec = _compose()["services"][service.name]["build"]
    context = (COMPOSE.parent / build_spec["context"]).resolve()
    assert (context / build_spec.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert build_spec["args"]["SERVICE"] == service.name


@service_param
def test_compose_service_listens_on_all_interfaces_after_healthy_infrastructure(
    service: Service,
) -> None:
    compose = _compose()
    definition = compose["services"][service.name]
    assert definition["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "rabbitmq": {"condition": "service_healthy"},
    }
    env = definition["environment"]
    assert env[f"MODYARD_{service.env_key}_HOST"] == "0.0.0.0"
    assert str(env[f"MODYARD_{service.env_key}_PORT"]) == str(service.port)
    assert env["MODYARD_JWT_SECRET"], "every service must share one JWT secret"
    for other in SERVICES:
        url = urlsplit(env[f"MODYARD_{other.env_key}_URL"])
        assert (url.hostname, url.port) == (other.name, other.port)


def test_compose_infrastructure_matches_the_urls_the_services_use() -> None:
    services = _compose()["services"]
    env = services["registry"]["environment"]
    postgres, rabbitmq = services["postgres"], services["rabbitmq"]
    for infra in (postgres, rabbitmq):
        assert infra["healthcheck"]["test"], "depends_on service_healthy needs a healthcheck"
        assert infra["volumes"], "data must survive a container re-creation"
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


# --- Dockerfile ------------------------------------------------------------------------------


def _dockerfile() -> str:
    return DOCKERFILE.read_text()


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


def test_dockerfile_syncs_the_locked_environment_and_runs_as_non_root() -> None:
    text = _dockerfile()
    assert re.search(r"^ARG SERVICE=registry$", text, re.MULTILINE)
    assert "uv sync --frozen --no-dev" in text
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in text
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    runtime = stages[-1]
    users = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert users, "the runtime stage must switch user"
    assert users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r'^CMD \["serve"\]$', runtime, re.MULTILINE)


def test_dockerfile_healthcheck_probes_healthz_on_each_service_port() -> None:
    healthcheck = re.search(r"^HEALTHCHECK .*?(?<!\\)$", _dockerfile(), re.MULTILINE | re.DOTALL)
    assert healthcheck
    assert "/healthz" in healthcheck.group(0)
    ports = re.search(r"\{'registry': \d+.*?\}", healthcheck.group(0))
    assert ports
    assert ast.literal_eval(ports.group(0)) == {s.name: s.port for s in SERVICES}


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context() -> None:
    patterns = {
        line.strip().removeprefix("**/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".run", ".env", "__pycache__"} <= patterns
