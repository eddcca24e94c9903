from __future__ import annotations

import pytest

from modyard.common.semver import (
    InvalidVersion,
    newest,
    normalize_range,
    normalize_version,
    satisfies,
)


def test_slingr_v_prefix_is_read_as_plain_semver() -> None:
    assert normalize_version("v1.2.3") == "1.2.3"
    assert normalize_range("^v1.2.0") == "^1.2.0"


@pytest.mark.parametrize(
    ("version", "range_text", "expected"),
    [
        ("1.4.0", "^1.2.0", True),
        ("2.0.0", "^1.2.0", False),
        ("1.2.9", "~1.2.0", True),
        ("1.3.0", "~1.2.0", False),
        ("1.2.3", "1.2.3", True),
        ("3.1.0", ">=2.0.0", True),
        ("1.9.0", "1.x", True),
        ("5.0.0", "^1.0.0 || ^5.0.0", True),
        ("0.2.5", "^0.2.1", True),
        ("0.3.0", "^0.2.1", False),
    ],
)
def test_npm_ranges(version: str, range_text: str, expected: bool) -> None:
    assert satisfies(version, range_text) is expected


@pytest.mark.parametrize("text", ["1.2", "latest", "", "1.2.3.4"])
def test_invalid_versions_name_the_expected_shape(text: str) -> None:
    with pytest.raises(InvalidVersion, match="SemVer"):
        normalize_version(text)


def test_invalid_range_is_refused() -> None:
    with pytest.raises(InvalidVersion, match="npm-style"):
        normalize_range("^^1")


def test_newest_orders_by_semver_not_text() -> None:
    assert newest(["1.9.0", "1.10.0", "1.10.0-rc.1"]) == "1.10.0"
    assert newest([]) is None
