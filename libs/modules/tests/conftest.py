from __future__ import annotations

from collections.abc import Callable

import pytest

from modyard.modules.examples import example_files
from modyard.modules.formats.base import ModuleFiles


@pytest.fixture
def module_fixture() -> Callable[[str], ModuleFiles]:
    return example_files
