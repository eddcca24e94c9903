"""Image references (``host[:port]/path/name[:tag][@digest]``), parsed by the grammar of the
CNCF distribution project (``distribution/reference``), which Docker and every registry use.

The deployer only deploys from a registry it can log in to, so the host is required here, where
Docker would silently fall back to Docker Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
DOMAIN_RE = re.compile(rf"^{_HOST}(?::[0-9]{{1,5}})?$")
PATH_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")
#: distribution's limit on the whole repository name.
MAX_NAME_LENGTH = 255


class InvalidImageReference(ValueError):
    """The reference does not follow ``host/user/repo:version``; the message says what to fix."""


@dataclass(frozen=True)
class ImageReference:
    host: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """``host/path``: what ``docker pull`` and the registry call the repository."""
        return f"{self.host}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> ImageReference:
        """The same repository at another tag (a digest pinned earlier no longer applies)."""
        return ImageReference(self.host, self.path, tag, None)


def _looks_like_host(component: str) -> bool:
    # distribution's rule: the first component is a registry host only if it has a dot, a port
    # or is localhost; "user/repo" is a Docker Hub path, which a private deployment never means.
    return "." in component or ":" in component or component == "localhost" or "[" in component


def parse_image_reference(text: str) -> ImageReference:
    text = text.strip()
    if not text:
        raise InvalidImageReference("The image is empty; give it as host/user/repo:version.")
    if any(character.isspace() for character in text):
        raise InvalidImageReference("The image contains white space; remove it.")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidImageReference(
                f"The digest {digest!r} is not a content digest; write it as sha256:<64 hex digits>."
            )
    host, slash, rest = remainder.partition("/")
    if not slash or not _looks_like_host(host):
        raise InvalidImageReference(
            f"{text!r} names no registry host; write the image as host/user/repo:version, "
            "e.g. registry.example.com/team/module:1.0.0."
        )
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not TAG_RE.match(tag):
            raise InvalidImageReference(
                f"The tag {tag!r} is not valid: use letters, digits, '_', '.' and '-' "
                "(at most 128, not starting with '.' or '-')."
            )
    if not DOMAIN_RE.match(host):
        raise InvalidImageReference(
            f"The registry host {host!r} is not a host name (with an optional :port)."
        )
    if not rest:
        raise InvalidImageReference(
            f"{text!r} has a registry host but no repository path; add /user/repo."
        )
    for component in rest.split("/"):
        if not PATH_COMPONENT_RE.match(component):
            raise InvalidImageReference(
                f"The path component {component!r} is not valid: use lower-case letters and "
                "digits, separated by '.', '_', '__' or '-'."
            )
    if len(f"{host}/{rest}") > MAX_NAME_LENGTH:
        raise InvalidImageReference(
            f"The repository name is longer than {MAX_NAME_LENGTH} characters."
        )
    return ImageReference(host=host, path=rest, tag=tag, digest=digest)


def normalize_registry_host(text: str) -> str:
    """A registry host as given in a form (``https://`` and a trailing slash are tolerated)."""
    host = text.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    return host.rstrip("/")
