"""What ships holds no test or dev code (issue 18).

The test harness (``libs/testing``, ``modyard.testing``) and the development tooling
(``libs/dev``, ``modyard.dev``) are workspace members that only the root's ``dev`` dependency
group names; the images install ``--no-dev --package <service>``. Here every member is built as
the wheel that would be published or installed, and each shipped wheel is read: no
``modyard/testing`` or ``modyard/dev``, no ``testing.py``, ``conftest.py`` or ``test_*.py``, and
no requirement on the dev-only members or on pytest. (``make test-images`` checks the images
themselves.)
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Files that are test or dev code wherever they sit in the modyard namespace.
TEST_FILE = re.compile(r"(^|/)(testing\.py|conftest\.py|test_[^/]*\.py)$|(^|/)tests?/")
#: Requirements no shipped wheel may carry.
TEST_REQUIREMENTS = {"pytest", "pytest-asyncio", "asgi-lifespan", "hypothesis"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return canonical(match.group(1))


def members() -> dict[str, Path]:
    """Every workspace member: its distribution name → its folder."""
    found = {}
    for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml"):
        for path in sorted(ROOT.glob(pattern)):
            found[canonical(tomllib.loads(path.read_text())["project"]["name"])] = path.parent
    return found


def dev_only() -> set[str]:
    """The members the root's dev group names: installed for development, never shipped."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    named = {requirement_name(r) for r in root["dependency-groups"]["dev"] if isinstance(r, str)}
    return named & set(members())


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    """Each member's wheel, built by ``uv build`` as a release would."""
    # `uv run` says where it is; else the PATH's.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is missing (scripts/bootstrap.sh installs it)"
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [uv, "build", "--all-packages", "--wheel", "--out-dir", str(out), "--quiet"],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    built = {}
    for wheel in out.glob("*.whl"):
        archive = zipfile.ZipFile(wheel)
        (metadata,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        name = HeaderParser().parsestr(archive.read(metadata).decode())["Name"]
        built[canonical(name)] = archive
    assert set(built) == set(members())
    return built


def test_the_dev_only_members_are_the_harness_and_the_dev_tooling() -> None:
    assert dev_only() == {"modyard-testing", "modyard-dev"}
    # ... and no shipped member asks for them (an image would then install them).
    for name, folder in members().items():
        if name in dev_only():
            continue
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
        asked = {requirement_name(r) for r in requirements}
        assert not asked & (dev_only() | TEST_REQUIREMENTS), name


def test_the_import_contract_covers_every_shipped_package() -> None:
    # .importlinter's "nothing ships dev tooling" contract lists its packages by name: a new
    # shipped member must be added there, or its imports of modyard.testing would go unseen.
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    contract = config["importlinter:contract:nothing-ships-dev-tooling"]
    checked = set(contract["source_modules"].split())
    assert set(contract["forbidden_modules"].split()) == {"modyard.testing", "modyard.dev"}
    for name, folder in members().items():
        if name in dev_only():
            continue
        packages = {
            f"modyard.{p.name}" for p in (folder / "src" / "modyard").iterdir() if p.is_dir()
        }
        assert packages - {"modyard.__pycache__"} <= checked, f"{name}: {packages - checked}"


def test_no_shipped_wheel_holds_test_or_dev_code(wheels: dict[str, zipfile.ZipFile]) -> None:
    shipped = {name: wheel for name, wheel in wheels.items() if name not in dev_only()}
    assert len(shipped) >= 10
    for name, wheel in shipped.items():
        files = [n for n in wheel.namelist() if n.startswith("modyard/")]
        assert files, name
        leaked = [
            n
            for n in files
            if n.split("/")[1] in ("testing", "dev") or TEST_FILE.search(n.removeprefix("modyard/"))
        ]
        assert leaked == [], f"{name} ships {leaked}"
        (metadata,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(wheel.read(metadata).decode())
        required = {requirement_name(r) for r in headers.get_all("Requires-Dist") or []}
        assert not required & (dev_only() | TEST_REQUIREMENTS), f"{name} requires {required}"


def test_the_check_sees_the_harness_where_it_is(wheels: dict[str, zipfile.ZipFile]) -> None:
    # The same reading finds what the dev-only wheels hold (so an empty answer above means
    # something): the pytest plugin of every session, and the `modyard dev` command.
    assert "modyard/testing/fixtures.py" in wheels["modyard-testing"].namelist()
    assert "modyard/dev/cli.py" in wheels["modyard-dev"].namelist()
    # `modyard status` probes what it checks with the SDK's own module, not the dev tooling's.
    assert "modyard/sdk/probes.py" in wheels["modyard-sdk"].namelist()
