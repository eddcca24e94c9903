"""``make deps-check``: every workspace member declares what its code imports, and no more.

Each member (``libs/*``, ``services/*``) is checked on its own against its own
``[project].dependencies``, the way it is installed alone (an image, ``pip install
modyard-sdk``), not against the workspace's union:

- third-party imports with ``deptry`` (missing, unused, transitive-only and dev-only
  dependencies), run in the member's folder on its ``src``;
- first-party imports, which deptry cannot tell apart (every member shares the ``modyard``
  namespace): ``modyard.<package>`` is mapped to the member that owns ``src/modyard/<package>``,
  and that member's distribution must be declared, and every declared ``modyard-*`` must be
  imported.

Exceptions are listed below with the reason for each; anything else fails.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Members not checked yet, and why.
SKIPPED: dict[str, str] = {}
#: deptry rules a member may break, with the reason.
IGNORES: dict[str, dict[str, list[str]]] = {
    "libs/sdk": {
        # modyard.sdk.gateway_cli uses uvloop when uvicorn[standard] brought it, else asyncio.
        "DEP003": ["uvloop"],
    },
    "services/backoffice": {
        # Loaded by Starlette at run time: Jinja2Templates, and form parsing.
        "DEP002": ["jinja2", "python-multipart"],
    },
    "services/registry": {
        # FastAPI's form and file parsing (the publish endpoint's multipart upload).
        "DEP002": ["python-multipart"],
    },
}


def members() -> list[Path]:
    found = [
        path.parent
        for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml")
        for path in sorted(ROOT.glob(pattern))
    ]
    return [m for m in found if m.relative_to(ROOT).as_posix() not in SKIPPED]


def canonical(requirement: str) -> str:
    """The PEP 503 name a requirement string starts with (``Foo_Bar[x]>=1`` → ``foo-bar``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def project(member: Path) -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((member / "pyproject.toml").read_text())["project"]
    return table


def distribution(member: Path) -> str:
    return canonical(project(member)["name"])


def declared(member: Path) -> set[str]:
    return {canonical(text) for text in project(member).get("dependencies", [])}


def owners(all_members: list[Path]) -> dict[str, str]:
    """``modyard.<package>`` → the distribution of the member that holds it."""
    table: dict[str, str] = {}
    for member in all_members:
        for package in sorted((member / "src" / "modyard").iterdir()):
            if package.is_dir() and not package.name.startswith(("_", ".")):
                table[package.name] = distribution(member)
    return table


def first_party_imports(member: Path) -> dict[str, str]:
    """Each ``modyard.<package>`` the member's code imports → one place that imports it."""
    found: dict[str, str] = {}
    for path in sorted((member / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "modyard" and len(parts) > 1:
                    found.setdefault(
                        parts[1], f"{path.relative_to(member.parent.parent)}:{node.lineno}"
                    )
    return found


def check_first_party(member: Path, table: dict[str, str]) -> list[str]:
    own = distribution(member)
    wanted = declared(member)
    problems = []
    used: set[str] = set()
    for package, where in first_party_imports(member).items():
        owner = table.get(package)
        if owner is None:
            problems.append(f"{where}: modyard.{package} belongs to no workspace member")
            continue
        used.add(owner)
        if owner != own and owner not in wanted:
            problems.append(f"{where}: imports modyard.{package} but does not declare {owner}")
    for name in sorted(wanted - used - {own}):
        if name.startswith("modyard-"):
            problems.append(f"declares {name} but never imports it")
    return problems


def run_deptry(member: Path, first_party: list[str]) -> int:
    # First-party distributions are checked by check_first_party, not by deptry.
    ignores: dict[str, list[str]] = {"DEP002": list(first_party)}
    for scope in ("*", member.relative_to(ROOT).as_posix()):
        for rule, names in IGNORES.get(scope, {}).items():
            ignores.setdefault(rule, []).extend(names)
    command = [
        sys.executable,
        "-m",
        "deptry",
        "src",
        "--known-first-party",
        "modyard",
        "--per-rule-ignores",
        ",".join(f"{rule}={'|'.join(names)}" for rule, names in ignores.items()),
    ]
    # A fixed command: this interpreter running deptry on a workspace folder.
    return subprocess.run(command, cwd=member, check=False).returncode  # noqa: S603


def main() -> int:
    all_members = members()
    table = owners(all_members)
    failed = False
    for member in all_members:
        name = member.relative_to(ROOT).as_posix()
        print(f"== {name}", flush=True)
        problems = check_first_party(member, table)
        for problem in problems:
            print(f"{name}: {problem}")
        if run_deptry(member, sorted(set(table.values()))) != 0 or problems:
            failed = True
    for name, why in SKIPPED.items():
        print(f"== {name}: skipped ({why})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
