"""YAML alias bombs in module files are refused by file name; a few honest aliases still load."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest

from modyard.modules.formats import safe_yaml
from modyard.modules.formats.base import ManifestError, ModuleFiles, UnsafeYaml
from modyard.modules.formats.detection import parse_module

Fixture = Callable[[str], ModuleFiles]


def billion_laughs(levels: int = 9, width: int = 10) -> str:
    """``width ** levels`` copies of "lol" from ``levels * width`` aliases (a few hundred bytes)."""
    lines = ['l0: &l0 "lol"']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def workspace_with(extra: str) -> bytes:
    return ("name: Bomb\nslug: bomb\nversion: 1\nautomations: {}\n" + extra).encode()


def test_a_billion_laughs_in_a_prismeai_workspace_is_refused_naming_the_file() -> None:
    files = ModuleFiles({"bomb.yml": workspace_with(billion_laughs())})
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeYaml) as refused:
            parse_module(files)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (issue,) = refused.value.issues
    assert issue.file == "bomb.yml"
    assert "aliases" in issue.detail
    assert peak < 8 * 1024 * 1024


def test_an_alias_bomb_in_a_split_workspace_automation_is_refused_naming_that_file(
    module_fixture: Fixture,
) -> None:
    nlu = module_fixture("prismeai-nlu")
    bomb = nlu["automations/parse.yml"] + b"\n" + billion_laughs(levels=5).encode()
    with pytest.raises(ManifestError) as refused:
        parse_module(ModuleFiles({**nlu, "automations/parse.yml": bomb}))
    assert ("automations/parse.yml", "") in [(i.file, i.pointer) for i in refused.value.issues]


def test_an_alias_bomb_in_a_native_manifest_is_refused(module_fixture: Fixture) -> None:
    weather = module_fixture("native-weather")
    bomb = (
        weather["modyard.yaml"] + b"\nx-bomb:\n  " + billion_laughs().replace("\n", "\n  ").encode()
    )
    with pytest.raises(UnsafeYaml) as refused:
        parse_module(ModuleFiles({**weather, "modyard.yaml": bomb}))
    assert refused.value.issues[0].file == "modyard.yaml"


def test_few_aliases_that_expand_hugely_are_refused() -> None:
    # 40 aliases, each doubling: 2**20 nodes from a document under the alias count budget.
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 21)]
    with pytest.raises(safe_yaml.YamlBudgetExceeded, match="expand"):
        safe_yaml.load("\n".join(lines))


def test_a_recursive_anchor_and_deep_nesting_are_refused() -> None:
    with pytest.raises(safe_yaml.YamlBudgetExceeded, match="recursive"):
        safe_yaml.load("a: &a [1, *a]")
    with pytest.raises(safe_yaml.YamlBudgetExceeded, match="nested"):
        safe_yaml.load("[" * 5000 + "]" * 5000)


def test_a_few_honest_aliases_still_load() -> None:
    text = "schema: &s {type: string}\nfirst: *s\nsecond: *s\n"
    assert safe_yaml.load(text) == {
        "schema": {"type": "string"},
        "first": {"type": "string"},
        "second": {"type": "string"},
    }
