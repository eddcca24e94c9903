"""``make deps-check`` (scripts/deps_check.py): the workspace declares what it imports, and a
member that imports another's package without declaring it, or declares one it never imports,
is caught."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def deps_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deps_check", ROOT / "scripts" / "deps_check.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def member(root: Path, folder: str, name: str, dependencies: list[str], code: str) -> Path:
    path = root / folder
    package = path / "src" / "modyard" / name.removeprefix("modyard-")
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(code)
    lines = "".join(f'    "{dep}",\n' for dep in dependencies)
    (path / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = [\n{lines}]\n'
    )
    return path


def test_the_workspace_declares_what_each_member_imports() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/deps_check.py"], cwd=ROOT, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "== services/installer" in result.stdout


def test_an_undeclared_or_unused_first_party_dependency_is_reported(tmp_path: Path) -> None:
    check = deps_check()
    common = member(tmp_path, "libs/common", "modyard-common", [], "")
    sdk = member(tmp_path, "libs/sdk", "modyard-sdk", [], "")
    installer = member(
        tmp_path,
        "services/installer",
        "modyard-installer",
        ["modyard-sdk", "httpx>=0.27"],
        "from modyard.common.errors import Problem\nimport modyard.installer.thing\n",
    )
    table = check.owners([common, sdk, installer])

    problems = check.check_first_party(installer, table)

    assert any("imports modyard.common but does not declare modyard-common" in p for p in problems)
    assert "declares modyard-sdk but never imports it" in problems
    assert len(problems) == 2
    # Declared and used: nothing to say.
    fixed = member(
        tmp_path, "services/fixed", "modyard-fixed", ["modyard-common"], "import modyard.common\n"
    )
    assert check.check_first_party(fixed, check.owners([common, fixed])) == []
