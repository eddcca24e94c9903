"""The grammar of a flow node's ``component``, shared by the installer and the runtime."""

from __future__ import annotations

from modyard.common.component_refs import (
    Candidate,
    candidate_slugs,
    is_reserved_slug,
    matching,
    refs,
    syntax_problem,
)

APPMIXER = Candidate("appmixer.github", "appmixer.github", "appmixer.github.list.GetUser")
THREE_SEGMENTS = Candidate(
    "appmixer.utils.test", "appmixer.utils.test", "appmixer.utils.test.OnStart"
)
RENAMED = Candidate("gh", "appmixer.github", "appmixer.github.list.GetUser")
ECHO = Candidate("echo", "echo-mod", "Echo")


def test_a_default_slug_with_dots_is_reached_by_the_components_own_appmixer_name() -> None:
    workspace = [APPMIXER, THREE_SEGMENTS, RENAMED, ECHO]
    assert matching("appmixer.github.list.GetUser", workspace) == [APPMIXER]
    assert matching("appmixer.utils.test.OnStart", workspace) == [THREE_SEGMENTS]
    assert refs(workspace) == {
        APPMIXER: "appmixer.github.list.GetUser",
        THREE_SEGMENTS: "appmixer.utils.test.OnStart",
        RENAMED: "gh.list.GetUser",
        ECHO: "echo.Echo",
    }


def test_references_written_before_still_name_the_same_component() -> None:
    workspace = [APPMIXER, RENAMED, ECHO]
    # '<slug>.<full component name>' was the only form that worked with dotted component names.
    assert matching("gh.appmixer.github.list.GetUser", workspace) == [RENAMED]
    assert matching("echo.Echo", workspace) == [ECHO]


def test_a_reference_naming_two_components_is_handed_out_in_its_explicit_form() -> None:
    # Installation 'appmixer' whose component is 'github.list.GetUser' collides with APPMIXER.
    other = Candidate("appmixer", "appmixer-tools", "github.list.GetUser")
    workspace = [APPMIXER, other]
    assert matching("appmixer.github.list.GetUser", workspace) == [APPMIXER, other]
    handed = refs(workspace)
    assert handed == {
        APPMIXER: "appmixer.github:appmixer.github.list.GetUser",
        other: "appmixer:github.list.GetUser",
    }
    for candidate, ref in handed.items():
        assert matching(ref, workspace) == [candidate]


def test_slugs_a_reference_may_start_with() -> None:
    assert candidate_slugs("appmixer.github.list.GetUser") == [
        "appmixer.github.list",
        "appmixer.github",
        "appmixer",
    ]
    assert candidate_slugs("gh:appmixer.github.list.GetUser") == ["gh"]
    assert candidate_slugs("a.b:c") == ["a", "a.b"]


def test_malformed_references_say_what_a_reference_looks_like() -> None:
    for text in ("nodot", ".Echo", "echo.", ":Echo", "echo:"):
        problem = syntax_problem(text)
        assert problem is not None, text
        assert "'<installation>.<component>'" in problem, text
    assert syntax_problem("echo.Echo") is None


def test_core_and_its_children_are_reserved_slugs() -> None:
    assert is_reserved_slug("core")
    assert is_reserved_slug("core.tools")
    assert not is_reserved_slug("corex")
    assert not is_reserved_slug("acme.core")
