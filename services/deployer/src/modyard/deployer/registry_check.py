"""Asking the image's registry, over its HTTP API, whether the image on this host is still what
the tag names, with the deployment's token.

Docker's own pull does the same for a cached image, but through the daemon and several round
trips (~20 ms here); one ``HEAD /v2/<path>/manifests/<tag>`` with the token answers in a few.
The answer is used only when it is definite: the registry confirms the local digest (no pull
needed), refuses the token, or does not know the tag. Anything else (a Bearer-token registry,
TLS trouble, an unexpected status) returns ``None`` and the daemon's pull decides, so this path
can make a deploy faster but never changes its outcome.
"""

from __future__ import annotations

import httpx

from modyard.common.network import is_loopback
from modyard.deployer.backend import ImageNotFound, RegistryAuthFailed, RegistryCredentials
from modyard.deployer.image_ref import ImageReference

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def registry_base_url(host: str) -> str:
    """Docker's rule: a registry on a loopback address may be plain HTTP; others are HTTPS."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    return f"{'http' if is_loopback(name) else 'https'}://{host}"


async def local_image_is_current(
    http: httpx.AsyncClient,
    reference: ImageReference,
    credentials: RegistryCredentials,
    local_repo_digests: list[str],
) -> bool | None:
    """True: the registry confirms the local image; None: ask the daemon. Raises on a refused
    token or an unknown tag (definite answers)."""
    if reference.digest is not None:
        wanted = reference.digest
    elif reference.tag is not None:
        wanted = reference.tag
    else:
        return None
    url = f"{registry_base_url(reference.host)}/v2/{reference.path}/manifests/{wanted}"
    try:
        response = await http.head(
            url,
            headers={"Accept": MANIFEST_TYPES},
            auth=(credentials.username, credentials.password),
        )
    except httpx.HTTPError:
        return None
    challenge = response.headers.get("WWW-Authenticate", "")
    if response.status_code in (401, 403) and challenge.lower().startswith("basic"):
        raise RegistryAuthFailed(
            f"The registry {credentials.host} refused the token: check token_id and token (the "
            "token needs permission to read the registry), then deploy again."
        )
    if response.status_code == 404:
        raise ImageNotFound(
            f"The image {reference} does not exist in the registry: check the image path and "
            "tag (host/user/repo:version), then deploy again."
        )
    digest = response.headers.get("Docker-Content-Digest")
    if response.status_code != 200 or not digest:
        return None
    known = {entry.rsplit("@", 1)[-1] for entry in local_repo_digests if "@" in entry}
    return True if digest in known else None
